// Small helpers the Orchestrator's method files share for answering RPCs.

#ifndef WEFT_SERVER_SERVICE_REPLY_H_
#define WEFT_SERVER_SERVICE_REPLY_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"
#include "server/common/error_details.h"
#include "server/common/errors.h"
#include "server/common/text.h"
#include "server/engine/memory_budget.h"
#include "server/service/reactor.h"

namespace weft::service {

// The status for gRPC: its code, its message, and its google.rpc details
// (api/errors.h) as the google.rpc.Status gRPC sends in the
// grpc-status-details-bin trailer. Messages, field paths and descriptions
// are cut to kMaxMessageBytes: clients refuse trailers past 8 KiB.
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  absl::Status cut = common::Abbreviate(s);
  if (std::optional<google::rpc::BadRequest> bad = common::GetBadRequest(cut);
      bad.has_value()) {
    for (auto& v : *bad->mutable_field_violations()) {
      v.set_field(common::Abbreviate(v.field()));
      v.set_description(common::Abbreviate(v.description()));
    }
    cut = common::WithDetail(std::move(cut), *bad);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(cut.code()),
                      std::string(cut.message()),
                      common::ToRpcStatus(cut).SerializeAsString());
}

// Finishes a unary call refused before it started (an unknown caller).
inline grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                        const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return Handed(reactor);
}

// A server stream refused before it started: it ends at once with the
// status, writing nothing.
template <typename Response>
class RefusedStream final : public WriteReactor<Response> {
 public:
  static grpc::ServerWriteReactor<Response>* Of(const absl::Status& status) {
    auto* reactor = new RefusedStream();
    reactor->Finish(ToGrpc(status));
    return Handed(reactor);
  }
  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

 private:
  RefusedStream() = default;
};

// Finishes a unary call with `result`, moving the value into `response`.
template <typename T>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 absl::StatusOr<T> result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!result.ok()) {
    reactor->Finish(ToGrpc(result.status()));
  } else {
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  }
  return Handed(reactor);
}

// RESOURCE_EXHAUSTED when an answer of `size` bytes is larger than
// `max_bytes` (--max_outcome_bytes, which keeps answers within what gRPC
// clients accept by default); `advice` says how to ask for less.
inline absl::Status CheckAnswerSize(size_t size, int64_t max_bytes,
                                    absl::string_view advice);

// A unary reaction whose response is charged to a memory budget (weftd's
// --max_inflight_bytes) until gRPC has sent it: `charge` is what the
// response's copy was charged to, released when the call is done. With
// `max_bytes`, a response larger is refused (CheckAnswerSize).
class ChargedReactor final : public UnaryReactor {
 public:
  explicit ChargedReactor(engine::MemoryBudget* budget, int64_t max_bytes = -1,
                          std::string advice = "")
      : UnaryReactor(kShortOnDone),
        charge(budget),
        max_bytes_(max_bytes),
        advice_(std::move(advice)) {}

  // Finishes with `result`, moving the value into `response`.
  template <typename T>
  ChargedReactor* Answer(absl::StatusOr<T> result, T* response) {
    if (!result.ok()) {
      Finish(ToGrpc(result.status()));
      return this;
    }
    *response = *std::move(result);
    if (max_bytes_ >= 0) {
      // Sizes are cached: serializing does not walk the answer again.
      if (absl::Status s =
              CheckAnswerSize(response->ByteSizeLong(), max_bytes_, advice_);
          !s.ok()) {
        response->Clear();
        Finish(ToGrpc(s));
        return this;
      }
    }
    Finish(grpc::Status::OK);
    return this;
  }

  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

  engine::MemoryCharge charge;

 private:
  const int64_t max_bytes_;
  const std::string advice_;
};

inline absl::Status CheckAnswerSize(size_t size, int64_t max_bytes,
                                    absl::string_view advice) {
  if (size <= static_cast<size_t>(max_bytes)) return absl::OkStatus();
  return common::WithLimit(
      absl::ResourceExhaustedError(absl::StrCat(
          "the answer would be ", size, " bytes, more than the ", max_bytes,
          " an answer may carry (--max_outcome_bytes); ", advice)),
      common::kAnswerTooLarge, "--max_outcome_bytes", max_bytes);
}

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_REPLY_H_
