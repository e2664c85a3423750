#include "server/weftd/server.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "proto/descriptor_set.h"
#include "server/common/errors.h"
#include "server/common/proto_time.h"

namespace weft::weftd {
namespace {

// `options` charging their runs to `inflight`.
template <typename Options>
Options WithInflight(Options options, engine::MemoryBudget* inflight) {
  options.inflight = inflight;
  return options;
}

// The tasks' options as weftd runs them: a failed store write is logged.
tasks::TaskOptions TaskOptionsOf(tasks::TaskOptions options,
                                 engine::MemoryBudget* inflight) {
  options = WithInflight(std::move(options), inflight);
  options.on_store_error = [](const absl::Status& s) {
    std::cerr << "weftd: " << s.message() << std::endl;
  };
  return options;
}

// What reflection describes: every service weftd registers. The descriptor
// set is built with weft, so a failure here is a build defect.
std::unique_ptr<const service::ReflectionIndex> ServedDescriptors() {
  absl::StatusOr<std::unique_ptr<const service::ReflectionIndex>> index =
      service::ReflectionIndex::Create(
          absl::string_view(proto::DescriptorSet().data(),
                            proto::DescriptorSet().size()),
          {"weft.v1.Orchestrator", "grpc.health.v1.Health",
           "grpc.reflection.v1.ServerReflection",
           "grpc.reflection.v1alpha.ServerReflection"});
  if (!index.ok()) {
    std::cerr << "weftd: " << index.status().message() << std::endl;
    std::abort();
  }
  return *std::move(index);
}

}  // namespace

WeftServer::WeftServer(ServerOptions options)
    : options_(std::move(options)),
      inflight_(options_.max_inflight_bytes,
                "the runs, tasks and answers in flight",
                "--max_inflight_bytes"),
      loop_(options_.event_loop_threads),
      pools_(options_.pools),
      large_requests_("large", 1, options_.orchestrator.max_active_runs),
      lazies_(loop_, WithInflight(options_.lazies, &inflight_)),
      task_store_(options_.task_store != nullptr
                      ? options_.task_store
                      : std::make_shared<store::InMemoryTaskStore>()),
      tasks_(loop_, *task_store_, TaskOptionsOf(options_.tasks, &inflight_)),
      reflection_index_(ServedDescriptors()) {
  registered_ = handlers::RegisterBuiltinHandlers(registry_);
  handlers::HttpOptions http_options = options_.http;
  http_options.memory = &inflight_;
  absl::StatusOr<std::unique_ptr<handlers::HttpClient>> http =
      handlers::HttpClient::Create(std::move(http_options));
  if (http.ok()) {
    http_ = *std::move(http);
    registered_.Update(handlers::RegisterHttpHandler(registry_, *http_));
  } else {
    std::cerr << "weftd: the http handler is not available: "
              << http.status().message() << std::endl;
  }
  service::OrchestratorOptions orchestrator = options_.orchestrator;
  weft::v1::ServerLimits& l = orchestrator.reported_limits;
  l.set_max_plan_nodes(orchestrator.limits.max_plan_nodes);
  l.set_max_plan_depth(orchestrator.limits.max_plan_depth);
  l.set_max_value_depth(orchestrator.limits.max_value_depth);
  l.set_max_map_items(orchestrator.limits.max_map_items);
  l.set_max_message_bytes(options_.max_message_bytes);
  l.set_max_outcome_bytes(orchestrator.max_outcome_bytes);
  l.set_max_active_runs(orchestrator.max_active_runs);
  common::SetDuration(orchestrator.max_run_duration,
                      l.mutable_max_run_duration());
  l.set_max_running_tasks(options_.tasks.max_running_tasks);
  l.set_max_queued_tasks(options_.tasks.max_queued_tasks);
  l.set_max_running_tasks_per_principal(
      options_.tasks.max_running_per_principal);
  l.set_max_queued_tasks_per_principal(options_.tasks.max_queued_per_principal);
  l.set_max_runs_per_principal(orchestrator.max_runs_per_principal);
  l.set_max_retained_tasks(options_.tasks.max_retained_tasks);
  common::SetDuration(options_.tasks.task_retention,
                      l.mutable_task_retention());
  common::SetDuration(options_.tasks.max_task_duration,
                      l.mutable_max_task_duration());
  l.set_max_lazy_values(options_.lazies.max_values);
  common::SetDuration(options_.lazies.compute_timeout,
                      l.mutable_lazy_compute_timeout());
  if (task_store_->shared()) {
    // Started by RestoreLazyValues.
    lazy_sync_ = std::make_unique<lazy::LazySync>(
        *task_store_, lazies_,
        [this](const std::string& id, const std::string& bytes) {
          return DeclareStored(id, bytes);
        });
  }
  orchestrator_ = std::make_unique<service::OrchestratorService>(
      orchestrator,
      service::OrchestratorDeps{.handlers = &registry_,
                                .env = &loop_,
                                .tasks = &tasks_,
                                .pools = &pools_,
                                .lazies = &lazies_,
                                .large_requests = &large_requests_,
                                .inflight = &inflight_,
                                .task_store = task_store_.get(),
                                .lazy_sync = lazy_sync_.get(),
                                .callers = options_.callers.get(),
                                .secrets = options_.secrets.get(),
                                .http = http_.get()});
}

WeftServer::~WeftServer() {
  if (server_ != nullptr && !shut_down_) Shutdown(absl::ZeroDuration());
}

absl::Status WeftServer::DeclareLazyValues(
    const weft::v1::ServerConfig& config) {
  for (int i = 0; i < config.lazy_values_size(); ++i) {
    const std::string where = absl::StrCat("lazy_values[", i, "]");
    config_lazy_values_[config.lazy_values(i).lazy_value_id()] =
        config.lazy_values(i).lazy_value().SerializeAsString();
    auto request = std::make_shared<const weft::v1::CreateLazyValueRequest>(
        config.lazy_values(i));
    absl::StatusOr<std::unique_ptr<const plan::CompiledPlan>> compiled =
        plan::Compile(service::PlanOf(*request), request,
                      absl::StrCat(where, ".lazy_value.plan"), registry_,
                      options_.orchestrator.limits, &pools_, &lazies_,
                      options_.secrets.get());
    if (!compiled.ok()) return compiled.status();
    absl::StatusOr<weft::v1::LazyValue> created = lazies_.Create(
        request->lazy_value_id(), request->lazy_value(), *std::move(compiled),
        static_cast<int64_t>(request->SpaceUsedLong()));
    if (!created.ok()) {
      return absl::Status(
          created.status().code(),
          absl::StrCat(
              where,
              absl::StartsWith(created.status().message(), "lazy_value") ? "."
                                                                         : ": ",
              created.status().message()));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> WeftServer::RestoreLazyValues() {
  std::vector<std::string> log;
  for (const auto& [id, bytes] : task_store_->LazyValues()) {
    const std::string name = absl::StrCat("lazyValues/", id);
    auto request = std::make_shared<weft::v1::CreateLazyValueRequest>();
    if (!request->ParseFromString(bytes)) {
      log.push_back(absl::StrCat(name,
                                 " in the store does not parse; it "
                                 "stays there and is not declared"));
      continue;
    }
    auto config = config_lazy_values_.find(id);
    if (config != config_lazy_values_.end()) {
      // The config file's values are the config's.
      if (config->second != request->lazy_value().SerializeAsString()) {
        log.push_back(absl::StrCat(
            name,
            ": the config file declares it, and its definition replaces the "
            "one made through the API"));
      }
      // Replicas keep it: another replica's config may not declare it
      // (during a rolling change of config files).
      if (task_store_->shared()) continue;
      task_store_->EraseLazyValue(id, [name](absl::Status s) {
        if (!s.ok()) {
          std::cerr << "weftd: the store could not forget " << name << ": "
                    << s.message() << std::endl;
        }
      });
      continue;
    }
    if (absl::Status declared = DeclareStored(id, bytes); !declared.ok()) {
      log.push_back(absl::StrCat(name,
                                 " (made through the API) could not be "
                                 "declared again: ",
                                 declared.message(),
                                 "; it stays in the store"));
    }
  }
  if (lazy_sync_ != nullptr) {
    std::set<std::string> config_ids;
    for (const auto& [id, definition] : config_lazy_values_) {
      config_ids.insert(id);
    }
    for (std::string& line : lazy_sync_->Start(std::move(config_ids))) {
      log.push_back(line);
    }
  }
  return log;
}

absl::Status WeftServer::DeclareStored(const std::string& id,
                                       const std::string& bytes) {
  auto request = std::make_shared<weft::v1::CreateLazyValueRequest>();
  if (!request->ParseFromString(bytes)) {
    return absl::DataLossError("its definition in the store does not parse");
  }
  absl::StatusOr<std::unique_ptr<const plan::CompiledPlan>> compiled =
      plan::Compile(service::PlanOf(*request), request, "lazy_value.plan",
                    registry_, options_.orchestrator.limits, &pools_, &lazies_,
                    options_.secrets.get());
  if (!compiled.ok()) return compiled.status();
  return lazies_
      .Create(id, request->lazy_value(), *std::move(compiled),
              static_cast<int64_t>(request->SpaceUsedLong()))
      .status();
}

tasks::TaskRegistry::CompileFn WeftServer::StoredPlanCompiler() {
  return [this](std::shared_ptr<const weft::v1::PlanNode> plan)
             -> absl::StatusOr<std::shared_ptr<const plan::CompiledPlan>> {
    const weft::v1::PlanNode* root = plan.get();
    absl::StatusOr<std::unique_ptr<const plan::CompiledPlan>> compiled =
        plan::Compile(root, std::move(plan), "plan", registry_,
                      options_.orchestrator.limits, &pools_, &lazies_,
                      options_.secrets.get());
    if (!compiled.ok()) return compiled.status();
    return std::shared_ptr<const plan::CompiledPlan>(*std::move(compiled));
  };
}

tasks::Recovery WeftServer::RecoverTasks() {
  return tasks_.Recover(StoredPlanCompiler());
}

tasks::Recovery WeftServer::AdoptTasks(std::vector<store::TakenTask> tasks) {
  return tasks_.Adopt(std::move(tasks), StoredPlanCompiler());
}

absl::StatusOr<std::string> WeftServer::Start() {
  if (!registered_.ok()) return registered_;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen,
                           options_.credentials != nullptr
                               ? options_.credentials
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which would let a second weftd bind
  // the same port and split its traffic: fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!options_.metrics_listen.empty()) {
    rpc_metrics_ = std::make_unique<RpcMetrics>();
  }
  if (options_.access_log != nullptr || rpc_metrics_ != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(CallInterceptors(
        options_.access_log, rpc_metrics_.get(), options_.callers.get()));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(orchestrator_.get());
  builder.RegisterService(&health_);
  builder.RegisterService(&reflection_v1_);
  builder.RegisterService(&reflection_v1alpha_);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen,
                     " (--listen): the address is in use or not valid"));
  }
  const size_t colon = options_.listen.rfind(':');
  address_ = absl::StrCat(options_.listen.substr(0, colon), ":", port);
  if (rpc_metrics_ != nullptr) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options_.metrics_listen,
                             [this] { return RenderMetrics(); });
    if (!metrics.ok()) {
      server_->Shutdown();
      server_.reset();
      return absl::Status(
          metrics.status().code(),
          absl::StrCat("--metrics_listen ", metrics.status().message()));
    }
    metrics_server_ = *std::move(metrics);
  }
  return address_;
}

