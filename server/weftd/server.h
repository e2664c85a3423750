// WeftServer: weftd's parts wired together (event loop, handlers, the
// Orchestrator and Health services, reflection) behind one Start/Shutdown
// pair, so that tests run the same server in-process that weftd runs.
//
// Thread-safety: Start() and Shutdown() are for one owning thread; the
// server they run is thread-safe.

#ifndef WEFT_SERVER_WEFTD_SERVER_H_
#define WEFT_SERVER_WEFTD_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "server/auth/principals.h"
#include "server/engine/event_loop.h"
#include "server/handlers/http.h"
#include "server/handlers/registry.h"
#include "server/lazy/lazy_sync.h"
#include "server/plan/pools.h"
#include "server/service/health_service.h"
#include "server/service/orchestrator_service.h"
#include "server/service/reflection_service.h"
#include "server/store/task_store.h"
#include "server/tasks/registry.h"
#include "server/weftd/access_log.h"
#include "server/weftd/metrics.h"
#include "weft/v1/config.pb.h"

namespace weft::weftd {

struct ServerOptions {
  // host:port; port 0 picks a free port.
  std::string listen = "127.0.0.1:50051";
  // The memory runs in flight and responses being sent may hold
  // (--max_inflight_bytes).
  int64_t max_inflight_bytes = int64_t{512} << 20;
  service::OrchestratorOptions orchestrator;
  // Requests larger than this are refused by gRPC (RESOURCE_EXHAUSTED).
  int max_message_bytes = 4 << 20;
  // Threads of the engine's event loop.
  int event_loop_threads = 2;
  // Thread pools for offload nodes and blocking handlers; must name
  // "default".
  std::vector<plan::PoolSpec> pools = {{"default", 2, 1000}};
  // Background tasks: admission, retention, longest run.
  tasks::TaskOptions tasks;
  // Lazy values: how long one computation may run, how many may exist.
  lazy::LazyRegistry::Options lazies;
  // The http handler: allowed destinations, proxy.
  handlers::HttpOptions http;
  // Where tasks are kept (--store); null for memory.
  std::shared_ptr<store::TaskStore> task_store;
  // The listener's credentials (TlsFiles); null for plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Who may call (--auth_tokens); null: every call is the anonymous admin.
  // Shared so that weftd can replace its table on SIGHUP.
  std::shared_ptr<auth::Callers> callers;
  // Optional: the secrets {"$secret": NAME} reads (--secrets); without
  // them, plans with $secret are refused.
  std::shared_ptr<plan::Secrets> secrets;
  // Optional: one JSON line per RPC (--access_log); must outlive the server.
  AccessLog* access_log = nullptr;
  // Where to serve GET /metrics (--metrics_listen, HOST:PORT); empty: off.
  std::string metrics_listen;
};

// What Shutdown() did, for its log line.
struct ShutdownReport {
  int runs_in_flight = 0;   // When shutdown began.
  int runs_cancelled = 0;   // Still running when the grace period ended.
  int tasks_running = 0;    // When shutdown began.
  int tasks_cancelled = 0;  // Still running when the grace period ended.
  // With a durable store, instead of cancelling: tasks still running when
  // the grace period ended, stopped to resume at the next start; and all
  // the unfinished tasks (those and the queued ones) left in the store.
  int tasks_stopped = 0;
  int tasks_kept = 0;
  bool grace_cut_short = false;  // By EndGracePeriod().
};

class WeftServer {
 public:
  explicit WeftServer(ServerOptions options);
  ~WeftServer();

  // Declares the config's lazy values, as CreateLazyValue would. Errors
  // name the value: "lazy_values[1].lazy_value.plan.call.handler: ...".
  absl::Status DeclareLazyValues(const weft::v1::ServerConfig& config);

  // Declares again the lazy values made through the API that a durable
  // store keeps (after DeclareLazyValues: a value the config file declares
  // is the config's, and the stored one is dropped). Returns what to log:
  // replaced definitions, and ones that no longer compile (they stay in the
  // store).
  // Replicas (a shared store): then keeps the lazy values in step with the
  // other replicas' (LazySync).
  std::vector<std::string> RestoreLazyValues();

