#include "server/handlers/http.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/errors.h"
#include "server/common/text.h"
#include "server/handlers/json.h"

namespace weft::handlers {

absl::StatusCode CodeForHttpStatus(int status) {
  if (status == 404) return absl::StatusCode::kNotFound;
  if (status == 401) return absl::StatusCode::kUnauthenticated;
  if (status == 403) return absl::StatusCode::kPermissionDenied;
  if (status == 429 || (status >= 500 && status <= 599)) {
    return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kFailedPrecondition;
}

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kMaxRedirects = 10;

// "application/json", "application/problem+json; charset=utf-8".
bool IsJsonMediaType(absl::string_view content_type) {
  absl::string_view type = content_type.substr(0, content_type.find(';'));
  type = absl::StripAsciiWhitespace(type);
  const std::string lower = absl::AsciiStrToLower(type);
  return lower == "application/json" || absl::EndsWith(lower, "+json");
}

// An HTTP token (RFC 9110): method and header names.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    if (c == '\0' || std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) {
      return false;
    }
  }
  return true;
}

// A status range from accept_status: 200, or "200-299".
struct StatusRange {
  int low;
  int high;
};

absl::StatusOr<std::vector<StatusRange>> ParseAcceptStatus(const Value* list) {
  if (list == nullptr) return std::vector<StatusRange>{{200, 299}};
  std::vector<StatusRange> ranges;
  const auto& values = list->list_value().values();
  if (values.empty()) {
    return ArgError("accept_status", "must list at least one status");
  }
  for (int i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    const std::string where = absl::StrCat("accept_status[", i, "]");
    StatusRange r{0, 0};
    if (v.has_number_value() &&
        v.number_value() == static_cast<int>(v.number_value())) {
      r.low = r.high = static_cast<int>(v.number_value());
    } else if (v.has_string_value()) {
      std::vector<absl::string_view> parts =
          absl::StrSplit(v.string_value(), '-');
      if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &r.low) ||
          !absl::SimpleAtoi(parts.back(), &r.high)) {
        return ArgError(where, absl::StrCat("expected a status like 204 or a "
                                            "range like \"200-299\", got ",
                                            common::Quote(v.string_value())));
      }
    } else {
      return ArgError(where,
                      "expected a status like 204 or a range like "
                      "\"200-299\"");
    }
    if (r.low < 100 || r.high > 599 || r.low > r.high) {
      return ArgError(where, "statuses are from 100 to 599, low to high");
    }
    ranges.push_back(r);
  }
  return ranges;
}

std::string RangesText(const std::vector<StatusRange>& ranges) {
  return absl::StrJoin(ranges, ", ", [](std::string* out, StatusRange r) {
    absl::StrAppend(out, r.low);
    if (r.high != r.low) absl::StrAppend(out, "-", r.high);
  });
}

// The handler's value for a response: {status, headers, body} with body
// parsed JSON, a string, or body_base64. A JSON body nested deeper than
// kMaxJsonDepth fails the call (OUT_OF_RANGE, permanent).
absl::StatusOr<Value> ResponseValue(const HttpResponse& response,
                                    absl::string_view where) {
  Value out;
  Struct& fields = *out.mutable_struct_value();
  (*fields.mutable_fields())["status"].set_number_value(response.status);
  Struct& headers =
      *(*fields.mutable_fields())["headers"].mutable_struct_value();
  std::string content_type;
  for (const auto& [name, value] : response.headers) {
    Value& v = (*headers.mutable_fields())[name];
    if (v.has_string_value()) {
      v.set_string_value(absl::StrCat(v.string_value(), ", ", value));
    } else {
      v.set_string_value(value);
    }
    if (name == "content-type") content_type = value;
  }
  Value& body = (*fields.mutable_fields())["body"];
  if (IsJsonMediaType(content_type) && !response.body.empty()) {
    absl::StatusOr<Value> parsed = ParseJson(response.body);
    if (parsed.ok()) {
      body = *std::move(parsed);
      return out;
    }
    if (parsed.status().code() == absl::StatusCode::kOutOfRange) {
      return Permanent(common::WithReason(
          absl::OutOfRangeError(absl::StrCat(
              where, ": the JSON body is ", parsed.status().message(),
              ", the most weft keeps in a value")),
          common::kValueTooDeep));
    }
    // Not JSON after all: the text, as for any other body.
  }
  if (common::IsValidUtf8(response.body)) {
    body.set_string_value(response.body);
  } else {
    fields.mutable_fields()->erase("body");
    (*fields.mutable_fields())["body_base64"].set_string_value(
        absl::Base64Escape(response.body));
  }
  return out;
}

