#include "server/service/orchestrator_service.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/proto_time.h"
#include "server/common/text.h"
#include "server/plan/interpreter.h"
#include "server/service/reactor.h"
#include "server/service/reply.h"
#include "server/service/request_parser.h"

namespace weft::service {
namespace {

weft::v1::ArgumentType ToProto(handlers::ArgType t) {
  switch (t) {
    case handlers::ArgType::kAny:
      return weft::v1::ARGUMENT_TYPE_ANY;
    case handlers::ArgType::kString:
      return weft::v1::ARGUMENT_TYPE_STRING;
    case handlers::ArgType::kNumber:
      return weft::v1::ARGUMENT_TYPE_NUMBER;
    case handlers::ArgType::kInteger:
      return weft::v1::ARGUMENT_TYPE_INTEGER;
    case handlers::ArgType::kBool:
      return weft::v1::ARGUMENT_TYPE_BOOL;
    case handlers::ArgType::kDuration:
      return weft::v1::ARGUMENT_TYPE_DURATION;
    case handlers::ArgType::kCode:
      return weft::v1::ARGUMENT_TYPE_CODE;
    case handlers::ArgType::kObject:
      return weft::v1::ARGUMENT_TYPE_OBJECT;
    case handlers::ArgType::kList:
      return weft::v1::ARGUMENT_TYPE_LIST;
  }
  return weft::v1::ARGUMENT_TYPE_UNSPECIFIED;
}

}  // namespace

// One Run call, from admission to Finish(). Deleted by OnDone().
class OrchestratorService::RunReactor final : public UnaryReactor {
 public:
  RunReactor(OrchestratorService* service, grpc::ByteBuffer* response,
             std::string principal)
      : UnaryReactor(kShortOnDone),
        service_(service),
        response_(response),
        charge_(service->inflight_),
        principal_(std::move(principal)) {}

  void Start(grpc::CallbackServerContext* context,
             const grpc::ByteBuffer* request) {
    // Admission first: when the server is full or shutting down, say so
    // before spending time on the request.
    context_ = context;
    if (absl::Status s = service_->Admit(&run_id_, &source_, principal_);
        !s.ok()) {
      Refuse(s);
      return;
    }
    admitted_ = true;  // OnDone releases the slot, whatever happens next.
    // The principal's slot goes with the answer (Finish): a client whose
    // next call follows the answer must not find its last one still
    // counted while gRPC gets round to OnDone.
    principal_held_ = !principal_.empty();

    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      caller_deadline_ = absl::FromChrono(context->deadline());
    }
    traceparent_ = TraceparentOf(*context);
    // Large requests are parsed and compiled on a thread of their own: the
    // gRPC thread stays free, and the memory of large plans comes from one
    // malloc arena, reused run after run, rather than from whichever gRPC
    // thread took the call.
    if (absl::Status s = service_->Intake(
            *request,
            [this](const grpc::ByteBuffer& bytes) { Prepare(bytes); });
        !s.ok()) {
      Refuse(s);
    }
  }

 private:
  // Parses, compiles and starts the plan; the outcome arrives in OnOutcome.
  void Prepare(const grpc::ByteBuffer& request) {
    absl::StatusOr<std::shared_ptr<const PlanCache::Entry>> parsed =
        service_->RunPlan(request);
    if (!parsed.ok()) {
      Finish(ToGrpc(parsed.status()));
      return;
    }
    const PlanCache::Entry& entry = **parsed;
    // The request is held until the run ends (charged to each run, whether
    // or not the cache shares it).
    const int64_t request_bytes = entry.bytes;
    if (!charge_.TryAdd(request_bytes)) {
      Refuse(charge_.Refusal(request_bytes, "this run's request"));
      return;
    }
    root_only_ = entry.request->detail() == weft::v1::OUTCOME_DETAIL_ROOT;
    const bool root_only = root_only_;
    std::shared_ptr<const plan::CompiledPlan> compiled = entry.plan;

    plan::RunOptions options;
    options.env = &service_->env_;
    options.token = source_.token();
    options.source = &source_;
    options.root_only = root_only;
    options.max_outcome_bytes = service_->options_.max_outcome_bytes;
    options.memory = &charge_;
    options.traceparent = std::move(traceparent_);
    if (caller_deadline_ == absl::InfiniteFuture()) {
      options.deadline =
          service_->env_.Now() + service_->options_.max_run_duration;
      options.deadline_message = absl::StrCat(
          "the run took longer than ",
          common::FormatJsonDuration(service_->options_.max_run_duration),
          ", the limit for a call without a deadline (--max_run_duration)");
    } else {
      // The caller sees DEADLINE_EXCEEDED from gRPC at that moment; the
      // plan stops with it.
      options.deadline = caller_deadline_;
      options.deadline_message = "the caller's deadline passed";
    }
    plan::Execute(std::move(compiled), std::move(options),
                  [this](weft::v1::NodeOutcome outcome) {
                    OnOutcome(std::move(outcome));
                  });
  }

