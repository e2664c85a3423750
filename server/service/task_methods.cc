// weft.v1.Orchestrator's background-task methods: adapters from RPCs to the
// TaskRegistry.

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "server/common/proto_time.h"
#include "server/service/orchestrator_service.h"
#include "server/service/reactor.h"
#include "server/service/reply.h"
#include "server/service/request_parser.h"

namespace weft::service {
namespace {

using weft::v1::Task;

absl::Status CheckView(int view) {
  if (weft::v1::TaskView_IsValid(view)) return absl::OkStatus();
  return common::FieldError(
      "view", absl::StrCat("unknown TaskView ", view,
                           "; use TASK_VIEW_BASIC or TASK_VIEW_FULL"));
}

// What an answer too large for --max_outcome_bytes should ask for instead.
constexpr char kSmallerTask[] =
    "ask for detail OUTCOME_DETAIL_ROOT (the root alone, with its value), or "
    "GetTask one node's outcome at a time (node)";

}  // namespace

absl::Status ShapeOutcome(weft::v1::OutcomeDetail detail,
                          absl::string_view node, Task* task) {
  if (!task->has_outcome()) {
    if (node.empty()) return absl::OkStatus();
    return common::WithFieldViolation(
        common::WithResource(
            common::WithReason(absl::FailedPreconditionError(absl::StrCat(
                                   "node: the task is ",
                                   weft::v1::TaskState_Name(task->state()),
                                   "; its outcome exists once it ends")),
                               common::kTaskNotFinished),
            "weft.v1.Task", task->name()),
        "node", "the task has no outcome until it ends");
  }
  if (!node.empty()) {
    absl::StatusOr<const weft::v1::NodeOutcome*> found =
        common::FindNode(task->outcome(), node);
    if (!found.ok()) return found.status();
    weft::v1::NodeOutcome picked = **found;
    *task->mutable_outcome() = std::move(picked);
  }
  if (detail == weft::v1::OUTCOME_DETAIL_ROOT) {
    *task->mutable_outcome() = common::RootOnly(task->outcome());
  }
  return absl::OkStatus();
}

// CreateTask: parse and compile the plan (like Run, on the large-request
// thread for big requests), then hand it to the registry.
class OrchestratorService::CreateTaskReactor final : public UnaryReactor {
 public:
  CreateTaskReactor(OrchestratorService* service, grpc::ByteBuffer* response,
                    std::string creator)
      : UnaryReactor(kShortOnDone),
        service_(service),
        response_(response),
        creator_(std::move(creator)) {}

  void Start(grpc::CallbackServerContext* context,
             const grpc::ByteBuffer* request) {
    traceparent_ = TraceparentOf(*context);
    if (absl::Status s = service_->Intake(
            *request,
            [this](const grpc::ByteBuffer& bytes) { Prepare(bytes); });
        !s.ok()) {
      Finish(ToGrpc(s));
    }
  }

  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