std::string WeftServer::RenderMetrics() const {
  std::string out;
  if (rpc_metrics_ != nullptr) rpc_metrics_->Render(&out);
  weft::v1::ServerInfo info;
  orchestrator_->FillServerInfo(&info);
  RenderServerInfo(info, &out);
  return out;
}

ShutdownReport WeftServer::Shutdown(absl::Duration grace) {
  ShutdownReport report;
  if (shut_down_ || server_ == nullptr) return report;
  shut_down_ = true;
  const absl::Status reason = common::WithReason(
      absl::CancelledError("server shutting down"), common::kShuttingDown);
  health_.SetServing(false);
  orchestrator_->StopAccepting();
  // Queued tasks end CANCELLED now (with a durable store, they stay).
  tasks_.StopAccepting(reason);
  const bool durable = task_store_->durable();
  report.runs_in_flight = orchestrator_->active_runs();
  report.tasks_running = tasks_.running();
  const absl::Time deadline = absl::Now() + grace;
  const bool runs_done = orchestrator_->WaitForRuns(deadline);
  bool tasks_done;
  for (;;) {  // In slices, so that a cut-short grace period ends this too.
    tasks_done = tasks_.WaitForRunning(
        std::min(deadline, absl::Now() + absl::Milliseconds(50)));
    if (tasks_done || absl::Now() >= deadline || grace_cut_short_.load()) break;
  }
  report.grace_cut_short = grace_cut_short_.load();
  if (!runs_done) {
    report.runs_cancelled = orchestrator_->active_runs();
    orchestrator_->CancelRuns(reason);
  }
  if (!tasks_done && durable) {
    // Left RUNNING in the store: the next start resumes them.
    report.tasks_stopped = tasks_.running();
    tasks_.Suspend(reason);
  } else if (!tasks_done) {
    report.tasks_cancelled = tasks_.running();
    tasks_.CancelRunning(reason);  // Waits until each is recorded.
  }
  if (durable) {
    const std::map<weft::v1::TaskState, int> counts = tasks_.Counts();
    for (auto state :
         {weft::v1::TASK_STATE_QUEUED, weft::v1::TASK_STATE_RUNNING}) {
      auto it = counts.find(state);
      if (it != counts.end()) report.tasks_kept += it->second;
    }
  }
  // Resolvers still waiting (ResolveLazyValue calls) get ABORTED.
  lazies_.CloseAll(reason);
  health_.Shutdown();
  // Cancelled runs finish at once; the deadline only bounds calls that do
  // not (none should).
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  server_->Wait();
  return report;
}

void WeftServer::EndGracePeriod() {
  grace_cut_short_.store(true);
  orchestrator_->EndWait();
}

}  // namespace weft::weftd