// The text of a body for an error message: its start, if it is text.
std::string BodySnippet(const std::string& body) {
  if (body.empty() || !common::IsValidUtf8(body)) return "";
  constexpr size_t kMax = 200;
  std::string s = body.size() <= kMax ? body : body.substr(0, kMax) + "...";
  return absl::StrCat(": ", absl::StripAsciiWhitespace(s));
}

// What an http call needs once its response comes, shared with the
// completion so that it outlives the plan if the call ends first (cancelled
// or timed out while the transfer winds down).
struct HttpCallSpec {
  HttpRequest request;
  std::vector<StatusRange> accept;

  CallResult Answer(absl::StatusOr<HttpResponse> response) const {
    if (!response.ok()) return response.status();
    const std::string where = absl::StrCat(
        request.method, " ", common::Abbreviate(response->url, 200));
    for (const StatusRange& r : accept) {
      if (response->status >= r.low && response->status <= r.high) {
        return ResponseValue(*response, where);
      }
    }
    return common::WithReason(
        absl::Status(
            CodeForHttpStatus(response->status),
            absl::StrCat(where, " answered ", response->status,
                         response->reason.empty() ? "" : " ",
                         common::Abbreviate(response->reason, 100),
                         " (args.accept_status is ", RangesText(accept), ")",
                         BodySnippet(response->body))),
        common::kHttpStatus, {{"status", absl::StrCat(response->status)}});
  }
};

// One attempt of an http call. It ends exactly once: with the response, at
// once when its token is cancelled, or when args.timeout passes, whichever
// comes first, whatever the IO thread is doing.
class HttpAttempt : public std::enable_shared_from_this<HttpAttempt> {
 public:
  HttpAttempt(engine::Env& env, const engine::CancellationToken& token,
              CallDone done)
      : env_(env), scope_(token), done_(std::move(done)) {}

  ~HttpAttempt() {
    // Dropped without an answer (its parse work was dropped at shutdown).
    Complete(absl::UnavailableError("the http call was dropped"));
  }

  void Start(HttpClient& client, std::shared_ptr<const HttpCallSpec> spec,
             const engine::CancellationToken& token) {
    {
      engine::MutexLock lock(&mu_);
      counts_ = client.counts();
    }
    std::weak_ptr<HttpAttempt> weak = weak_from_this();
    on_cancel_.emplace(token, [weak](const absl::Status& reason) {
      if (auto self = weak.lock()) self->Complete(reason);
    });
    if (spec->request.timeout > absl::ZeroDuration()) {
      const std::string message = absl::StrCat(
          spec->request.method, " ", common::Abbreviate(spec->request.url, 200),
          ": no answer within ", absl::FormatDuration(spec->request.timeout),
          " (args.timeout)");
      timer_ =
          env_.Schedule(env_.Now() + spec->request.timeout, [weak, message] {
            auto self = weak.lock();
            if (self == nullptr) return;
            const absl::Status timeout = common::WithReason(
                absl::DeadlineExceededError(message), common::kHttpTimeout);
            self->Complete(timeout);
            self->scope_.Cancel(timeout);
          });
    }
    client.Fetch(spec->request, scope_.token(),
                 [self = shared_from_this(), &client,
                  spec](absl::StatusOr<HttpResponse> response) mutable {
                   self->Fetched(client, std::move(spec), std::move(response));
                 });
  }