 private:
  void Prepare(const grpc::ByteBuffer& bytes) {
    auto parsed = service_->ParseAndCompile<weft::v1::CreateTaskRequest>(bytes);
    if (!parsed.ok()) {
      Finish(ToGrpc(parsed.status()));
      return;
    }
    const weft::v1::CreateTaskRequest& request = *parsed->request;
    if (absl::Status s = CheckOutcomeDetail(request.detail()); !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    tasks::NewTask task;
    task.plan = std::move(parsed->plan);
    // The plan as given, kept alive by the arena it was parsed into.
    task.source = std::shared_ptr<const weft::v1::PlanNode>(parsed->arena,
                                                            &request.plan());
    task.labels.insert(request.labels().begin(), request.labels().end());
    task.request_id = request.request_id();
    task.creator = creator_;
    task.traceparent = std::move(traceparent_);
    task.root_only = request.detail() == weft::v1::OUTCOME_DETAIL_ROOT;
    task.request_bytes = parsed->bytes;
    // Answered once the task is stored (on the store's thread, or here).
    service_->tasks_.Create(
        std::move(task), [this](absl::StatusOr<Task> created) {
          if (!created.ok()) {
            Finish(ToGrpc(created.status()));
            return;
          }
          Finish(ToGrpc(SerializeResponse(*created, response_)));
        });
  }

  OrchestratorService* const service_;
  grpc::ByteBuffer* const response_;
  const std::string creator_;
  std::string traceparent_;
};

grpc::ServerUnaryReactor* OrchestratorService::CreateTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new CreateTaskReactor(this, response, caller->name);
  reactor->Start(context, request);
  return Handed(reactor);
}

grpc::ServerUnaryReactor* OrchestratorService::GetTask(
    grpc::CallbackServerContext* context,
    const weft::v1::GetTaskRequest* request, Task* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  const bool full = request->view() == weft::v1::TASK_VIEW_FULL;
  const bool basic = request->view() == weft::v1::TASK_VIEW_BASIC;
  auto* reactor = new ChargedReactor(
      inflight_, options_.max_outcome_bytes,
      full ? absl::StrCat(kSmallerTask, ", or leave out the plan (view)")
           : kSmallerTask);
  absl::Status valid = CheckView(request->view());
  if (valid.ok()) valid = CheckOutcomeDetail(request->detail());
  if (!valid.ok()) return reactor->Answer<Task>(valid, response);
  absl::StatusOr<Task> task =
      tasks_.Get(request->name(),
                 full    ? tasks::TaskParts::kFull
                 : basic ? tasks::TaskParts::kBasic
                         : tasks::TaskParts::kWithOutcome,
                 &reactor->charge, nullptr, ReachOf(*caller));
  if (task.ok() && !basic) {
    if (absl::Status s =
            ShapeOutcome(request->detail(), request->node(), &*task);
        !s.ok()) {
      task = s;
    }
  }
  return reactor->Answer(std::move(task), response);
}

grpc::ServerUnaryReactor* OrchestratorService::ListTasks(
    grpc::CallbackServerContext* context,
    const weft::v1::ListTasksRequest* request,
    weft::v1::ListTasksResponse* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new ChargedReactor(inflight_);
  absl::Status valid = CheckView(request->view());
  if (valid.ok()) valid = CheckOutcomeDetail(request->detail());
  if (!valid.ok()) {
    return reactor->Answer<weft::v1::ListTasksResponse>(valid, response);
  }
  tasks::ListQuery query;
  query.page_size = request->page_size();
  query.page_token = request->page_token();
  for (int s : request->states()) {
    query.states.push_back(static_cast<weft::v1::TaskState>(s));
  }
  query.labels.insert(request->labels().begin(), request->labels().end());
  query.parts = request->view() == weft::v1::TASK_VIEW_FULL
                    ? tasks::TaskParts::kFull
                    : tasks::TaskParts::kBasic;
  query.root_only = request->detail() == weft::v1::OUTCOME_DETAIL_ROOT;
  query.max_bytes = options_.max_outcome_bytes;
  query.reach = ReachOf(*caller);
  absl::StatusOr<tasks::TaskRegistry::ListResult> listed =
      tasks_.List(query, &reactor->charge);
  absl::StatusOr<weft::v1::ListTasksResponse> result;
  if (!listed.ok()) {
    result = listed.status();
  } else {
    weft::v1::ListTasksResponse out;
    for (Task& t : listed->tasks) *out.add_tasks() = std::move(t);
    out.set_next_page_token(listed->next_page_token);
    result = std::move(out);
  }
  return reactor->Answer(std::move(result), response);
}

grpc::ServerUnaryReactor* OrchestratorService::CancelTask(
    grpc::CallbackServerContext* context,
    const weft::v1::CancelTaskRequest* request, Task* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new ChargedReactor(
      inflight_, options_.max_outcome_bytes,
      "the task was cancelled; read it with GetTask and detail "
      "OUTCOME_DETAIL_ROOT");
  return reactor->Answer(
      tasks_.Cancel(request->name(), &reactor->charge, ReachOf(*caller)),
      response);
}

grpc::ServerUnaryReactor* OrchestratorService::DeleteTask(
    grpc::CallbackServerContext* context,
    const weft::v1::DeleteTaskRequest* request, google::protobuf::Empty*) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  // Answered once the erasure is written (inline with the memory store).
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  tasks_.Delete(
      request->name(),
      [reactor](absl::Status s) { reactor->Finish(ToGrpc(s)); },
      ReachOf(*caller));
  return Handed(reactor);
}