  // Takes back the tasks a durable store holds (TaskRegistry::Recover):
  // after RestoreLazyValues, before Start.
  tasks::Recovery RecoverTasks();
  // Takes over tasks a replica whose lease ended left
  // (TaskRegistry::Adopt): finished ones served, running ones resumed from
  // their journal. Not after Shutdown.
  tasks::Recovery AdoptTasks(std::vector<store::TakenTask> tasks);

  // Binds and starts serving. Returns the bound "host:port".
  absl::StatusOr<std::string> Start();

  // Health turns NOT_SERVING and new Runs get UNAVAILABLE at once; runs in
  // flight get `grace` to finish and are then cancelled ("server shutting
  // down"); then the server stops. Tasks: with the memory store, queued
  // ones end CANCELLED at once and running ones are cancelled with the
  // runs; with a durable store, none is cancelled: what is unfinished when
  // the grace period ends stays in the store and resumes at the next start.
  ShutdownReport Shutdown(absl::Duration grace);
  // Ends a Shutdown()'s grace period now (from another thread).
  void EndGracePeriod();

  // For tests.
  service::OrchestratorService& orchestrator() { return *orchestrator_; }
  const engine::MemoryBudget& inflight() const { return inflight_; }
  const plan::PoolSet& pools() const { return pools_; }
  tasks::TaskRegistry& tasks() { return tasks_; }
  const engine::EventLoop& loop() const { return loop_; }
  // The thread that parses and compiles requests over 256 KiB (for tests).
  engine::ThreadPool& large_requests() { return large_requests_; }
  lazy::LazyRegistry& lazies() { return lazies_; }
  service::HealthService& health() { return health_; }
  const std::string& address() const { return address_; }
  // Where GET /metrics is served (HOST:PORT), or "" without metrics.
  std::string metrics_address() const {
    return metrics_server_ == nullptr ? "" : metrics_server_->address();
  }
  // The text GET /metrics answers.
  std::string RenderMetrics() const;

 private:
  // Compiles a stored CreateLazyValueRequest and declares it.
  absl::Status DeclareStored(const std::string& id, const std::string& bytes);
  // Compiles a stored task's plan again (Recover, Adopt).
  tasks::TaskRegistry::CompileFn StoredPlanCompiler();
  const ServerOptions options_;
  // First, so that it outlives everything charged to it.
  engine::MemoryBudget inflight_;
  engine::EventLoop loop_;
  // After the loop, which its calls answer on; before everything that runs
  // plans, so it outlives them.
  std::unique_ptr<handlers::HttpClient> http_;
  plan::PoolSet pools_;
  // Parses and compiles requests over 256 KiB (see
  // service::OrchestratorService).
  engine::ThreadPool large_requests_;
  handlers::HandlerRegistry registry_;
  // Whether every handler registered; Start fails with the first error.
  absl::Status registered_;
  // Before the tasks: their plans may resolve lazy values.
  lazy::LazyRegistry lazies_;
  const std::shared_ptr<store::TaskStore> task_store_;
  tasks::TaskRegistry tasks_;
  // Replicas: before the tasks and lazy values it refreshes, so that it
  // stops first.
  std::unique_ptr<lazy::LazySync> lazy_sync_;
  std::unique_ptr<service::OrchestratorService> orchestrator_;
  service::HealthService health_;
  // Server reflection from the descriptor set built with weft.
  const std::unique_ptr<const service::ReflectionIndex> reflection_index_;
  service::ReflectionV1Service reflection_v1_{reflection_index_.get()};
  service::ReflectionV1AlphaService reflection_v1alpha_{
      reflection_index_.get()};
  // The config file's lazy values: id -> serialized definition.
  std::map<std::string, std::string> config_lazy_values_;
  // Counted by the interceptors, so it outlives the gRPC server.
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  // Last: stopped first, as it reads everything above.
  std::unique_ptr<MetricsServer> metrics_server_;
  bool shut_down_ = false;
  std::atomic<bool> grace_cut_short_{false};
};

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_SERVER_H_