 private:
  // On the IO thread: the body is read elsewhere, the IO thread goes on.
  void Fetched(HttpClient& client, std::shared_ptr<const HttpCallSpec> spec,
               absl::StatusOr<HttpResponse> response) {
    if (timer_.has_value()) env_.Cancel(*timer_);
    if (Answered()) return;
    // Small bodies are read on the event loop (a millisecond at most);
    // large ones on the client's parse thread.
    constexpr size_t kReadOnLoopBytes = 64 << 10;
    const bool small =
        !response.ok() || response->body.size() <= kReadOnLoopBytes;
    auto read = [self = shared_from_this(), spec = std::move(spec),
                 response = std::move(response), small]() mutable {
      // On the event loop already when small: answer here.
      self->Complete(spec->Answer(std::move(response)), /*post=*/!small);
    };
    if (small) {
      env_.Post(std::move(read));
    } else {
      client.Offload(std::move(read));
    }
  }

  bool Answered() {
    engine::MutexLock lock(&mu_);
    return !done_;
  }

  // The first call answers, on the event loop (posted there unless it runs
  // there already); later ones do nothing.
  void Complete(CallResult result, bool post = true) {
    CallDone done;
    std::shared_ptr<HttpClient::Counts> counts;
    {
      engine::MutexLock lock(&mu_);
      done = std::move(done_);
      done_ = nullptr;
      counts = counts_;
    }
    if (!done) return;
    if (counts != nullptr)
      counts->Count(HttpClient::OutcomeOf(result.status()));
    if (!post) {
      std::move(done)(std::move(result));
      return;
    }
    env_.Post([done = std::move(done), result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    });
  }

  engine::Env& env_;
  // The transfer's scope: cancelled with the call, or by its timeout.
  engine::CancellationSource scope_;
  engine::Mutex mu_;
  CallDone done_ ABSL_GUARDED_BY(mu_);
  // Counts how the call ended (shared: the client may be gone by then).
  std::shared_ptr<HttpClient::Counts> counts_ ABSL_GUARDED_BY(mu_);
  std::optional<engine::CancellationCallback> on_cancel_;
  std::optional<engine::TimerId> timer_;
};

class HttpCall : public Call {
 public:
  HttpCall(HttpClient& client, HttpRequest request,
           std::vector<StatusRange> accept)
      : client_(client),
        spec_(std::make_shared<const HttpCallSpec>(
            HttpCallSpec{std::move(request), std::move(accept)})) {}

  void Start(const CallContext& ctx, CallDone done) const override {
    if (ctx.token.cancelled()) {
      std::move(done)(ctx.token.reason());
      return;
    }
    auto attempt =
        std::make_shared<HttpAttempt>(ctx.env, ctx.token, std::move(done));
    attempt->Start(client_, WithTraceparent(ctx.traceparent), ctx.token);
  }

 private:
  // The spec, with the caller's traceparent unless args.headers set one.
  std::shared_ptr<const HttpCallSpec> WithTraceparent(
      absl::string_view traceparent) const {
    if (traceparent.empty()) return spec_;
    for (const auto& [name, value] : spec_->request.headers) {
      if (absl::EqualsIgnoreCase(name, "traceparent")) return spec_;
    }
    auto spec = std::make_shared<HttpCallSpec>(*spec_);
    spec->request.headers.emplace_back("traceparent", std::string(traceparent));
    return spec;
  }

 private:
  HttpClient& client_;
  const std::shared_ptr<const HttpCallSpec> spec_;
};

