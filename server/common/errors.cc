#include "server/common/errors.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/duration.pb.h"
#include "server/common/error_details.h"
#include "server/common/status_codes.h"

namespace weft::common {
namespace {

constexpr absl::string_view kTypePrefix = "type.googleapis.com/";
constexpr absl::string_view kRpcPrefix = "type.googleapis.com/google.rpc.";

template <typename Message>
std::string UrlOf() {
  return absl::StrCat(kTypePrefix, Message::descriptor()->full_name());
}

template <typename Message>
std::optional<Message> Get(const absl::Status& s) {
  auto payload = s.GetPayload(UrlOf<Message>());
  if (!payload.has_value()) return std::nullopt;
  Message m;
  if (!m.ParseFromString(std::string(*payload))) return std::nullopt;
  return m;
}

template <typename Message>
void Put(absl::Status& s, const Message& m) {
  s.SetPayload(UrlOf<Message>(), absl::Cord(m.SerializeAsString()));
}

}  // namespace

std::initializer_list<absl::string_view> AllReasons() {
  static constexpr std::initializer_list<absl::string_view> kAll = {
      kInvalidField,
      kUnknownHandler,
      kUnknownPool,
      kPlanTooDeep,
      kPlanTooLarge,
      kValueTooDeep,
      kMalformedRequest,
      kUrlNotAllowed,
      kBadReference,
      kUnknownSecret,
      kCredentialsMissing,
      kCredentialsInvalid,
      kAdminOnly,
      kAnswerTooLarge,
      kMemoryExhausted,
      kTooManyRuns,
      kTaskQueueFull,
      kPrincipalQuota,
      kTaskStoreFull,
      kTaskStoreUnavailable,
      kLazyStoreFull,
      kPoolFull,
      kShuttingDown,
      kTaskNotFound,
      kNodeNotFound,
      kLazyValueNotFound,
      kRequestIdReused,
      kLazyValueExists,
      kTaskNotFinished,
      kSequenceAhead,
      kLazyValueDeleted,

      kLazyValueCycle,
      kLazyComputationFailed,
      kNodeTimeout,
      kRunDeadline,
      kNodeDeadline,
      kRefNoValue,
      kRefPathNotFound,
      kRefBadValue,
      kSiblingFailed,
      kQuorumReached,
      kQuorumUnreachable,
      kNotStarted,
      kRaceLost,
      kRunCancelled,
      kFailedByPlan,
      kHttpStatus,
      kHttpUnreachable,
      kHttpTimeout,
      kHttpResponseTooLarge,
      kHttpTooManyRedirects};
  return kAll;
}

absl::Status WithReason(absl::Status s, absl::string_view reason,
                        Metadata metadata) {
  if (s.ok()) return s;
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(std::string(kDomain));
  for (const auto& [key, value] : metadata) {
    (*info.mutable_metadata())[std::string(key)] = std::string(value);
  }
  Put(s, info);
  return s;
}

absl::Status WithLimit(absl::Status s, absl::string_view reason,
                       absl::string_view flag, int64_t limit) {
  return WithReason(std::move(s), reason,
                    {{"flag", flag}, {"limit", absl::StrCat(limit)}});
}

absl::Status WithFieldViolation(absl::Status s, absl::string_view field,
                                absl::string_view description) {
  if (s.ok()) return s;
  google::rpc::BadRequest bad =
      GetBadRequest(s).value_or(google::rpc::BadRequest());
  google::rpc::BadRequest::FieldViolation* v = bad.add_field_violations();
  v->set_field(std::string(field));
  v->set_description(std::string(description));
  Put(s, bad);
  return s;
}

absl::Status FieldError(absl::string_view field, absl::string_view description,
                        absl::string_view reason) {
  absl::Status s =
      absl::InvalidArgumentError(absl::StrCat(field, ": ", description));
  return WithReason(WithFieldViolation(std::move(s), field, description),
                    reason);
}

absl::Status WithRetryDelay(absl::Status s, absl::Duration delay) {
  if (s.ok()) return s;
  google::rpc::RetryInfo retry;
  const int64_t nanos = absl::ToInt64Nanoseconds(delay);
  retry.mutable_retry_delay()->set_seconds(nanos / 1'000'000'000);
  retry.mutable_retry_delay()->set_nanos(
      static_cast<int32_t>(nanos % 1'000'000'000));
  Put(s, retry);
  return s;
}

absl::Status WithResource(absl::Status s, absl::string_view resource_type,
                          absl::string_view resource_name) {
  if (s.ok()) return s;
  google::rpc::ResourceInfo info;
  info.set_resource_type(std::string(resource_type));
  info.set_resource_name(std::string(resource_name));
  Put(s, info);
  return s;
}

absl::Status WithMessage(const absl::Status& s, absl::string_view message) {
  absl::Status out(s.code(), message);
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

absl::Status WithDetail(absl::Status s,
                        const google::protobuf::Message& detail) {
  if (s.ok()) return s;
  s.SetPayload(absl::StrCat(kTypePrefix, detail.GetDescriptor()->full_name()),
               absl::Cord(detail.SerializeAsString()));
  return s;
}

std::string Reason(const absl::Status& s) {
  if (s.ok()) return "";
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(s);
  if (info.has_value() && !info->reason().empty()) return info->reason();
  if (auto plain = s.GetPayload(kPlainReasonUrl); plain.has_value()) {
    return std::string(*plain);
  }
  return CodeName(s.code());
}

std::string ReasonMetadata(const absl::Status& s, absl::string_view key) {
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(s);
  if (!info.has_value()) {
    auto plain = s.GetPayload(absl::StrCat(kPlainMetadataUrl, key));
    return plain.has_value() ? std::string(*plain) : "";
  }
  auto it = info->metadata().find(std::string(key));
  return it == info->metadata().end() ? "" : it->second;
}

absl::Duration RetryDelay(const absl::Status& s) {
  std::optional<google::rpc::RetryInfo> retry = GetRetryInfo(s);
  if (!retry.has_value()) return absl::InfiniteDuration();
  return absl::Seconds(retry->retry_delay().seconds()) +
         absl::Nanoseconds(retry->retry_delay().nanos());
}

std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& s) {
  return Get<google::rpc::ErrorInfo>(s);
}
std::optional<google::rpc::BadRequest> GetBadRequest(const absl::Status& s) {
  return Get<google::rpc::BadRequest>(s);
}
std::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& s) {
  return Get<google::rpc::RetryInfo>(s);
}
std::optional<google::rpc::ResourceInfo> GetResourceInfo(
    const absl::Status& s) {
  return Get<google::rpc::ResourceInfo>(s);
}

google::rpc::Status ToRpcStatus(const absl::Status& s) {
  google::rpc::Status rpc;
  rpc.set_code(static_cast<int>(s.code()));
  rpc.set_message(std::string(s.message()));
  if (s.ok()) return rpc;
  absl::Status with_info = s;
  if (!GetErrorInfo(s).has_value()) {
    google::rpc::ErrorInfo info;
    info.set_reason(Reason(s));
    info.set_domain(std::string(kDomain));
    s.ForEachPayload([&](absl::string_view url, const absl::Cord& value) {
      if (absl::StartsWith(url, kPlainMetadataUrl)) {
        (*info.mutable_metadata())[std::string(
            url.substr(kPlainMetadataUrl.size()))] = std::string(value);
      }
    });
    with_info = WithDetail(std::move(with_info), info);
  }
  // In one order every time (absl::Status keeps payloads in none): the
  // ErrorInfo, then what a client acts on.
  constexpr absl::string_view kOrder[] = {
      "ErrorInfo",        "BadRequest",          "ResourceInfo", "RetryInfo",
      "QuotaFailure",     "PreconditionFailure", "DebugInfo",    "Help",
      "LocalizedMessage", "RequestInfo"};
  for (absl::string_view type : kOrder) {
    const std::string url = absl::StrCat(kRpcPrefix, type);
    if (auto payload = with_info.GetPayload(url); payload.has_value()) {
      google::protobuf::Any* any = rpc.add_details();
      any->set_type_url(url);
      any->set_value(std::string(*payload));
    }
  }
  return rpc;
}

absl::Status FromRpcStatus(const google::rpc::Status& rpc) {
  absl::Status s(static_cast<absl::StatusCode>(rpc.code()), rpc.message());
  if (s.ok()) return s;
  for (const google::protobuf::Any& any : rpc.details()) {
    if (!absl::StartsWith(any.type_url(), kRpcPrefix)) continue;
    s.SetPayload(any.type_url(), absl::Cord(any.value()));
  }
  return s;
}

}  // namespace weft::common