 public:
  // gRPC calls this when the caller cancels or disconnects, and when the
  // caller's deadline passes.
  void OnCancel() override {
    CalledByGrpc(this);
    caller_cancelled_.store(true, std::memory_order_release);
    source_.Cancel(common::WithReason(
        absl::CancelledError("the call ended: the caller cancelled it, went "
                             "away, or its deadline passed"),
        common::kRunCancelled));
  }

  void OnDone() override {
    CalledByGrpc(this);
    ReleasePrincipal();
    if (admitted_) service_->Release(run_id_);
    delete this;
  }

  void Finish(grpc::Status status) {
    ReleasePrincipal();
    UnaryReactor::Finish(std::move(status));
  }

 private:
  void ReleasePrincipal() {
    if (principal_held_) {
      principal_held_ = false;
      service_->ReleasePrincipal(principal_);
    }
  }

  // RESOURCE_EXHAUSTED (with gRPC's retry pushback) or another refusal.
  void Refuse(const absl::Status& s) {
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      context_->AddTrailingMetadata("grpc-retry-pushback-ms",
                                    std::to_string(absl::ToInt64Milliseconds(
                                        service_->options_.retry_after)));
    }
    Finish(ToGrpc(s));
  }

  void OnOutcome(weft::v1::NodeOutcome outcome) {
    // A caller that has gone gets a status, not an outcome it cannot read.
    if (caller_cancelled_.load(std::memory_order_acquire)) {
      Finish(
          grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
      return;
    }
    if (outcome.state() == weft::v1::NODE_STATE_TIMED_OUT &&
        service_->env_.Now() >= caller_deadline_) {
      Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the caller's deadline passed"));
      return;
    }
    weft::v1::RunResponse response;
    *response.mutable_outcome() = std::move(outcome);
    // The values were counted as they were made; ids, times and messages
    // come on top. The answer stays within the limit whatever they add.
    size_t size = response.ByteSizeLong();
    const auto limit =
        static_cast<size_t>(service_->options_.max_outcome_bytes);
    if (size > limit) {
      *response.mutable_outcome() = plan::RootFailed(
          response.outcome(),
          common::WithLimit(
              absl::ResourceExhaustedError(absl::StrCat(
                  "the outcome is ", size, " bytes, more than ", limit,
                  " (--max_outcome_bytes); ",
                  root_only_ ? "return smaller values"
                             : "ask for OUTCOME_DETAIL_ROOT or return "
                               "smaller values")),
              common::kAnswerTooLarge, "--max_outcome_bytes",
              static_cast<int64_t>(limit)));
      size = response.ByteSizeLong();
    }
    if (absl::Status s = SerializeSizedResponse(response, size, response_);
        !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    Finish(grpc::Status::OK);
  }

  OrchestratorService* const service_;
  grpc::ByteBuffer* const response_;
  grpc::CallbackServerContext* context_ = nullptr;
  // The request, the run's values, then its answer until it is sent.
  engine::MemoryCharge charge_;
  // The caller (empty: the anonymous admin): its runs count against
  // --max_runs_per_principal.
  const std::string principal_;
  engine::CancellationSource source_;
  uint64_t run_id_ = 0;
  bool admitted_ = false;
  // Whether the run still counts against its principal's quota.
  bool principal_held_ = false;
  bool root_only_ = false;
  std::atomic<bool> caller_cancelled_{false};
  absl::Time caller_deadline_ = absl::InfiniteFuture();
  std::string traceparent_;
};

OrchestratorService::OrchestratorService(OrchestratorOptions options,
                                         OrchestratorDeps deps)
    : options_(std::move(options)),
      registry_(*deps.handlers),
      env_(*deps.env),
      tasks_(*deps.tasks),
      pools_(deps.pools),
      lazies_(deps.lazies),
      large_requests_(deps.large_requests),
      inflight_(deps.inflight),
      task_store_(deps.task_store),
      callers_(deps.callers != nullptr && deps.callers->enabled() ? deps.callers
                                                                  : nullptr),
      secrets_(deps.secrets),
      http_(deps.http),
      definitions_(deps.task_store != nullptr && deps.task_store->durable()
                       ? deps.task_store
                       : nullptr),
      lazy_sync_(deps.lazy_sync),
      started_(absl::Now()),
      plan_cache_(options_.plan_cache_bytes) {}

absl::Status OrchestratorService::Intake(
    const grpc::ByteBuffer& request,
    absl::AnyInvocable<void(const grpc::ByteBuffer&) &&> prepare) {
  if (request.Length() <= kLargeRequestBytes || large_requests_ == nullptr) {
    std::move(prepare)(request);
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> queued =
      large_requests_->Submit([prepare = std::move(prepare),
                               copy = grpc::ByteBuffer(request)]() mutable {
        std::move(prepare)(copy);
      });
  if (queued.ok() || common::Reason(queued.status()) != common::kPoolFull) {
    return queued.status();  // Queued, or weftd is stopping.
  }
  // The pool's own message would point at --pools, which does not size it.
  return common::WithRetryDelay(
      common::WithLimit(
          absl::ResourceExhaustedError(absl::StrCat(
              "too many requests over ", kLargeRequestBytes / 1024,
              " KiB are waiting to be read: the large-request thread takes "
              "one at a time and at most ",
              options_.max_active_runs,
              " waiting (--max_active_runs); retry after ",
              common::FormatJsonDuration(options_.retry_after))),
          common::kPoolFull, "--max_active_runs", options_.max_active_runs),
      options_.retry_after);
}

template <typename Request>
absl::StatusOr<OrchestratorService::Parsed<Request>>
OrchestratorService::ParseAndCompile(const grpc::ByteBuffer& bytes,
                                     absl::string_view path) {
  // The request lives on an arena that the compiled plan keeps: one
  // allocation for many nodes, and one release.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size =
      std::clamp<size_t>(bytes.Length() * 8, 1 << 10, 1 << 20);
  arena_options.max_block_size = 1 << 20;
  Parsed<Request> out;
  out.arena = std::make_shared<google::protobuf::Arena>(arena_options);
  out.request =
      google::protobuf::Arena::CreateMessage<Request>(out.arena.get());
  if (absl::Status s =
          ParseRequest(bytes, options_.limits.max_plan_depth,
                       options_.limits.max_value_depth, out.request);
      !s.ok()) {
    return s;
  }
  const weft::v1::PlanNode* plan = PlanOf(*out.request);
  absl::StatusOr<std::unique_ptr<const plan::CompiledPlan>> compiled =
      plan::Compile(plan, out.arena, path, registry_, options_.limits, pools_,
                    lazies_, secrets_);
  if (!compiled.ok()) return compiled.status();
  out.plan = *std::move(compiled);
  // The arena, and the compiled nodes (each with its prepared call).
  constexpr int64_t kCompiledNodeBytes = 512;
  // Long strings live off the arena: the request's own length stands for
  // them.
  out.bytes =
      static_cast<int64_t>(out.arena->SpaceAllocated()) +
      static_cast<int64_t>(bytes.Length()) +
      static_cast<int64_t>(out.plan->nodes().size()) * kCompiledNodeBytes;
  return out;
}

absl::StatusOr<std::shared_ptr<const PlanCache::Entry>>
OrchestratorService::RunPlan(const grpc::ByteBuffer& bytes) {
  // The cache's key: the request's bytes in one piece (a small request
  // mostly arrives in one slice; else one copy).
  grpc::Slice flat;
  const bool cacheable =
      plan_cache_.enabled() && bytes.Length() <= PlanCache::kMaxRequestBytes &&
      (bytes.TrySingleSlice(&flat).ok() || bytes.DumpToSingleSlice(&flat).ok());
  const absl::string_view key(reinterpret_cast<const char*>(flat.begin()),
                              cacheable ? flat.size() : 0);
  if (cacheable) {
    if (std::shared_ptr<const PlanCache::Entry> hit = plan_cache_.Find(key)) {
      return hit;
    }
  }
  absl::StatusOr<Parsed<weft::v1::RunRequest>> parsed =
      ParseAndCompile<weft::v1::RunRequest>(bytes);
  if (!parsed.ok()) return parsed.status();
  // Checked before the entry is kept: the cache holds only runnable plans.
  if (absl::Status s = CheckOutcomeDetail(parsed->request->detail()); !s.ok()) {
    return s;
  }
  auto entry = std::make_shared<const PlanCache::Entry>(PlanCache::Entry{
      std::move(parsed->plan), parsed->request, parsed->bytes});
  // A plan's $secret names are checked against the secrets in force, which
  // SIGHUP may change: such a plan is compiled on every run.
  if (cacheable && !entry->plan->uses_secrets()) plan_cache_.Insert(key, entry);
  return entry;
}

template absl::StatusOr<OrchestratorService::Parsed<weft::v1::RunRequest>>
OrchestratorService::ParseAndCompile(const grpc::ByteBuffer&,
                                     absl::string_view);
template absl::StatusOr<
    OrchestratorService::Parsed<weft::v1::CreateTaskRequest>>
OrchestratorService::ParseAndCompile(const grpc::ByteBuffer&,
                                     absl::string_view);
template absl::StatusOr<
    OrchestratorService::Parsed<weft::v1::CreateLazyValueRequest>>
OrchestratorService::ParseAndCompile(const grpc::ByteBuffer&,
                                     absl::string_view);

absl::StatusOr<auth::Principal> CallerOf(
    const auth::Callers* callers,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::AuthContext* auth) {
  if (callers == nullptr || !callers->enabled()) {
    return auth::Principal::Anonymous();
  }
  auto header = metadata.find("authorization");
  absl::string_view authorization;
  if (header != metadata.end()) {
    authorization =
        absl::string_view(header->second.data(), header->second.size());
  }
  std::string subject;
  // Present only when a client certificate was verified (mutual TLS).
  if (authorization.empty() && auth != nullptr) {
    std::vector<grpc::string_ref> values =
        auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!values.empty()) subject.assign(values[0].data(), values[0].size());
  }
  return callers->Authenticate(authorization, subject);
}

std::string TraceparentOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("traceparent");
  if (it == metadata.end()) return "";
  return common::Traceparent(
      absl::string_view(it->second.data(), it->second.size()));
}