class HttpHandler : public Handler {
 public:
  explicit HttpHandler(HttpClient& client) : client_(client) {
    info_ = HandlerInfo{
        .name = "http",
        .description =
            "Calls an HTTP service without holding a thread; returns "
            "{status, headers, body} (body parsed when the response is "
            "JSON, body_base64 when it is not UTF-8). Destinations must be "
            "allowed by --http_allow.",
        .args =
            {
                {.name = "url",
                 .type = ArgType::kString,
                 .required = true,
                 .description = "An http or https URL."},
                {.name = "method",
                 .type = ArgType::kString,
                 .description = "GET if absent."},
                {.name = "headers",
                 .type = ArgType::kObject,
                 .description = "Request headers, name to string value."},
                {.name = "body",
                 .type = ArgType::kAny,
                 .description = "A string is sent as it is; any other JSON "
                                "value is sent as JSON."},
                {.name = "timeout",
                 .type = ArgType::kDuration,
                 .description = "For the whole exchange, like \"2s\"; "
                                "DEADLINE_EXCEEDED when it passes."},
                {.name = "max_response_bytes",
                 .type = ArgType::kInteger,
                 .description = "The largest body accepted, 1 MiB if absent "
                                "(at most 64 MiB); OUT_OF_RANGE beyond.",
                 .min = 1,
                 .max = 64 << 20},
                {.name = "follow_redirects",
                 .type = ArgType::kBool,
                 .description = "Follow up to 10 redirects; false if absent."},
                {.name = "accept_status",
                 .type = ArgType::kList,
                 .description =
                     "Statuses that succeed, like [200, \"300-304\"]; "
                     "200-299 if absent. Others fail: 404 NOT_FOUND, "
                     "401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 429 "
                     "and 5xx UNAVAILABLE, the rest "
                     "FAILED_PRECONDITION."},
            },
    };
  }

  const HandlerInfo& info() const override { return info_; }

  absl::StatusOr<std::unique_ptr<Call>> Prepare(
      const Struct& struct_args) const override {
    Args args(struct_args);
    HttpRequest request;
    request.url = args.String("url");
    if (absl::StatusOr<UrlParts> url = ParseUrl(request.url); !url.ok()) {
      return ArgError("url", url.status().message());
    }
    request.method = args.String("method", "GET");
    if (!IsToken(request.method)) {
      return ArgError("method", absl::StrCat(common::Quote(request.method),
                                             " is not an HTTP method"));
    }
    bool has_content_type = false;
    if (const Value* headers = args.Find("headers")) {
      for (const auto& [name, value] : headers->struct_value().fields()) {
        if (!IsToken(name)) {
          return ArgError("headers", absl::StrCat(common::Quote(name),
                                                  " is not a header name"));
        }
        if (!value.has_string_value()) {
          return ArgError(absl::StrCat("headers.", name), "expected a string");
        }
        if (value.string_value().find_first_of(std::string("\r\n\0", 3)) !=
            std::string::npos) {
          return ArgError(absl::StrCat("headers.", name),
                          "must not hold CR, LF or NUL");
        }
        if (absl::EqualsIgnoreCase(name, "content-type")) {
          has_content_type = true;
        }
        request.headers.emplace_back(name, value.string_value());
      }
      // Stable order, whatever the map's.
      std::sort(request.headers.begin(), request.headers.end());
    }
    if (const Value* body = args.Find("body")) {
      request.has_body = true;
      if (body->has_string_value()) {
        request.body = body->string_value();
      } else {
        if (!google::protobuf::util::MessageToJsonString(*body, &request.body)
                 .ok()) {
          return ArgError("body", "cannot be written as JSON");
        }
        if (!has_content_type) {
          request.headers.emplace_back("Content-Type", "application/json");
        }
      }
    }
    request.timeout = args.Duration("timeout");
    request.max_response_bytes = args.Integer("max_response_bytes", 1 << 20);
    const Value* follow = args.Find("follow_redirects");
    request.max_redirects =
        follow != nullptr && follow->bool_value() ? kMaxRedirects : 0;
    absl::StatusOr<std::vector<StatusRange>> accept =
        ParseAcceptStatus(args.Find("accept_status"));
    if (!accept.ok()) return accept.status();
    return std::make_unique<HttpCall>(client_, std::move(request),
                                      *std::move(accept));
  }

 private:
  HttpClient& client_;
  HandlerInfo info_;
};

}  // namespace

absl::Status RegisterHttpHandler(HandlerRegistry& registry,
                                 HttpClient& client) {
  return registry.Register(std::make_unique<HttpHandler>(client));
}

}  // namespace weft::handlers
