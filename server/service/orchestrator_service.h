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

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "server/auth/principals.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/memory_budget.h"
#include "server/engine/sync.h"
#include "server/engine/thread_pool.h"
#include "server/handlers/http_client.h"
#include "server/handlers/registry.h"
#include "server/lazy/lazy_sync.h"
#include "server/lazy/registry.h"
#include "server/plan/compiler.h"
#include "server/plan/pools.h"
#include "server/service/plan_cache.h"
#include "server/tasks/registry.h"
#include "weft/v1/orchestrator.grpc.pb.h"

namespace weft::service {

struct OrchestratorOptions {
  plan::Limits limits;
  // What GetServerInfo reports as the limits in force; WeftServer fills it
  // from every component's options.
  weft::v1::ServerLimits reported_limits;
  // Bounds a Run whose caller set no deadline.
  absl::Duration max_run_duration = absl::Minutes(10);
  // Runs in flight at once; beyond it Run gets RESOURCE_EXHAUSTED.
  int max_active_runs = 1000;
  // Runs in flight at once for one principal (when callers authenticate);
  // beyond it that principal's Run gets RESOURCE_EXHAUSTED (PRINCIPAL_QUOTA).
  int max_runs_per_principal = 250;
  // The largest answer carrying outcomes, plans or values (--max_outcome_bytes,
  // within the 4 MiB gRPC clients accept by default): a run, task or lazy
  // computation whose values pass it stops, its outcome the root FAILED with
  // RESOURCE_EXHAUSTED; a larger answer is refused, a page of ListTasks or
  // ListLazyValues ends before it.
  int64_t max_outcome_bytes = 4'000'000;
  // WaitTask's wait when the request gives none.
  absl::Duration default_wait = absl::Seconds(30);
  // The version GetServerInfo reports.
  std::string version = "dev";
  // What RESOURCE_EXHAUSTED tells the caller to wait before retrying.
  absl::Duration retry_after = absl::Seconds(1);
  // The most Run's plan cache keeps (service/plan_cache.h); 0: none.
  int64_t plan_cache_bytes = 16 << 20;
};

// What the service works with; it owns none of it.
struct OrchestratorDeps {
  // Required.
  const handlers::HandlerRegistry* handlers = nullptr;
  engine::Env* env = nullptr;
  tasks::TaskRegistry* tasks = nullptr;
  // Optional: without pools, offload and blocking handlers are refused.
  const plan::PoolSet* pools = nullptr;
  // Optional: without it, lazy nodes and the lazy value methods are
  // refused.
  lazy::LazyRegistry* lazies = nullptr;
  // Optional: where requests over 256 KiB are parsed and compiled (one
  // thread, off gRPC's, so that their memory is reused).
  engine::ThreadPool* large_requests = nullptr;
  // Optional: what runs in flight and responses being sent hold
  // (--max_inflight_bytes); nothing is limited without it.
  engine::MemoryBudget* inflight = nullptr;
  // Optional: the task store, which BackupStore copies; a durable one also
  // keeps the lazy-value definitions made through the API (CreateLazyValue
  // answers once it has).
  store::TaskStore* task_store = nullptr;
  // Optional, with a shared task store: keeps lazy values in step with the
  // other replicas' (ResetLazyValue counts resets through it).
  lazy::LazySync* lazy_sync = nullptr;
  // Optional: who may call (--auth_tokens). Without it, or while it is not
  // enabled, every call is the anonymous admin.
  const auth::Callers* callers = nullptr;
  // Optional: what $secret objects read (--secrets); without it they are
  // refused.
  const plan::Secrets* secrets = nullptr;
  // Optional: the http handler's client, whose traffic GetServerInfo shows.
  const handlers::HttpClient* http = nullptr;
};

// The plan a plan-bearing request carries, or null when it has none (the
// compiler then says the plan is missing).
inline const weft::v1::PlanNode* PlanOf(const weft::v1::RunRequest& r) {
  return r.has_plan() ? &r.plan() : nullptr;
}
inline const weft::v1::PlanNode* PlanOf(const weft::v1::CreateTaskRequest& r) {
  return r.has_plan() ? &r.plan() : nullptr;
}
inline const weft::v1::PlanNode* PlanOf(
    const weft::v1::CreateLazyValueRequest& r) {
  return r.lazy_value().has_plan() ? &r.lazy_value().plan() : nullptr;
}

class OrchestratorService final
    : public weft::v1::Orchestrator::WithRawCallbackMethod_Run<
          weft::v1::Orchestrator::WithRawCallbackMethod_CreateTask<
              weft::v1::Orchestrator::WithRawCallbackMethod_CreateLazyValue<
                  weft::v1::Orchestrator::CallbackService>>> {
 public:
  OrchestratorService(OrchestratorOptions options, OrchestratorDeps deps);
  // Requires that no run is in flight (the gRPC server has shut down).
  ~OrchestratorService() override;

  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request,
                                grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* ListHandlers(
      grpc::CallbackServerContext* context,
      const weft::v1::ListHandlersRequest* request,
      weft::v1::ListHandlersResponse* response) override;

  // Background tasks (task_methods.cc).
  grpc::ServerUnaryReactor* CreateTask(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const weft::v1::GetTaskRequest* request,
                                    weft::v1::Task* response) override;
  grpc::ServerUnaryReactor* ListTasks(
      grpc::CallbackServerContext* context,
      const weft::v1::ListTasksRequest* request,
      weft::v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* CancelTask(
      grpc::CallbackServerContext* context,
      const weft::v1::CancelTaskRequest* request,
      weft::v1::Task* response) override;
  grpc::ServerUnaryReactor* WaitTask(grpc::CallbackServerContext* context,
                                     const weft::v1::WaitTaskRequest* request,
                                     weft::v1::Task* response) override;
  grpc::ServerWriteReactor<weft::v1::BackupStoreResponse>* BackupStore(
      grpc::CallbackServerContext* context,
      const weft::v1::BackupStoreRequest* request) override;
  grpc::ServerWriteReactor<weft::v1::TaskEvent>* WatchTask(
      grpc::CallbackServerContext* context,
      const weft::v1::WatchTaskRequest* request) override;
  grpc::ServerUnaryReactor* DeleteTask(
      grpc::CallbackServerContext* context,
      const weft::v1::DeleteTaskRequest* request,
      google::protobuf::Empty* response) override;
  // Lazy values (lazy_methods.cc).
  grpc::ServerUnaryReactor* CreateLazyValue(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetLazyValue(
      grpc::CallbackServerContext* context,
      const weft::v1::GetLazyValueRequest* request,
      weft::v1::LazyValue* response) override;
  grpc::ServerUnaryReactor* ResolveLazyValue(
      grpc::CallbackServerContext* context,
      const weft::v1::ResolveLazyValueRequest* request,
      weft::v1::ResolveLazyValueResponse* response) override;
  grpc::ServerUnaryReactor* ResetLazyValue(
      grpc::CallbackServerContext* context,
      const weft::v1::ResetLazyValueRequest* request,
      weft::v1::LazyValue* response) override;
  grpc::ServerUnaryReactor* ListLazyValues(
      grpc::CallbackServerContext* context,
      const weft::v1::ListLazyValuesRequest* request,
      weft::v1::ListLazyValuesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteLazyValue(
      grpc::CallbackServerContext* context,
      const weft::v1::DeleteLazyValueRequest* request,
      google::protobuf::Empty* response) override;

  grpc::ServerUnaryReactor* GetServerInfo(
      grpc::CallbackServerContext* context,
      const weft::v1::GetServerInfoRequest* request,
      weft::v1::ServerInfo* response) override;

  // From now on, Run and CreateTask answer UNAVAILABLE. Runs in flight go
  // on.
  void StopAccepting();
  // Waits until no run is in flight, `deadline` passes or EndWait() is
  // called; true if no run is in flight.
  bool WaitForRuns(absl::Time deadline);
  void EndWait();
  // Cancels every run in flight; each ends CANCELLED with `reason`.
  void CancelRuns(const absl::Status& reason);

  int active_runs() const;
  // Run's compiled plans, kept by their request's bytes.
  const PlanCache& plan_cache() const { return plan_cache_; }
  // Everything GetServerInfo tells an admin: version, uptime, tasks by
  // state, runs, limits, memory budgets, pools, lazy-value caches.
  void FillServerInfo(weft::v1::ServerInfo* info) const;

 private:
  class RunReactor;
  class CreateTaskReactor;
  class WaitReactor;
  class WatchReactor;
  class CreateLazyValueReactor;
  class BackupReactor;
  class ResolveReactor;

  // The lazy registry, or UNIMPLEMENTED.
  absl::StatusOr<lazy::LazyRegistry*> Lazies() const;

  // Who makes the call: from its `authorization: Bearer` metadata, else
  // its verified client certificate's subject; UNAUTHENTICATED if neither
  // names a principal. The anonymous admin when auth is off.
  absl::StatusOr<auth::Principal> Caller(
      const grpc::CallbackServerContext& context) const;
  // As Caller, and PERMISSION_DENIED (reason ADMIN_ONLY) unless the caller
  // is an admin; `method` names the call.
  absl::StatusOr<auth::Principal> AdminCaller(
      const grpc::CallbackServerContext& context,
      absl::string_view method) const;
  // The tasks `caller` reaches: an admin's all, a user's its own.
  static tasks::Reach ReachOf(const auth::Principal& caller) {
    return caller.admin() ? tasks::Reach::All()
                          : tasks::Reach::CreatedBy(caller.name);
  }

  // Parses a request holding a plan onto a new arena and compiles the plan
  // (`plan_of` picks it out of the parsed message, nullptr when absent;
  // `path` names it in errors). On failure, the status.
  template <typename Request>
  struct Parsed {
    std::shared_ptr<google::protobuf::Arena> arena;
    Request* request = nullptr;
    std::shared_ptr<const plan::CompiledPlan> plan;
    // The memory the parsed request and its compiled plan hold.
    int64_t bytes = 0;
  };
  // `path` names the request's plan in messages.
  template <typename Request>
  absl::StatusOr<Parsed<Request>> ParseAndCompile(
      const grpc::ByteBuffer& bytes, absl::string_view path = "plan");

  // A Run's request (its outcome detail checked) and compiled plan: from
  // the plan cache, or parsed and compiled (and kept there unless it has
  // $secret objects).
  absl::StatusOr<std::shared_ptr<const PlanCache::Entry>> RunPlan(
      const grpc::ByteBuffer& bytes);

  // The one intake for plan-bearing requests (Run, CreateTask,
  // CreateLazyValue): calls `prepare` with the request's bytes, on the
  // large-request thread when they pass kLargeRequestBytes (the gRPC thread
  // stays free, and large plans' memory comes from one malloc arena), else
  // at once. When that thread's queue is full it returns the refusal and
  // does not call `prepare`.
  static constexpr size_t kLargeRequestBytes = 256 << 10;
  absl::Status Intake(
      const grpc::ByteBuffer& request,
      absl::AnyInvocable<void(const grpc::ByteBuffer&) &&> prepare);

  // Admits a run of `principal` (empty: the anonymous admin, which has no
  // quota), or returns why not. Release frees its slot among the runs in
  // flight (at OnDone), ReleasePrincipal its principal's (with its answer).
  absl::Status Admit(uint64_t* id, engine::CancellationSource* source,
                     const std::string& principal);
  void Release(uint64_t id);
  void ReleasePrincipal(const std::string& principal);

  const OrchestratorOptions options_;
  const handlers::HandlerRegistry& registry_;
  engine::Env& env_;
  tasks::TaskRegistry& tasks_;
  const plan::PoolSet* const pools_;
  lazy::LazyRegistry* const lazies_;
  engine::ThreadPool* const large_requests_;
  engine::MemoryBudget* const inflight_;
  store::TaskStore* const task_store_;
  const auth::Callers* const callers_;
  const plan::Secrets* const secrets_;
  const handlers::HttpClient* const http_;
  // The store, when it keeps lazy-value definitions (a durable one).
  store::TaskStore* const definitions_;
  lazy::LazySync* const lazy_sync_;
  // Whether a BackupStore is being made (one at a time).
  std::atomic<bool> backing_up_{false};
  // Orders a definition's change in the lazy registry and in the store the
  // same way, between callers.
  engine::Mutex definitions_mu_;
  const absl::Time started_;
  PlanCache plan_cache_;

  mutable engine::Mutex mu_;
  engine::CondVar idle_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool end_wait_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, engine::CancellationSource> runs_
      ABSL_GUARDED_BY(mu_);
  // Runs in flight per principal that has any.
  absl::flat_hash_map<std::string, int> runs_by_principal_ ABSL_GUARDED_BY(mu_);
};

// The principal a call with `metadata` (its authorization header) and
// `auth` (its verified client certificate, if any) presents to `callers`;
// the anonymous admin when `callers` is null or not enabled.
absl::StatusOr<auth::Principal> CallerOf(
    const auth::Callers* callers,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::AuthContext* auth);

// The call's W3C traceparent header, checked and rebuilt
// (common::Traceparent), or "" if it sent none or a malformed one.
std::string TraceparentOf(const grpc::CallbackServerContext& context);

// INVALID_ARGUMENT for an OutcomeDetail number the API does not define.
absl::Status CheckOutcomeDetail(int detail);

// Cuts a task's outcome down to what a request asked for: one node's (by
// its path, `node`), and that node alone with its value built
// (OUTCOME_DETAIL_ROOT). NOT_FOUND for a path that names no node;
// FAILED_PRECONDITION for a path into a task not ended yet.
absl::Status ShapeOutcome(weft::v1::OutcomeDetail detail,
                          absl::string_view node, weft::v1::Task* task);

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_ORCHESTRATOR_SERVICE_H_
