// Small helpers the Orchestrator's method files share for answering RPCs.

#ifndef WEFT_SERVER_SERVICE_REPLY_H_
#define WEFT_SERVER_SERVICE_REPLY_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"
#include "server/engine/memory_budget.h"
#include "server/handlers/text.h"

namespace weft::service {

// The status for gRPC, its message cut to kMaxMessageBytes: it travels in a
// trailer, which clients refuse beyond a few KiB.
inline grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      handlers::Abbreviate(s.message()));
}

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
  return reactor;
}

// A unary reaction whose response is charged to a memory budget (weftd's
// --max_inflight_bytes) until gRPC has sent it: `charge` is what the
// response's copy was charged to, released when the call is done.
class ChargedReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit ChargedReactor(engine::MemoryBudget* budget) : charge(budget) {}

  // Finishes with `result`, moving the value into `response`.
  template <typename T>
  ChargedReactor* Answer(absl::StatusOr<T> result, T* response) {
    if (!result.ok()) {
      Finish(ToGrpc(result.status()));
    } else {
      *response = *std::move(result);
      Finish(grpc::Status::OK);
    }
    return this;
  }

  void OnDone() override { delete this; }

  engine::MemoryCharge charge;
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_REPLY_H_