// WaitTask: answers when the task ends or the wait's own timeout passes,
// and always a little before the caller's deadline.
class OrchestratorService::WaitReactor final : public UnaryReactor {
 public:
  WaitReactor(OrchestratorService* service, Task* response, tasks::Reach reach)
      : service_(service),
        response_(response),
        reach_(std::move(reach)),
        charge_(service->inflight_) {}

  void Start(grpc::CallbackServerContext* context,
             const weft::v1::WaitTaskRequest* request) {
    if (absl::Status s = CheckOutcomeDetail(request->detail()); !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    detail_ = request->detail();
    absl::Duration wait = service_->options_.default_wait;
    if (request->has_timeout()) {
      absl::StatusOr<absl::Duration> timeout = common::CheckedDuration(
          request->timeout(), "timeout", absl::ZeroDuration(), absl::Hours(24));
      if (!timeout.ok()) {
        Finish(ToGrpc(timeout.status()));
        return;
      }
      wait = *timeout;
    }
    absl::Time deadline = service_->env_.Now() + wait;
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      // Answer before the caller gives up, so it gets the task, not an error.
      const absl::Time caller = absl::FromChrono(context->deadline());
      const absl::Duration margin =
          std::min(absl::Milliseconds(100), (caller - absl::Now()) / 10);
      deadline = std::min(deadline, caller - margin);
    }
    absl::StatusOr<std::unique_ptr<tasks::TaskRegistry::Handle>> handle =
        service_->tasks_.Wait(
            request->name(), deadline,
            [this](absl::StatusOr<Task> task) { Done(std::move(task)); },
            reach_);
    engine::MutexLock lock(&mu_);
    if (!handle.ok()) {
      FinishLocked(ToGrpc(handle.status()));
      return;
    }
    handle_ = *std::move(handle);
  }