absl::StatusOr<auth::Principal> OrchestratorService::Caller(
    const grpc::CallbackServerContext& context) const {
  if (callers_ == nullptr) return auth::Principal::Anonymous();
  return CallerOf(callers_, context.client_metadata(),
                  context.auth_context().get());
}

absl::StatusOr<auth::Principal> OrchestratorService::AdminCaller(
    const grpc::CallbackServerContext& context,
    absl::string_view method) const {
  absl::StatusOr<auth::Principal> caller = Caller(context);
  if (!caller.ok() || caller->admin()) return caller;
  return common::WithReason(
      absl::PermissionDeniedError(absl::StrCat(
          method, " is for admin principals; the caller's role is user")),
      common::kAdminOnly);
}

absl::StatusOr<lazy::LazyRegistry*> OrchestratorService::Lazies() const {
  if (lazies_ == nullptr) {
    return absl::UnimplementedError("lazy values are not enabled");
  }
  return lazies_;
}

grpc::ServerUnaryReactor* OrchestratorService::Run(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new RunReactor(this, response, std::move(caller->name));
  reactor->Start(context, request);
  return Handed(reactor);
}

grpc::ServerUnaryReactor* OrchestratorService::ListHandlers(
    grpc::CallbackServerContext* context, const weft::v1::ListHandlersRequest*,
    weft::v1::ListHandlersResponse* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  for (const handlers::Handler* h : registry_.List()) {
    const handlers::HandlerInfo& info = h->info();
    weft::v1::Handler* out = response->add_handlers();
    out->set_name(info.name);
    out->set_description(info.description);
    out->set_blocking(info.blocking);
    for (const handlers::ArgSpec& arg : info.args) {
      weft::v1::HandlerArgument* a = out->add_arguments();
      a->set_name(arg.name);
      a->set_type(ToProto(arg.type));
      a->set_required(arg.required);
      a->set_description(arg.description);
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return Handed(reactor);
}

absl::Status OrchestratorService::Admit(uint64_t* id,
                                        engine::CancellationSource* source,
                                        const std::string& principal) {
  engine::MutexLock lock(&mu_);
  if (!accepting_) {
    return common::WithRetryDelay(
        common::WithReason(
            absl::UnavailableError("the server is shutting down and takes no "
                                   "new runs; retry on another server"),
            common::kShuttingDown),
        options_.retry_after);
  }
  if (static_cast<int>(runs_.size()) >= options_.max_active_runs) {
    return common::WithRetryDelay(
        common::WithLimit(
            absl::ResourceExhaustedError(absl::StrCat(
                "too many runs in flight: ", runs_.size(), " of at most ",
                options_.max_active_runs, " (--max_active_runs); retry after ",
                common::FormatJsonDuration(options_.retry_after))),
            common::kTooManyRuns, "--max_active_runs",
            options_.max_active_runs),
        options_.retry_after);
  }
  if (!principal.empty()) {
    int& runs = runs_by_principal_[principal];
    if (runs >= options_.max_runs_per_principal) {
      return common::WithRetryDelay(
          common::WithReason(
              absl::ResourceExhaustedError(absl::StrCat(
                  "principal ", common::Quote(principal), " has ", runs,
                  " runs in flight, the most allowed for one principal "
                  "(--max_runs_per_principal); retry after ",
                  common::FormatJsonDuration(options_.retry_after))),
              common::kPrincipalQuota,
              {{"flag", "--max_runs_per_principal"},
               {"limit", absl::StrCat(options_.max_runs_per_principal)},
               {"principal", principal}}),
          options_.retry_after);
    }
    ++runs;
  }
  *id = ++next_id_;
  runs_.emplace(*id, *source);
  return absl::OkStatus();
}

OrchestratorService::~OrchestratorService() {
  // The last run's Release (in its OnDone, on a gRPC thread) happens before
  // this: the lock says so to ThreadSanitizer as well.
  engine::MutexLock lock(&mu_);
  assert(runs_.empty());
}

void OrchestratorService::ReleasePrincipal(const std::string& principal) {
  engine::MutexLock lock(&mu_);
  auto it = runs_by_principal_.find(principal);
  if (--it->second == 0) runs_by_principal_.erase(it);
}

void OrchestratorService::Release(uint64_t id) {
  engine::MutexLock lock(&mu_);
  runs_.erase(id);
  if (runs_.empty()) idle_.SignalAll();
}

void OrchestratorService::StopAccepting() {
  engine::MutexLock lock(&mu_);
  accepting_ = false;
}

void OrchestratorService::EndWait() {
  engine::MutexLock lock(&mu_);
  end_wait_ = true;
  idle_.SignalAll();
}

bool OrchestratorService::WaitForRuns(absl::Time deadline) {
  engine::MutexLock lock(&mu_);
  while (!runs_.empty() && !end_wait_) {
    if (!idle_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) break;
  }
  return runs_.empty();
}

void OrchestratorService::CancelRuns(const absl::Status& reason) {
  std::vector<engine::CancellationSource> sources;
  {
    engine::MutexLock lock(&mu_);
    for (const auto& [id, source] : runs_) sources.push_back(source);
  }
  // Cancelling may finish runs inline, which takes mu_: not under it.
  for (const engine::CancellationSource& s : sources) s.Cancel(reason);
}

int OrchestratorService::active_runs() const {
  engine::MutexLock lock(&mu_);
  return static_cast<int>(runs_.size());
}

absl::Status CheckOutcomeDetail(int detail) {
  if (weft::v1::OutcomeDetail_IsValid(detail)) return absl::OkStatus();
  return common::FieldError(
      "detail",
      absl::StrCat("unknown OutcomeDetail ", detail,
                   "; use OUTCOME_DETAIL_FULL or OUTCOME_DETAIL_ROOT"));
}

grpc::ServerUnaryReactor* OrchestratorService::GetServerInfo(
    grpc::CallbackServerContext* context, const weft::v1::GetServerInfoRequest*,
    weft::v1::ServerInfo* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  if (caller->admin()) {
    FillServerInfo(response);
  } else {
    // The server's totals and limits are for admins.
    response->set_version(options_.version);
    common::SetDuration(absl::Now() - started_, response->mutable_uptime());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return Handed(reactor);
}

void OrchestratorService::FillServerInfo(weft::v1::ServerInfo* response) const {
  response->set_version(options_.version);
  common::SetDuration(absl::Now() - started_, response->mutable_uptime());
  for (const auto& [state, count] : tasks_.Counts()) {
    auto* c = response->add_tasks();
    c->set_state(state);
    c->set_count(count);
  }
  response->set_active_runs(active_runs());
  *response->mutable_limits() = options_.reported_limits;
  auto add_budget = [response](const char* name,
                               const engine::MemoryBudget& b) {
    weft::v1::MemoryBudgetInfo* m = response->add_memory();
    m->set_name(name);
    m->set_used_bytes(b.used());
    m->set_limit_bytes(b.limit());
    m->set_peak_bytes(b.peak());
    m->set_refusals(b.refusals());
  };
  if (inflight_ != nullptr) add_budget("max_inflight_bytes", *inflight_);
  add_budget("max_retained_task_bytes", tasks_.memory());
  if (lazies_ != nullptr) add_budget("max_lazy_bytes", lazies_->memory());
  if (pools_ != nullptr) {
    for (const engine::ThreadPool* pool : pools_->pools()) {
      auto* p = response->add_pools();
      p->set_name(pool->name());
      p->set_threads(pool->threads());
      p->set_queue_capacity(pool->queue_capacity());
      p->set_running(pool->running());
      p->set_queued(pool->queued());
      p->set_rejected(pool->rejected());
    }
  }
  if (lazies_ != nullptr) {
    const lazy::LazyRegistry::Totals t = lazies_->totals();
    weft::v1::LazyCacheInfo& l = *response->mutable_lazy_values();
    l.set_count(t.count);
    l.set_hits(t.hits);
    l.set_misses(t.misses);
    l.set_loads(t.loads);
    l.set_load_failures(t.load_failures);
  }
  if (http_ != nullptr) {
    weft::v1::HttpInfo& h = *response->mutable_http();
    h.set_in_flight(http_->active());
    h.set_connections_opened(http_->connections_opened());
    h.set_max_connections_per_host(http_->options().max_connections_per_host);
    for (int i = 0; i < handlers::HttpClient::kOutcomes; ++i) {
      const auto outcome = static_cast<handlers::HttpClient::Outcome>(i);
      (*h.mutable_calls())[std::string(
          handlers::HttpClient::OutcomeName(outcome))] = http_->calls(outcome);
    }
  }
}

}  // namespace weft::service
