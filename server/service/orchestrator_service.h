// weft.v1.Orchestrator over gRPC's callback API: translates RPCs into plan
// compilation and execution, and outcomes into responses. Nothing else.
//
// Run is a raw method: the service parses the request bytes itself, so that
// a plan nested deeper than protobuf's default parser allows is answered with
// INVALID_ARGUMENT naming --max_plan_depth, not a bare INTERNAL. A reaction
// never blocks: Run compiles the plan, hands it to the interpreter, and
// Finish() is called from whichever thread finishes the plan (inline for a
// plan of value calls).
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_SERVICE_ORCHESTRATOR_SERVICE_H_
#define WEFT_SERVER_SERVICE_ORCHESTRATOR_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/sync.h"
#include "server/engine/thread_pool.h"
#include "server/handlers/registry.h"
#include "server/plan/compiler.h"
#include "server/plan/pools.h"
#include "weft/v1/orchestrator.grpc.pb.h"

namespace weft::service {

struct OrchestratorOptions {
  plan::Limits limits;
  // Bounds a Run whose caller set no deadline.
  absl::Duration max_run_duration = absl::Minutes(10);
  // Runs in flight at once; beyond it Run gets RESOURCE_EXHAUSTED.
  int max_active_runs = 1000;
  // Largest serialized outcome a Run returns (at most 2^31 - 1, gRPC's
  // limit); a larger one gets RESOURCE_EXHAUSTED.
  int max_outcome_bytes = 64 << 20;
  // What RESOURCE_EXHAUSTED tells the caller to wait before retrying.
  absl::Duration retry_after = absl::Seconds(1);
};

class OrchestratorService final
    : public weft::v1::Orchestrator::WithRawCallbackMethod_Run<
          weft::v1::Orchestrator::CallbackService> {
 public:
  // `pools` may be null (then offload and blocking handlers are refused).
  // `large_requests`, if given, is where requests over 256 KiB are parsed
  // and compiled (one thread, so that their memory is reused).
  OrchestratorService(OrchestratorOptions options,
                      const handlers::HandlerRegistry& registry,
                      engine::Env& env, const plan::PoolSet* pools,
                      engine::ThreadPool* large_requests = nullptr);

  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request,
                                grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* ListHandlers(
      grpc::CallbackServerContext* context,
      const weft::v1::ListHandlersRequest* request,
      weft::v1::ListHandlersResponse* response) override;

  // From now on, Run answers UNAVAILABLE. Runs in flight go on.
  void StopAccepting();
  // Waits until no run is in flight, `deadline` passes or EndWait() is
  // called; true if no run is in flight.
  bool WaitForRuns(absl::Time deadline);
  void EndWait();
  // Cancels every run in flight; each ends CANCELLED with `reason`.
  void CancelRuns(const absl::Status& reason);

  int active_runs() const;

 private:
  class RunReactor;

  // Admits a run, or returns why not.
  absl::Status Admit(uint64_t* id, engine::CancellationSource* source);
  void Release(uint64_t id);

  const OrchestratorOptions options_;
  const handlers::HandlerRegistry& registry_;
  engine::Env& env_;
  const plan::PoolSet* const pools_;
  engine::ThreadPool* const large_requests_;

  mutable engine::Mutex mu_;
  engine::CondVar idle_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool end_wait_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, engine::CancellationSource> runs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_ORCHESTRATOR_SERVICE_H_