  void OnCancel() override {
    CalledByGrpc(this);
    engine::MutexLock lock(&mu_);
    FinishLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "the wait was cancelled"));
  }

  void OnDone() override {
    CalledByGrpc(this);
    std::unique_ptr<tasks::TaskRegistry::Handle> handle;
    {
      engine::MutexLock lock(&mu_);
      handle = std::move(handle_);
    }
    handle.reset();  // Outside the lock: it may wait for Done in progress.
    delete this;
  }

 private:
  // The task as it stands; once terminal, read again with its outcome
  // (charged to this call until it is sent).
  void Done(absl::StatusOr<Task> task) {
    absl::StatusOr<Task> full = std::move(task);
    if (full.ok() && tasks::IsTerminal(full->state())) {
      full = service_->tasks_.Get(full->name(), tasks::TaskParts::kWithOutcome,
                                  &charge_, nullptr, reach_);
      if (full.ok()) {
        absl::Status s = ShapeOutcome(detail_, "", &*full);
        if (s.ok()) {
          s = CheckAnswerSize(full->ByteSizeLong(),
                              service_->options_.max_outcome_bytes,
                              kSmallerTask);
        }
        if (!s.ok()) full = s;
      }
    }
    engine::MutexLock lock(&mu_);
    if (finished_) return;
    if (!full.ok()) {
      FinishLocked(ToGrpc(full.status()));
      return;
    }
    *response_ = *std::move(full);
    FinishLocked(grpc::Status::OK);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  OrchestratorService* const service_;
  Task* const response_;
  const tasks::Reach reach_;
  weft::v1::OutcomeDetail detail_ = weft::v1::OUTCOME_DETAIL_FULL;
  engine::MemoryCharge charge_;
  engine::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<tasks::TaskRegistry::Handle> handle_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerUnaryReactor* OrchestratorService::WaitTask(
    grpc::CallbackServerContext* context,
    const weft::v1::WaitTaskRequest* request, Task* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new WaitReactor(this, response, ReachOf(*caller));
  reactor->Start(context, request);
  return Handed(reactor);
}

// WatchTask: the task as it stands, then every change of state at once and
// progress at most ten times a second, then the terminal event, then the end.
class OrchestratorService::WatchReactor final
    : public WriteReactor<weft::v1::TaskEvent> {
 public:
  WatchReactor(OrchestratorService* service, std::string name,
               tasks::Reach reach, weft::v1::OutcomeDetail detail,
               int64_t after_sequence)
      : service_(service),
        name_(std::move(name)),
        reach_(std::move(reach)),
        detail_(detail),
        after_(after_sequence),
        pulse_(std::make_shared<Pulse>()),
        event_charge_(service->inflight_) {
    engine::MutexLock lock(&pulse_->mu);
    pulse_->reactor = this;
  }

  // Ends the stream at once with `status`, instead of Start().
  void Refuse(grpc::Status status) {
    engine::MutexLock lock(&mu_);
    done_ = true;
    Finish(std::move(status));
  }

  void Start() {
    absl::StatusOr<std::unique_ptr<tasks::TaskRegistry::Handle>> handle =
        service_->tasks_.Watch(
            name_, [this] { Changed(); }, reach_);
    engine::MutexLock lock(&mu_);
    if (!handle.ok()) {
      done_ = true;
      Finish(ToGrpc(handle.status()));
      return;
    }
    handle_ = *std::move(handle);
    SendLocked();
  }

  void OnWriteDone(bool ok) override {
    CalledByGrpc(this);
    engine::MutexLock lock(&mu_);
    writing_ = false;
    // A cancel that came while the write was out left the finishing to us:
    // the write may still have gone through (ok), but nothing follows it.
    if (!ok || cancelled_) {
      done_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
      return;
    }
    if (sent_terminal_) {
      done_ = true;
      Finish(grpc::Status::OK);
      return;
    }
    if (pending_) SendLocked();
  }

  void OnCancel() override {
    CalledByGrpc(this);
    engine::MutexLock lock(&mu_);
    if (done_) return;
    cancelled_ = true;
    if (!writing_) {
      done_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }

  void OnDone() override {
    CalledByGrpc(this);
    {
      // The coalescing timer no longer reaches this reactor.
      engine::MutexLock lock(&pulse_->mu);
      pulse_->reactor = nullptr;
    }
    std::unique_ptr<tasks::TaskRegistry::Handle> handle;
    {
      engine::MutexLock lock(&mu_);
      handle = std::move(handle_);
    }
    handle.reset();  // Outside the lock: waits for a Changed() in progress.
    delete this;
  }

 private:
  // Lets a timer find the reactor only while it lives.
  struct Pulse {
    engine::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  static constexpr absl::Duration kMinInterval = absl::Milliseconds(100);

  void Changed() {
    engine::MutexLock lock(&mu_);
    pending_ = true;
    if (!writing_) SendLocked();
  }

  // Sends the task as it stands, unless only its progress moved and the last
  // event left less than kMinInterval ago (then a timer sends it later).
  void SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_ || cancelled_ || writing_ || sent_terminal_) return;
    // The last event has been sent: its memory goes back before the next
    // is copied.
    event_charge_.Reset();
    int64_t sequence = 0;
    absl::StatusOr<Task> task =
        service_->tasks_.Get(name_, tasks::TaskParts::kWithOutcome,
                             &event_charge_, &sequence, reach_);
    if (task.ok() && !checked_after_) {
      // Another replica runs it: the numbers here count its states alone,
      // below the owner's, so `after_sequence` cannot tell what the caller
      // saw. It is sent the task as it stands (a state it may have seen).
      remote_ = !service_->tasks_.Holds(name_);
    }
    if (!task.ok() && remote_ && absl::IsUnavailable(task.status())) {
      // Another replica's task, and the database cannot be read now: the
      // next notice or poll reads it again (as a wait keeps waiting).
      pending_ = false;
      return;
    }
    if (task.ok() && sequence <= after_ && !remote_) {
      if (!checked_after_ && after_ > sequence) {
        task = common::WithFieldViolation(
            common::WithReason(
                absl::OutOfRangeError(absl::StrCat(
                    "after_sequence: ", after_,
                    " is past the task's last change, ", sequence,
                    "; resume from an event of this task's watch")),
                common::kSequenceAhead),
            "after_sequence", "past the task's last change");
      } else if (tasks::IsTerminal(task->state())) {
        // The caller saw the end already.
        done_ = true;
        Finish(grpc::Status::OK);
        return;
      } else {
        // Nothing new since: wait for the next change.
        checked_after_ = true;
        pending_ = false;
        return;
      }
    }
    checked_after_ = true;
    if (task.ok() && sent_any_ && sequence <= last_sequence_ &&
        !tasks::IsTerminal(task->state())) {
      // Read again with nothing new (a replica's poll): nothing to send.
      pending_ = false;
      return;
    }
    if (task.ok()) {
      absl::Status s = ShapeOutcome(detail_, "", &*task);
      if (s.ok()) {
        s = CheckAnswerSize(task->ByteSizeLong(),
                            service_->options_.max_outcome_bytes, kSmallerTask);
      }
      if (!s.ok()) task = s;
    }
    if (!task.ok()) {
      done_ = true;
      Finish(ToGrpc(task.status()));
      return;
    }
    const absl::Time now = service_->env_.Now();
    const bool state_changed = task->state() != last_state_;
    if (!state_changed && !tasks::IsTerminal(task->state()) && sent_any_ &&
        now - last_sent_ < kMinInterval) {
      if (!timer_armed_) {
        timer_armed_ = true;
        service_->env_.Schedule(last_sent_ + kMinInterval, [pulse = pulse_] {
          engine::MutexLock guard(&pulse->mu);
          if (pulse->reactor != nullptr) pulse->reactor->Tick();
        });
      }
      return;
    }
    pending_ = false;
    last_state_ = task->state();
    last_sequence_ = sequence;
    last_sent_ = now;
    sent_terminal_ = tasks::IsTerminal(task->state());
    sent_any_ = true;
    event_.set_sequence(sequence);
    *event_.mutable_task() = *std::move(task);
    writing_ = true;
    StartWrite(&event_);
  }

  void Tick() {
    engine::MutexLock lock(&mu_);
    timer_armed_ = false;
    if (pending_) SendLocked();
  }

  OrchestratorService* const service_;
  const std::string name_;
  const tasks::Reach reach_;
  const weft::v1::OutcomeDetail detail_;
  // Events at or before this change are not sent (after_sequence).
  const int64_t after_;
  std::shared_ptr<Pulse> pulse_;
  engine::Mutex mu_;
  std::unique_ptr<tasks::TaskRegistry::Handle> handle_ ABSL_GUARDED_BY(mu_);
  weft::v1::TaskEvent event_ ABSL_GUARDED_BY(mu_);
  engine::MemoryCharge event_charge_ ABSL_GUARDED_BY(mu_);
  bool checked_after_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  weft::v1::TaskState last_state_ ABSL_GUARDED_BY(mu_) =
      weft::v1::TASK_STATE_UNSPECIFIED;
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_);
  int64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Another replica ran the task when the watch began.
  bool remote_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool timer_armed_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerWriteReactor<weft::v1::TaskEvent>* OrchestratorService::WatchTask(
    grpc::CallbackServerContext* context,
    const weft::v1::WatchTaskRequest* request) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok())
    return RefusedStream<weft::v1::TaskEvent>::Of(caller.status());
  auto* reactor =
      new WatchReactor(this, request->name(), ReachOf(*caller),
                       request->detail(), request->after_sequence());
  absl::Status s = CheckOutcomeDetail(request->detail());
  if (s.ok() && request->after_sequence() < 0) {
    s = common::FieldError(
        "after_sequence",
        absl::StrCat("must not be negative, got ", request->after_sequence()));
  }
  if (!s.ok()) {
    reactor->Refuse(ToGrpc(s));
    return Handed(reactor);
  }
  reactor->Start();
  return Handed(reactor);
}

}  // namespace weft::service
