#include "server/tasks/registry.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/field_mask_util.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "server/common/paging.h"
#include "server/common/proto_time.h"
#include "server/common/serialize.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"
#include "server/plan/interpreter.h"

namespace weft::tasks {
namespace {

using weft::v1::Task;
using weft::v1::TaskState;

constexpr char kTaskType[] = "weft.v1.Task";  // ResourceInfo.resource_type

std::string Fingerprint(const weft::v1::PlanNode& plan) {
  const std::string bytes = common::SerializeDeterministic(plan);
  return absl::StrCat(absl::Hash<std::string>{}(bytes), ":", bytes.size());
}

TaskState StateOf(const weft::v1::NodeOutcome& outcome) {
  switch (outcome.state()) {
    case weft::v1::NODE_STATE_SUCCEEDED:
      return weft::v1::TASK_STATE_SUCCEEDED;
    case weft::v1::NODE_STATE_TIMED_OUT:
      return weft::v1::TASK_STATE_TIMED_OUT;
    case weft::v1::NODE_STATE_CANCELLED:
      return weft::v1::TASK_STATE_CANCELLED;
    default:
      return weft::v1::TASK_STATE_FAILED;
  }
}

// What a task costs besides its request and outcome (its record, name,
// labels, the registry's indexes).
constexpr int64_t kTaskMemory = 2048;

// A resumed task's change numbers start at resumes * this, above any it had
// before the restart (which WatchTask clients may hold).
constexpr int64_t kChangesPerResume = 1'000'000'000;

// The key of a request_id: request_ids are per creator. (Principal names
// hold no NUL.)
std::string RequestKey(absl::string_view creator,
                       absl::string_view request_id) {
  std::string key(creator);
  key.push_back('\0');
  key.append(request_id.data(), request_id.size());
  return key;
}

// A copy of `task` without its outcome and plan, which may be large.
Task CopyWithoutOutcome(const Task& task) {
  static const google::protobuf::FieldMask* const mask = [] {
    auto* m = new google::protobuf::FieldMask;
    const google::protobuf::Descriptor* d = Task::descriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const std::string& name = d->field(i)->name();
      if (name != "outcome" && name != "plan") m->add_paths(name);
    }
    return m;
  }();
  Task out;
  google::protobuf::util::FieldMaskUtil::MergeMessageTo(
      task, *mask, google::protobuf::util::FieldMaskUtil::MergeOptions(), &out);
  return out;
}

// The change number of a task another replica runs, as its stored state
// tells: its creation (or its last resume), its start and its end. It is
// never above the number its owner has counted (a task cancelled while
// queued never started; a resumed one counts its start again only when it
// runs again), and it grows with each state the store shows, so a watch
// moved between replicas misses nothing.
int64_t RemoteChanges(const Task& task) {
  const int64_t base = int64_t{task.resumes()} * kChangesPerResume + 1;
  switch (task.state()) {
    case weft::v1::TASK_STATE_QUEUED:
      return base;
    case weft::v1::TASK_STATE_RUNNING:
      return base + 1;
    default:
      // Ended: after its start, unless it never started.
      return base + (task.resumes() == 0 && task.has_start_time() ? 2 : 1);
  }
}

bool HasPlan(TaskParts parts) { return parts == TaskParts::kFull; }
bool HasOutcome(TaskParts parts) { return parts != TaskParts::kBasic; }

// A copy of `task` with the parts asked for.
Task CopyParts(const Task& task, TaskParts parts) {
  Task out = CopyWithoutOutcome(task);
  if (HasOutcome(parts) && task.has_outcome()) {
    *out.mutable_outcome() = task.outcome();
  }
  if (HasPlan(parts)) *out.mutable_plan() = task.plan();
  return out;
}

// Why an unfinished task cannot be deleted.
absl::Status NotFinished(absl::string_view name, TaskState state) {
  return common::WithResource(
      common::WithReason(
          absl::FailedPreconditionError(absl::StrCat(
              name, " is ", weft::v1::TaskState_Name(state),
              "; only a finished task can be deleted (cancel it first)")),
          common::kTaskNotFinished),
      kTaskType, name);
}

absl::Status CopyRefused(const engine::MemoryCharge& charge, int64_t bytes) {
  return charge.Refusal(bytes, "this answer",
                        "Retry later, or ask for TASK_VIEW_BASIC (no outcome)");
}

// A callback that runs at most once, from whichever path gets there first.
class OnceFn {
 public:
  explicit OnceFn(TaskRegistry::WaitFn fn) : fn_(std::move(fn)) {}
  // Calls it with what `make` makes, unless it was called or stopped; both
  // under the lock, so that Stop() waits for a call in progress and the
  // callback never runs after its handle is gone.
  void Call(absl::FunctionRef<absl::StatusOr<Task>()> make) {
    engine::MutexLock lock(&mu_);
    if (!fn_) return;
    TaskRegistry::WaitFn fn = std::move(fn_);
    fn_ = nullptr;
    std::move(fn)(make());
  }
  void Stop() {
    engine::MutexLock lock(&mu_);
    fn_ = nullptr;
  }

 private:
  engine::Mutex mu_;
  TaskRegistry::WaitFn fn_ ABSL_GUARDED_BY(mu_);
};

// A watcher's callback; Stop() waits for a call in progress, so the callback
// never runs after its handle is gone.
class WatchFn {
 public:
  explicit WatchFn(std::function<void()> fn) : fn_(std::move(fn)) {}
  void Call() {
    engine::MutexLock lock(&mu_);
    if (fn_) fn_();
  }
  void Stop() {
    std::function<void()> fn;
    engine::MutexLock lock(&mu_);
    fn = std::move(fn_);
    fn_ = nullptr;
  }

 private:
  engine::Mutex mu_;
  std::function<void()> fn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

bool IsTerminal(weft::v1::TaskState state) {
  return state != weft::v1::TASK_STATE_QUEUED &&
         state != weft::v1::TASK_STATE_RUNNING;
}

// A queued or running task.
struct TaskRegistry::Live : public plan::NodeObserver,
                            public std::enable_shared_from_this<Live> {
  Live(TaskRegistry* r, NewTask t)
      : registry(r),
        created(std::move(t)),
        journaling(r->store_.durable()),
        inflight(r->options_.inflight) {}

  void OnNodeStarted(int32_t node) override {
    if (!plan::IsLeaf(created.plan->nodes()[node].kind)) return;
    running.fetch_add(1, std::memory_order_relaxed);
    changes.fetch_add(1, std::memory_order_release);
    if (journaling && !registry->suspended_.load(std::memory_order_acquire)) {
      registry->Journal(name, node, nullptr);
    }
    NotifyWatchers();
  }
  absl::Status MayStartLeaf() override {
    return registry->store_.MayStartWork();
  }
  // A leaf run for one item of a map: counted, not journaled (a map's
  // children run again after a restart).
  void OnItemNodeStarted(int32_t node) override {
    if (!plan::IsLeaf(created.plan->nodes()[node].kind)) return;
    running.fetch_add(1, std::memory_order_relaxed);
    changes.fetch_add(1, std::memory_order_release);
    NotifyWatchers();
  }
  void OnLeavesAdded(int64_t leaves) override {
    added_leaves.fetch_add(leaves, std::memory_order_relaxed);
    changes.fetch_add(1, std::memory_order_release);
    NotifyWatchers();
  }
  bool wants_leaf_outcomes() const override { return journaling; }
  void OnLeafOutcome(int32_t node,
                     const weft::v1::NodeOutcome& outcome) override {
    // What a stop cut off (cancelled, or failing for it) runs again.
    if (registry->suspended_.load(std::memory_order_acquire)) return;
    switch (outcome.state()) {
      case weft::v1::NODE_STATE_SUCCEEDED:
      case weft::v1::NODE_STATE_FAILED:
      case weft::v1::NODE_STATE_TIMED_OUT:
        break;
      default:
        return;
    }
    registry->Journal(name, node,
                      std::make_shared<const weft::v1::NodeOutcome>(outcome));
  }
  void OnNodeFinished(int32_t node, weft::v1::NodeState state) override {
    if (!plan::IsLeaf(created.plan->nodes()[node].kind)) return;
    running.fetch_sub(1, std::memory_order_relaxed);
    done.fetch_add(1, std::memory_order_relaxed);
    if (state != weft::v1::NODE_STATE_SUCCEEDED) {
      failed.fetch_add(1, std::memory_order_relaxed);
    }
    changes.fetch_add(1, std::memory_order_release);
    NotifyWatchers();
  }

  void NotifyWatchers() {
    if (watcher_count.load(std::memory_order_acquire) == 0) return;
    std::vector<std::shared_ptr<WatchFn>> copy;
    {
      engine::MutexLock lock(&watchers_mu);
      copy = watchers;
    }
    for (const auto& w : copy) w->Call();
  }

  TaskRegistry* const registry;
  NewTask created;
  // Set before the task is stored, never changed after.
  std::string name;
  // Whether leaves are journaled (a durable store).
  const bool journaling;
  // What the task's run before a restart did (a resumed task).
  std::shared_ptr<const plan::Replay> replay;
  Task task;  // Guarded by registry->mu_.
  engine::CancellationSource cancel;
  // What the task's run holds while it runs.
  engine::MemoryCharge inflight;
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  std::atomic<int> running{0};
  // Leaves maps added when they started (one child per item).
  std::atomic<int64_t> added_leaves{0};
  // The task's changes so far, its creation being the first: a state
  // change, a leaf starting or ending. WatchTask numbers events with it.
  std::atomic<int64_t> changes{1};
  std::vector<std::shared_ptr<OnceFn>> waiters;  // Guarded by registry->mu_.
  // Until the creation is written: who waits for it (Create, and a repeat
  // of its request_id). Guarded by registry->mu_.
  bool stored = false;
  std::vector<CreateFn> on_stored;

  engine::Mutex watchers_mu;
  std::vector<std::shared_ptr<WatchFn>> watchers ABSL_GUARDED_BY(watchers_mu);
  std::atomic<int> watcher_count{0};
};

class TaskRegistry::WaitHandle final : public Handle {
 public:
  WaitHandle(engine::Env* env, std::shared_ptr<OnceFn> once,
             std::optional<engine::TimerId> timer)
      : env_(env), once_(std::move(once)), timer_(timer) {}
  ~WaitHandle() override {
    if (once_ != nullptr) once_->Stop();
    if (timer_.has_value()) env_->Cancel(*timer_);
  }

 private:
  engine::Env* env_;
  std::shared_ptr<OnceFn> once_;
  std::optional<engine::TimerId> timer_;
};

class TaskRegistry::WatchHandle final : public Handle {
 public:
  WatchHandle(std::shared_ptr<Live> live, std::shared_ptr<WatchFn> fn)
      : live_(std::move(live)), fn_(std::move(fn)) {}
  ~WatchHandle() override {
    fn_->Stop();
    if (live_ == nullptr) return;
    engine::MutexLock lock(&live_->watchers_mu);
    auto& v = live_->watchers;
    v.erase(std::remove(v.begin(), v.end(), fn_), v.end());
    live_->watcher_count.store(static_cast<int>(v.size()),
                               std::memory_order_release);
  }

 private:
  std::shared_ptr<Live> live_;
  std::shared_ptr<WatchFn> fn_;
};

struct TaskRegistry::Remote {
  std::string name;
  Reach reach = Reach::All();
  std::shared_ptr<OnceFn> wait;    // A wait's, or
  std::shared_ptr<WatchFn> watch;  // a watch's.
};

class TaskRegistry::RemoteHandle final : public Handle {
 public:
  RemoteHandle(TaskRegistry* registry, std::shared_ptr<Remote> remote,
               std::optional<engine::TimerId> timer)
      : registry_(registry), remote_(std::move(remote)), timer_(timer) {}
  ~RemoteHandle() override {
    if (remote_->wait != nullptr) remote_->wait->Stop();
    if (remote_->watch != nullptr) remote_->watch->Stop();
    if (timer_.has_value()) registry_->env_.Cancel(*timer_);
    engine::MutexLock lock(&registry_->remote_mu_);
    auto it = registry_->remotes_.find(remote_->name);
    if (it == registry_->remotes_.end()) return;
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), remote_), v.end());
    if (v.empty()) registry_->remotes_.erase(it);
  }

 private:
  TaskRegistry* const registry_;
  std::shared_ptr<Remote> remote_;
  std::optional<engine::TimerId> timer_;
};

// Keeps the sweep timer from reaching a destroyed registry: the timer holds
// a reference, and the destructor clears the pointer under the lock.
struct TaskRegistry::Alive {
  engine::Mutex mu;
  TaskRegistry* registry ABSL_GUARDED_BY(mu) = nullptr;
};

TaskRegistry::TaskRegistry(engine::Env& env, store::TaskStore& store,
                           TaskOptions options)
    : env_(env),
      store_(store),
      options_(options),
      forgotten_(options.remembered_names),
      retained_(options.max_retained_bytes),
      alive_(std::make_shared<Alive>()) {
  {
    engine::MutexLock lock(&alive_->mu);
    alive_->registry = this;
  }
  if (store_.shared()) {
    listening_ = store_.Listen(
        [this](const store::TaskStore::Notice& notice) { OnNotice(notice); });
  }
}

TaskRegistry::~TaskRegistry() {
  listening_.reset();  // Waits for a notice in progress.
  {
    // Waits for a sweep in progress; none starts after this.
    engine::MutexLock lock(&alive_->mu);
    alive_->registry = nullptr;
  }
  engine::MutexLock lock(&mu_);
  if (sweep_timer_.has_value()) env_.Cancel(*sweep_timer_);
  while (unfinished_writes_ > 0 || finishing_ > 0 ||
         journal_writes_.load(std::memory_order_acquire) > 0) {
    idle_.Wait(&mu_);
  }
}

absl::Status TaskRegistry::NotFound(absl::string_view name,
                                    const Reach& reach) const {
  return forgotten_.NotFound(name, reach);
}

absl::Status TaskRegistry::ReachLocked(absl::string_view name,
                                       const Reach& reach) const {
  if (reach.all()) return absl::OkStatus();
  auto it = footprints_.find(name);
  if (it == footprints_.end() || reach.Covers(it->second.creator)) {
    return absl::OkStatus();
  }
  return NotFound(name, reach);
}

std::shared_ptr<const Task> TaskRegistry::FinishedLocked(
    absl::string_view name) const {
  if (!finished_names_.contains(name)) return nullptr;
  auto it = unsaved_.find(name);
  if (it != unsaved_.end()) return it->second;
  return store_.Get(name);
}

weft::v1::TaskState TaskRegistry::StateLocked(const Task& stored) const {
  auto live = live_.find(stored.name());
  if (live != live_.end()) return live->second->task.state();
  auto unsaved = unsaved_.find(stored.name());
  if (unsaved != unsaved_.end()) return unsaved->second->state();
  return stored.state();
}

void TaskRegistry::WriteLocked(std::shared_ptr<const Task> task,
                               std::string name,
                               store::TaskStore::WriteDone done) {
  ++unfinished_writes_;
  writes_.push_back(
      StoreWrite{std::move(task), std::move(name), std::move(done)});
}

void TaskRegistry::FlushWrites() {
  {
    engine::MutexLock lock(&mu_);
    // The thread writing now issues ours too, after its own: in order.
    if (writing_) return;
    writing_ = true;
  }
  for (;;) {
    StoreWrite w;
    {
      engine::MutexLock lock(&mu_);
      if (writes_.empty()) {
        writing_ = false;
        return;
      }
      w = std::move(writes_.front());
      writes_.pop_front();
    }
    auto done = [this, inner = std::move(w.done)](absl::Status s) mutable {
      std::move(inner)(std::move(s));
      engine::MutexLock lock(&mu_);
      if (--unfinished_writes_ == 0) idle_.SignalAll();
    };
    if (w.task != nullptr) {
      store_.Write(std::move(w.task), std::move(done));
    } else {
      store_.Erase(std::move(w.name), std::move(done));
    }
  }
}

void TaskRegistry::Journal(
    const std::string& name, int32_t node,
    std::shared_ptr<const weft::v1::NodeOutcome> outcome) {
  // Not through the registry's queue (no lock per leaf): the store orders
  // them before the task's end, which is issued after the leaf ended. The
  // destructor waits for them (the callback needs the registry, not the
  // task, which may be gone by then).
  journal_writes_.fetch_add(1, std::memory_order_relaxed);
  store_.Journal(name, node, std::move(outcome), [this, name](absl::Status s) {
    if (!s.ok()) WriteFailed("the journal", name, s);
    // Under the lock, so the destructor cannot see zero and
    // go before this is done with the registry.
    engine::MutexLock lock(&mu_);
    if (journal_writes_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      idle_.SignalAll();
    }
  });
}

void TaskRegistry::RunAfter(std::vector<std::function<void()>>& after) {
  for (auto& fn : after) fn();
  after.clear();
  FlushWrites();
}

void TaskRegistry::WriteFailed(absl::string_view what, absl::string_view name,
                               const absl::Status& status) {
  {
    engine::MutexLock lock(&mu_);
    ++store_failures_;
  }
  if (options_.on_store_error) {
    options_.on_store_error(common::WithMessage(
        status, absl::StrCat("the task store could not write ", what, " of ",
                             name, ": ", status.message())));
  }
}

int64_t TaskRegistry::store_failures() const {
  engine::MutexLock lock(&mu_);
  return store_failures_;
}

Recovery TaskRegistry::Recover(const CompileFn& compile) {
  std::vector<store::TakenTask> tasks;
  for (std::shared_ptr<const Task>& task : store_.Owned()) {
    store::TakenTask taken;
    if (!IsTerminal(task->state())) {
      taken.journal = store_.TakeJournal(task->name());
    }
    taken.task = std::move(task);
    tasks.push_back(std::move(taken));
  }
  return TakeBack(std::move(tasks), compile, /*at_start=*/true);
}

Recovery TaskRegistry::Adopt(std::vector<store::TakenTask> tasks,
                             const CompileFn& compile) {
  return TakeBack(std::move(tasks), compile, /*at_start=*/false);
}

Recovery TaskRegistry::TakeBack(std::vector<store::TakenTask> tasks,
                                const CompileFn& compile, bool at_start) {
  Recovery report;
  std::vector<std::shared_ptr<const Task>> finished;
  std::vector<std::shared_ptr<const Task>> unfinished;
  absl::flat_hash_map<std::string, store::NodeJournal> journals;
  for (store::TakenTask& taken : tasks) {
    if (IsTerminal(taken.task->state())) {
      finished.push_back(std::move(taken.task));
      continue;
    }
    if (!taken.journal.ended.empty() || !taken.journal.started.empty()) {
      journals[taken.task->name()] = std::move(taken.journal);
    }
    unfinished.push_back(std::move(taken.task));
  }
  // Oldest first: finished ones by their end (retention forgets the oldest
  // first), the others in creation order (the order they ran in).
  std::stable_sort(finished.begin(), finished.end(),
                   [](const auto& a, const auto& b) {
                     return common::FromProto(a->end_time()) <
                            common::FromProto(b->end_time());
                   });
  // Compiled outside the lock.
  std::vector<std::shared_ptr<const weft::v1::PlanNode>> sources;
  std::vector<absl::StatusOr<std::shared_ptr<const plan::CompiledPlan>>> plans;
  plans.reserve(unfinished.size());
  for (const auto& t : unfinished) {
    sources.push_back(std::make_shared<const weft::v1::PlanNode>(t->plan()));
    plans.push_back(compile(sources.back()));
  }

  std::vector<std::function<void()>> after;
  {
    engine::MutexLock lock(&mu_);
    for (const auto& t : finished) RecoverFinishedLocked(*t);
    report.finished = static_cast<int>(finished.size());
    std::vector<std::shared_ptr<Live>> resumed;
    std::vector<std::shared_ptr<Live>> queued;
    for (size_t i = 0; i < unfinished.size(); ++i) {
      const Task& stored = *unfinished[i];
      NewTask created;
      created.source = sources[i];
      created.labels.insert(stored.labels().begin(), stored.labels().end());
      created.request_id = stored.request_id();
      created.creator = stored.creator();
      created.root_only = stored.outcome_root_only();
      created.request_bytes =
          static_cast<int64_t>(created.source->SpaceUsedLong());
      if (plans[i].ok()) created.plan = *plans[i];
      auto live = std::make_shared<Live>(this, std::move(created));
      live->stored = true;
      Task& task = live->task;
      task = stored;
      task.clear_plan();
      task.clear_outcome();
      const std::string name = task.name();
      live->name = name;
      if (auto journal = journals.find(name); journal != journals.end()) {
        auto replay = std::make_shared<plan::Replay>();
        replay->ended = std::move(journal->second.ended);
        replay->started = std::move(journal->second.started);
        live->replay = std::move(replay);
      }
      if (!task.request_id().empty()) {
        std::string key = RequestKey(task.creator(), task.request_id());
        requests_[key] = {name, Fingerprint(*live->created.source)};
        request_of_[name] = std::move(key);
      }
      live_[name] = live;
      // Accepted work is taken back even past --max_retained_task_bytes.
      const int64_t bytes = live->created.request_bytes + kTaskMemory;
      footprints_[name] =
          Footprint{.request = MakeRoomLocked(bytes) ? bytes : 0,
                    .creator = task.creator()};
      ++counts_[weft::v1::TASK_STATE_QUEUED];
      if (!plans[i].ok()) {
        const absl::Status& why = plans[i].status();
        auto* outcome = task.mutable_outcome();
        outcome->set_id(stored.plan().id());
        outcome->set_state(weft::v1::NODE_STATE_FAILED);
        outcome->mutable_error()->set_code(common::CodeName(why.code()));
        outcome->mutable_error()->set_message(absl::StrCat(
            "the task could not run again after a restart: ", why.message()));
        outcome->mutable_error()->set_reason(common::Reason(why));
        --counts_[weft::v1::TASK_STATE_QUEUED];
        EndLocked(live, weft::v1::TASK_STATE_FAILED, &after);
        ++report.failed;
        continue;
      }
      if (stored.state() == weft::v1::TASK_STATE_RUNNING) {
        task.set_resumes(task.resumes() + 1);
        common::SetTimestamp(env_.Now(), task.mutable_resume_time());
        live->changes.store(task.resumes() * kChangesPerResume + 1,
                            std::memory_order_release);
        resumed.push_back(std::move(live));
      } else {
        queued.push_back(std::move(live));
      }
    }
    report.resumed = static_cast<int>(resumed.size());
    report.queued = static_cast<int>(queued.size());
    for (auto* list : {&resumed, &queued}) {
      for (std::shared_ptr<Live>& live : *list) {
        AddLoadLocked(live->created.creator, 0, 1);
        if (MayStartLocked(live->created.creator)) {
          StartLocked(live, &after);
          continue;
        }
        // Waits for a slot, as it says (a resumed one too: fewer may run
        // now than before).
        if (live->task.state() != weft::v1::TASK_STATE_QUEUED) {
          live->task.set_state(weft::v1::TASK_STATE_QUEUED);
          WriteLocked(StoredLocked(*live), live->task.name(),
                      [this, name = live->task.name()](absl::Status s) {
                        if (!s.ok()) WriteFailed("the resume", name, s);
                      });
        }
        queue_.push_back(std::move(live));
      }
    }
    Retain(&after);
  }
  RunAfter(after);
  // At start, the resumes are in the store before anyone is told a change
  // number. (While serving, writes never stop coming: waiting for none to
  // be left could last for ever. An adopted task's numbers start above
  // any it had, as a resumed one's do.)
  if (at_start) WaitForWrites();
  return report;
}

void TaskRegistry::RecoverFinishedLocked(const Task& task) {
  const std::string& name = task.name();
  const int64_t request =
      static_cast<int64_t>(task.plan().SpaceUsedLong()) + kTaskMemory;
  const int64_t outcome = static_cast<int64_t>(task.outcome().SpaceUsedLong());
  finished_.emplace_back(common::FromProto(task.end_time()), name);
  finished_names_.insert(name);
  if (!task.request_id().empty()) {
    std::string key = RequestKey(task.creator(), task.request_id());
    requests_[key] = {name, Fingerprint(task.plan())};
    request_of_[name] = std::move(key);
  }
  // Newer tasks make room by forgetting older ones, as they would have.
  const bool fits = MakeRoomLocked(request + outcome);
  footprints_[name] =
      Footprint{.request = fits ? request : 0,
                .outcome = fits ? outcome : 0,
                // Above any number the task had before the restart.
                .changes = (task.resumes() + 1) * kChangesPerResume,
                .state = task.state(),
                .creator = task.creator()};
  ++counts_[task.state()];
}

void TaskRegistry::WaitForWrites() {
  engine::MutexLock lock(&mu_);
  while (unfinished_writes_ > 0) idle_.Wait(&mu_);
}

void TaskRegistry::Create(NewTask t, CreateFn done) {
  std::optional<absl::StatusOr<Task>> now = Admit(std::move(t), done);
  if (now.has_value()) std::move(done)(*std::move(now));
}

std::optional<absl::StatusOr<Task>> TaskRegistry::Admit(NewTask t,
                                                        CreateFn& done) {
  if (t.labels.size() > 64) {
    return common::FieldError(
        "labels", absl::StrCat(t.labels.size(), " labels, more than 64"));
  }
  for (const auto& [k, v] : t.labels) {
    if (k.empty() || k.size() > 63) {
      return common::FieldError("labels",
                                absl::StrCat("key ", common::Quote(k),
                                             " must be 1 to 63 characters"));
    }
    if (v.size() > 255) {
      return common::FieldError(absl::StrCat("labels[", common::Quote(k), "]"),
                                "the value is longer than 255 characters");
    }
  }
  if (t.request_id.size() > 128) {
    return common::FieldError("request_id", "longer than 128 characters");
  }
  const std::string fingerprint =
      t.request_id.empty() ? std::string() : Fingerprint(*t.source);
  const std::string request_key = t.request_id.empty()
                                      ? std::string()
                                      : RequestKey(t.creator, t.request_id);

  // Replicas: a principal's quotas count its tasks on every replica.
  store::TaskStore::CreatorLoad others;
  uint64_t ticket = 0;
  if (store_.shared() && !t.creator.empty()) {
    {
      engine::MutexLock lock(&mu_);
      ticket = ++load_reads_;
    }
    absl::StatusOr<std::map<std::string, store::TaskStore::CreatorLoad>> read =
        store_.OthersLoad({t.creator});
    if (!read.ok()) {
      return common::WithRetryDelay(
          common::WithReason(
              absl::UnavailableError(absl::StrCat(
                  "cannot count the principal's tasks on other replicas: ",
                  read.status().message())),
              common::kTaskStoreUnavailable),
          options_.retry_after);
    }
    if (auto it = read->find(t.creator); it != read->end()) {
      others = it->second;
    }
  }

  // Tasks started below (queued ones a fresher count lets start), once the
  // lock is released, on every way out.
  std::vector<std::function<void()>> after;
  absl::Cleanup run_after = [&] { RunAfter(after); };
  {
    engine::MutexLock lock(&mu_);
    if (ticket != 0) {
      // Its running slots as just read, in the same hold of the lock as
      // the decisions below; fewer may let its queued tasks start, before
      // this one passes them.
      SetOthersRunningLocked(t.creator, others.running, ticket);
      StartQueuedLocked(&after);
    }
    if (!accepting_) {
      return common::WithRetryDelay(
          common::WithReason(
              absl::UnavailableError(absl::StrCat(
                  "the server takes no new tasks: ", stop_reason_.message())),
              common::kShuttingDown),
          options_.retry_after);
    }
    if (!t.request_id.empty()) {
      auto it = requests_.find(request_key);
      if (it != requests_.end()) {
        const auto& [name, fp] = it->second;
        if (fp != fingerprint) {
          return common::WithResource(
              common::WithReason(
                  absl::AlreadyExistsError(absl::StrCat(
                      "request_id ", common::Quote(t.request_id),
                      " was used for ", name, " with another plan")),
                  common::kRequestIdReused),
              kTaskType, name);
        }
        auto live = live_.find(name);
        if (live != live_.end()) {
          if (!live->second->stored) {
            // The first is being written: answer both once it is.
            live->second->on_stored.push_back(std::move(done));
            return std::nullopt;
          }
          return SnapshotLocked(*live->second, TaskParts::kBasic);
        }
        std::shared_ptr<const Task> stored = FinishedLocked(name);
        if (stored != nullptr) return CopyWithoutOutcome(*stored);
      }
    }
    // Exact: after every change no queued task may start (see
    // StartQueuedLocked), so this one would start at once iff it may.
    const bool run_now = MayStartLocked(t.creator);
    if (absl::Status s = QuotaLocked(t.creator, run_now, others); !s.ok()) {
      return s;
    }
    if (!run_now && static_cast<int>(queue_.size()) + storing_ >=
                        options_.max_queued_tasks) {
      return common::WithRetryDelay(
          common::WithLimit(
              absl::ResourceExhaustedError(absl::StrCat(
                  "too many tasks waiting: ", queue_.size(), " queued behind ",
                  running_,
                  " running, the most allowed (--max_queued_tasks, "
                  "--max_running_tasks); "
                  "retry after ",
                  common::FormatJsonDuration(options_.retry_after))),
              common::kTaskQueueFull, "--max_queued_tasks",
              options_.max_queued_tasks),
          options_.retry_after);
    }
    const int64_t bytes = t.request_bytes + kTaskMemory;
    if (!MakeRoomLocked(bytes)) {
      return common::WithRetryDelay(
          common::WithLimit(
              absl::ResourceExhaustedError(absl::StrCat(
                  "the tasks held take ", retained_.used(),
                  " bytes of at most ", retained_.limit(),
                  " (--max_retained_task_bytes), and ", live_.size(),
                  " of them are still queued or running; this one needs ",
                  bytes, ". Retry after ",
                  common::FormatJsonDuration(options_.retry_after),
                  ", or delete finished tasks")),
              common::kTaskStoreFull, "--max_retained_task_bytes",
              retained_.limit()),
          options_.retry_after);
    }
    auto live = std::make_shared<Live>(this, std::move(t));
    Task& task = live->task;
    task.set_name(NewTaskName());
    live->name = task.name();
    task.set_state(weft::v1::TASK_STATE_QUEUED);
    for (const auto& [k, v] : live->created.labels)
      (*task.mutable_labels())[k] = v;
    task.set_request_id(live->created.request_id);
    task.set_creator(live->created.creator);
    task.set_outcome_root_only(live->created.root_only);
    common::SetTimestamp(env_.Now(), task.mutable_create_time());
    task.mutable_progress()->set_leaves_total(live->created.plan->leaves());
    if (!request_key.empty()) {
      requests_[request_key] = {task.name(), fingerprint};
      request_of_[task.name()] = request_key;
    }
    live_[task.name()] = live;
    footprints_[task.name()] =
        Footprint{.request = bytes, .creator = live->created.creator};
    ++counts_[weft::v1::TASK_STATE_QUEUED];
    ++storing_;
    AddLoadLocked(live->created.creator, 0, 1);
    live->on_stored.push_back(std::move(done));
    WriteLocked(StoredLocked(*live), task.name(),
                [this, live](absl::Status s) { Stored(live, std::move(s)); });
  }
  FlushWrites();
  return std::nullopt;
}

void TaskRegistry::Stored(const std::shared_ptr<Live>& live,
                          absl::Status written) {
  std::vector<std::function<void()>> after;
  std::vector<CreateFn> answer;
  const std::string name = live->task.name();
  {
    engine::MutexLock lock(&mu_);
    --storing_;
    live->stored = true;
    answer = std::move(live->on_stored);
    if (!written.ok()) {
      // Nothing of the task is kept: its name was never given out.
      --counts_[weft::v1::TASK_STATE_QUEUED];
      AddLoadLocked(live->created.creator, 0, -1);
      live_.erase(name);
      auto footprint = footprints_.find(name);
      retained_.Remove(footprint->second.request);
      footprints_.erase(footprint);
      auto req = request_of_.find(name);
      if (req != request_of_.end()) {
        requests_.erase(req->second);
        request_of_.erase(req);
      }
    } else if (!accepting_ && store_.durable()) {
      // Stopped while it was written: it waits in the store for the next
      // start.
      queue_.push_back(live);
    } else if (!accepting_) {
      // Stopped while it was written: it ends as queued tasks do.
      auto* outcome = live->task.mutable_outcome();
      outcome->set_state(weft::v1::NODE_STATE_CANCELLED);
      outcome->mutable_error()->set_code("CANCELLED");
      outcome->mutable_error()->set_message(
          std::string(stop_reason_.message()));
      outcome->mutable_error()->set_reason(common::Reason(stop_reason_));
      --counts_[weft::v1::TASK_STATE_QUEUED];
      AddLoadLocked(live->created.creator, 0, -1);
      EndLocked(live, weft::v1::TASK_STATE_CANCELLED, &after);
    } else if (MayStartLocked(live->created.creator)) {
      // No queued task may start (see StartQueuedLocked): none is passed.
      StartLocked(live, &after);
    } else {
      queue_.push_back(live);
    }
  }
  RunAfter(after);
  if (written.code() == absl::StatusCode::kAlreadyExists &&
      !live->created.request_id.empty()) {
    // Replicas: the creator's request_id names a task another replica
    // took (the database keeps the pair unique). Answered as a repeat on
    // this replica is; if that task has gone meanwhile, the caller retries.
    std::shared_ptr<const Task> first =
        store_.GetByRequest(live->created.creator, live->created.request_id);
    if (first != nullptr) {
      absl::StatusOr<Task> repeat =
          Fingerprint(first->plan()) == Fingerprint(*live->created.source)
              ? absl::StatusOr<Task>(CopyWithoutOutcome(*first))
              : common::WithResource(
                    common::WithReason(
                        absl::AlreadyExistsError(absl::StrCat(
                            "request_id ",
                            common::Quote(live->created.request_id),
                            " was used for ", first->name(),
                            " with another plan")),
                        common::kRequestIdReused),
                    kTaskType, first->name());
      for (auto& fn : answer) std::move(fn)(repeat);
      return;
    }
  }
  if (!written.ok()) {
    WriteFailed("the new task", name, written);
    const absl::Status refused = common::WithRetryDelay(
        common::WithReason(
            absl::UnavailableError(absl::StrCat(
                "the task could not be stored, so it was not created: ",
                written.message(), ". Retry after ",
                common::FormatJsonDuration(options_.retry_after))),
            common::kTaskStoreUnavailable),
        options_.retry_after);
    for (auto& fn : answer) std::move(fn)(refused);
    return;
  }
  // As it stands once started (a plan of values may have ended already).
  for (auto& fn : answer) {
    if (fn) std::move(fn)(Get(name, TaskParts::kBasic));
  }
}

void TaskRegistry::StartLocked(const std::shared_ptr<Live>& live,
                               std::vector<std::function<void()>>* after) {
  --counts_[weft::v1::TASK_STATE_QUEUED];
  ++counts_[weft::v1::TASK_STATE_RUNNING];
  ++running_;
  AddLoadLocked(live->created.creator, 1, -1);
  live->task.set_state(weft::v1::TASK_STATE_RUNNING);
  live->changes.fetch_add(1, std::memory_order_release);
  if (!live->task.has_start_time()) {  // A resumed task keeps its first.
    common::SetTimestamp(env_.Now(), live->task.mutable_start_time());
  }
  WriteLocked(StoredLocked(*live), live->task.name(),
              [this, name = live->task.name()](absl::Status s) {
                if (!s.ok()) WriteFailed("the start", name, s);
              });
  // The longest a task may take counts from its creation, a restart's
  // downtime included.
  const absl::Time deadline =
      common::FromProto(live->task.create_time()) + options_.max_task_duration;
  // Run outside the lock: the plan may finish inline.
  after->push_back([this, live, deadline] {
    plan::RunOptions options;
    options.env = &env_;
    options.token = live->cancel.token();
    options.source = &live->cancel;
    options.root_only = live->created.root_only;
    options.observer = live.get();
    options.replay = live->replay;
    options.max_outcome_bytes = options_.max_outcome_bytes;
    options.memory = &live->inflight;
    options.traceparent = live->created.traceparent;
    options.deadline = deadline;
    options.deadline_message =
        absl::StrCat("the task ran longer than ",
                     common::FormatJsonDuration(options_.max_task_duration),
                     " (--max_task_duration)");
    plan::Execute(live->created.plan, std::move(options),
                  [this, live](weft::v1::NodeOutcome outcome) {
                    Finished(live, std::move(outcome));
                  });
    live->NotifyWatchers();
  });
}

bool TaskRegistry::MayStartLocked(const std::string& creator) const {
  if (running_ >= options_.max_running_tasks) return false;
  if (creator.empty()) return true;
  auto it = loads_.find(creator);
  int running = it == loads_.end() ? 0 : it->second.running;
  if (auto other = others_running_.find(creator);
      other != others_running_.end()) {
    running += other->second.running;
  }
  return running < options_.max_running_per_principal;
}

void TaskRegistry::StartQueuedLocked(
    std::vector<std::function<void()>>* after) {
  // Tasks of principals at their running quota keep their place; the scan
  // ends when the slots are full, so it only walks past such tasks. After
  // it (and so after every change, as only a task's end frees a slot) no
  // queued task may start: a task may start at once when MayStartLocked
  // says so, without passing one that waits longer.
  for (auto it = queue_.begin(); accepting_ && it != queue_.end() &&
                                 running_ < options_.max_running_tasks;) {
    if (!MayStartLocked((*it)->created.creator)) {
      ++it;
      continue;
    }
    std::shared_ptr<Live> next = std::move(*it);
    it = queue_.erase(it);
    StartLocked(next, after);
  }
}

void TaskRegistry::AddLoadLocked(const std::string& creator, int running,
                                 int waiting) {
  if (creator.empty()) return;
  Load& load = loads_[creator];
  load.running += running;
  load.waiting += waiting;
  assert(load.running >= 0 && load.waiting >= 0);
  if (load.running == 0 && load.waiting == 0) loads_.erase(creator);
}

absl::Status TaskRegistry::QuotaLocked(
    const std::string& creator, bool run_now,
    const store::TaskStore::CreatorLoad& others) const {
  if (creator.empty()) return absl::OkStatus();
  Load load;
  if (auto it = loads_.find(creator); it != loads_.end()) load = it->second;
  // With replicas, its tasks on the others count too.
  load.running += others.running;
  load.waiting += others.queued;
  const int max_running = options_.max_running_per_principal;
  const int max_waiting = options_.max_queued_per_principal;
  // Its tasks ahead of this one take its running slots first; while no
  // slot is free at all, every one of them waits.
  const bool full = load.running + load.waiting >= max_running + max_waiting ||
                    (!run_now && load.waiting >= max_waiting);
  if (!full) return absl::OkStatus();
  const std::string limit = absl::StrCat(max_waiting);
  return common::WithRetryDelay(
      common::WithReason(absl::ResourceExhaustedError(absl::StrCat(
                             "principal ", common::Quote(creator), " has ",
                             load.running, " tasks running and ", load.waiting,
                             " waiting, the most allowed for one principal "
                             "(--max_running_tasks_per_principal=",
                             max_running, ", --max_queued_tasks_per_principal=",
                             max_waiting, "); retry after ",
                             common::FormatJsonDuration(options_.retry_after))),
                         common::kPrincipalQuota,
                         {{"flag", "--max_queued_tasks_per_principal"},
                          {"limit", limit},
                          {"principal", creator}}),
      options_.retry_after);
}

std::shared_ptr<const Task> TaskRegistry::StoredLocked(const Live& live) const {
  auto task = std::make_shared<Task>(live.task);
  *task->mutable_plan() = *live.created.source;
  return task;
}

void TaskRegistry::Finished(const std::shared_ptr<Live>& live,
                            weft::v1::NodeOutcome outcome) {
  std::vector<std::function<void()>> after;
  {
    engine::MutexLock lock(&mu_);
    if (suspending_) {
      // Stopped for the next start: the store keeps it RUNNING.
      --running_;
      AddLoadLocked(live->created.creator, -1, 0);
      live->inflight.Reset();
      if (running_ == 0) idle_.SignalAll();
      return;
    }
  }
  // The outcome moves from the runs' memory to the tasks': what the run's
  // charge holds now is what the outcome keeps.
  const int64_t bytes = live->inflight.bytes();
  {
    engine::MutexLock lock(&mu_);
    ++finishing_;
    --running_;
    AddLoadLocked(live->created.creator, -1, 0);
    --counts_[weft::v1::TASK_STATE_RUNNING];
    if (MakeRoomLocked(bytes)) {
      footprints_[live->task.name()].outcome = bytes;
    } else {
      outcome = plan::RootFailed(
          outcome,
          common::WithLimit(
              absl::ResourceExhaustedError(absl::StrCat(
                  "the outcome takes ", bytes,
                  " bytes, more than the tasks held leave room for: they "
                  "take ",
                  retained_.used(), " of at most ", retained_.limit(),
                  " bytes (--max_retained_task_bytes)")),
              common::kTaskStoreFull, "--max_retained_task_bytes",
              retained_.limit()));
      const int64_t small = static_cast<int64_t>(outcome.SpaceUsedLong());
      if (retained_.TryAdd(small)) {
        footprints_[live->task.name()].outcome = small;
      }
    }
    *live->task.mutable_outcome() = std::move(outcome);
    live->inflight.Reset();
    EndLocked(live, StateOf(live->task.outcome()), &after);
    // A slot is free: start the oldest queued task that may start.
    StartQueuedLocked(&after);
    if (running_ == 0) idle_.SignalAll();
  }
  RunAfter(after);
  // Only now may the registry be destroyed (its destructor waits for this).
  engine::MutexLock lock(&mu_);
  if (--finishing_ == 0) idle_.SignalAll();
}

void TaskRegistry::EndLocked(const std::shared_ptr<Live>& live, TaskState state,
                             std::vector<std::function<void()>>* after) {
  Task& task = live->task;
  task.set_state(state);
  Footprint& footprint = footprints_[task.name()];
  footprint.changes = live->changes.fetch_add(1, std::memory_order_acq_rel) + 1;
  footprint.state = state;
  ++counts_[state];
  const absl::Time now = env_.Now();
  common::SetTimestamp(now, task.mutable_end_time());
  auto* progress = task.mutable_progress();
  progress->set_leaves_done(live->done.load());
  progress->set_leaves_failed(live->failed.load());
  progress->set_leaves_running(0);
  if (live->created.plan != nullptr) {  // null: it no longer compiles
    progress->set_leaves_total(live->created.plan->leaves() +
                               static_cast<int32_t>(live->added_leaves.load()));
  }
  // Waiters get the task without its outcome (they read it with Get).
  const Task final_task = CopyWithoutOutcome(task);
  const std::string name = task.name();
  *task.mutable_plan() = *live->created.source;
  auto written = std::make_shared<const Task>(std::move(task));
  unsaved_[name] = written;
  WriteLocked(written, name, [this, name, written](absl::Status s) {
    if (!s.ok()) {
      WriteFailed("the end", name, s);
      return;
    }
    engine::MutexLock lock(&mu_);
    // Read from the store from now on, unless a newer write is pending.
    auto it = unsaved_.find(name);
    if (it != unsaved_.end() && it->second == written) unsaved_.erase(it);
  });
  live->task = final_task;
  finished_.emplace_back(now, name);
  finished_names_.insert(name);
  live_.erase(name);
  // Tell waiters and watchers, outside the lock.
  std::vector<std::shared_ptr<OnceFn>> waiters = std::move(live->waiters);
  after->push_back([live, final_task, waiters = std::move(waiters)]() mutable {
    for (auto& w : waiters) {
      w->Call([&] { return final_task; });
    }
    live->NotifyWatchers();
  });
  Retain(after);
}

void TaskRegistry::Retain(std::vector<std::function<void()>>*) {
  const absl::Time now = env_.Now();
  for (;;) {
    SkipDeletedLocked();
    if (finished_.empty() ||
        (static_cast<int>(finished_.size()) <= options_.max_retained_tasks &&
         finished_.front().first + options_.task_retention > now)) {
      break;
    }
    ForgetOldestLocked(
        "expired: finished tasks are kept for the time of --task_retention "
        "and at most --max_retained_tasks of them");
  }
  SweepLater();
}

void TaskRegistry::SkipDeletedLocked() {
  while (!finished_.empty() &&
         !finished_names_.contains(finished_.front().second)) {
    finished_.pop_front();
  }
}

bool TaskRegistry::ForgetOldestLocked(const char* why) {
  SkipDeletedLocked();
  if (finished_.empty()) return false;
  const std::string name = std::move(finished_.front().second);
  finished_.pop_front();
  finished_names_.erase(name);
  Forget(name, why);
  return true;
}

bool TaskRegistry::MakeRoomLocked(int64_t bytes) {
  while (!retained_.TryAdd(bytes)) {
    if (!ForgetOldestLocked(
            "expired: finished tasks are kept for the time of "
            "--task_retention, at most --max_retained_tasks of them, and "
            "within --max_retained_task_bytes")) {
      return false;
    }
  }
  return true;
}

int64_t TaskRegistry::CopyBytesLocked(absl::string_view name,
                                      TaskParts parts) const {
  auto it = footprints_.find(name);
  if (it == footprints_.end()) return kTaskMemory;
  return kTaskMemory + (HasPlan(parts) ? it->second.request : 0) +
         (HasOutcome(parts) ? it->second.outcome : 0);
}

void TaskRegistry::SweepLater() {
  if (finished_.empty() || sweep_scheduled_) return;
  sweep_scheduled_ = true;
  sweep_timer_ = env_.Schedule(
      finished_.front().first + options_.task_retention, [alive = alive_] {
        engine::MutexLock guard(&alive->mu);
        TaskRegistry* self = alive->registry;
        if (self == nullptr) return;
        {
          engine::MutexLock lock(&self->mu_);
          self->sweep_scheduled_ = false;
          self->sweep_timer_.reset();
          self->Retain(nullptr);
        }
        self->FlushWrites();
      });
}

void TaskRegistry::Forget(const std::string& name, const char* why,
                          DeleteFn erased) {
  auto footprint = footprints_.find(name);
  std::string creator;
  if (footprint != footprints_.end()) {
    creator = std::move(footprint->second.creator);
    --counts_[footprint->second.state];
    retained_.Remove(footprint->second.request + footprint->second.outcome);
    footprints_.erase(footprint);
  }
  unsaved_.erase(name);
  WriteLocked(nullptr, name,
              [this, name, erased = std::move(erased)](absl::Status s) mutable {
                if (!s.ok()) WriteFailed("the erasure", name, s);
                if (erased) std::move(erased)(std::move(s));
              });
  auto req = request_of_.find(name);
  if (req != request_of_.end()) {
    requests_.erase(req->second);
    request_of_.erase(req);
  }
  forgotten_.Remember(name, why, creator);
}

Task TaskRegistry::SnapshotLocked(const Live& live, TaskParts parts) const {
  Task task = live.task;
  if (!IsTerminal(task.state())) {
    auto* progress = task.mutable_progress();
    progress->set_leaves_done(live.done.load(std::memory_order_relaxed));
    progress->set_leaves_failed(live.failed.load(std::memory_order_relaxed));
    progress->set_leaves_running(live.running.load(std::memory_order_relaxed));
    if (live.created.plan != nullptr) {
      progress->set_leaves_total(live.created.plan->leaves() +
                                 static_cast<int32_t>(live.added_leaves.load(
                                     std::memory_order_relaxed)));
    }
  }
  if (!HasOutcome(parts)) task.clear_outcome();
  if (HasPlan(parts)) *task.mutable_plan() = *live.created.source;
  return task;
}

absl::StatusOr<Task> TaskRegistry::Get(absl::string_view name, TaskParts parts,
                                       engine::MemoryCharge* charge,
                                       int64_t* changes,
                                       const Reach& reach) const {
  if (absl::Status s = ParseTaskName(name).status(); !s.ok()) return s;
  {
    engine::MutexLock lock(&mu_);
    if (absl::Status s = ReachLocked(name, reach); !s.ok()) return s;
    if (charge != nullptr) {
      const int64_t bytes = CopyBytesLocked(name, parts);
      if (!charge->TryAdd(bytes)) return CopyRefused(*charge, bytes);
    }
    auto live = live_.find(name);
    if (live != live_.end()) {
      // Read before the progress: a change in between shows in the
      // snapshot under the older number, so a watcher resuming from it sees
      // it again rather than never.
      if (changes != nullptr) {
        *changes = live->second->changes.load(std::memory_order_acquire);
      }
      return SnapshotLocked(*live->second, parts);
    }
    std::shared_ptr<const Task> stored = FinishedLocked(name);
    if (stored != nullptr) {
      if (changes != nullptr) {
        auto footprint = footprints_.find(name);
        *changes =
            footprint != footprints_.end() ? footprint->second.changes : 0;
      }
      return CopyParts(*stored, parts);
    }
    if (!store_.shared()) return NotFound(name, reach);
  }
  // With replicas, another's: read outside the lock.
  return GetRemote(name, parts, charge, changes, reach);
}

absl::StatusOr<Task> TaskRegistry::GetRemote(absl::string_view name,
                                             TaskParts parts,
                                             engine::MemoryCharge* charge,
                                             int64_t* changes,
                                             const Reach& reach) const {
  absl::StatusOr<std::shared_ptr<const Task>> read = RemoteTask(name, reach);
  if (!read.ok()) return read.status();
  std::shared_ptr<const Task> remote = *std::move(read);
  if (remote == nullptr) {
    engine::MutexLock lock(&mu_);
    return NotFound(name, reach);
  }
  if (charge != nullptr) {
    const int64_t bytes = static_cast<int64_t>(remote->SpaceUsedLong());
    if (!charge->TryAdd(bytes)) return CopyRefused(*charge, bytes);
  }
  if (changes != nullptr) *changes = RemoteChanges(*remote);
  return CopyParts(*remote, parts);
}

absl::StatusOr<std::shared_ptr<const Task>> TaskRegistry::RemoteTask(
    absl::string_view name, const Reach& reach) const {
  if (!store_.shared()) return nullptr;
  absl::StatusOr<std::shared_ptr<const Task>> task = store_.Lookup(name);
  if (!task.ok()) {
    // A row that does not parse stays DATA_LOSS; only a store that cannot
    // be reached is TASK_STORE_UNAVAILABLE.
    absl::Status read(task.status().code(),
                      absl::StrCat("cannot read ", name,
                                   " from the task store (another replica "
                                   "runs it): ",
                                   task.status().message()));
    if (!absl::IsUnavailable(read)) return read;
    return common::WithReason(std::move(read), common::kTaskStoreUnavailable);
  }
  if (*task == nullptr || !reach.Covers((**task).creator())) return nullptr;
  return task;
}

absl::StatusOr<TaskRegistry::ListResult> TaskRegistry::List(
    const ListQuery& query, engine::MemoryCharge* charge) const {
  absl::StatusOr<int> size = common::PageSize(query.page_size);
  if (!size.ok()) return size.status();
  const int page_size = *size;
  const int64_t max_bytes = query.max_bytes;
  absl::flat_hash_set<int> states;
  for (weft::v1::TaskState s : query.states) {
    if (!weft::v1::TaskState_IsValid(s) ||
        s == weft::v1::TASK_STATE_UNSPECIFIED) {
      return common::FieldError(
          "states", absl::StrCat("unknown state ", static_cast<int>(s)));
    }
    states.insert(s);
  }
  // The token binds the filters it was made with: "<position>.<filters hash>".
  std::string filters;
  for (weft::v1::TaskState s : query.states) {
    absl::StrAppend(&filters, static_cast<int>(s), ",");
  }
  const std::map<std::string, std::string>& labels = query.labels;
  for (const auto& [k, v] : labels) absl::StrAppend(&filters, k, "=", v, ";");
  const Reach& reach = query.reach;
  const std::string filter_hash =
      absl::StrCat(absl::Hash<std::string>{}(filters));
  uint64_t before = 0;
  if (!query.page_token.empty()) {
    const size_t dot = query.page_token.find('.');
    if (dot == std::string::npos ||
        !absl::SimpleAtoi(query.page_token.substr(0, dot), &before) ||
        query.page_token.substr(dot + 1) != filter_hash) {
      return common::FieldError(
          "page_token",
          "not a token from an earlier ListTasks with these same filters");
    }
  }

  // The page's tasks by name, then each copied as it stands (live tasks
  // with fresh progress), within max_bytes.
  std::vector<std::pair<uint64_t, std::string>> matched;
  bool more = false;
  {
    // Under the lock, so the state filtered on is the state Get serves: a
    // task's last state may not be written yet (a watcher can have seen a
    // task end before its row says so).
    engine::MutexLock lock(&mu_);
    store_.Scan(before, [&](uint64_t position, const Task& stored) {
      mu_.AssertHeld();  // Scan calls back in this thread, under the lock.
      if (static_cast<int>(matched.size()) == page_size) {
        more = true;
        return false;
      }
      if (!reach.Covers(stored.creator())) return true;
      if (!states.empty() && !states.contains(StateLocked(stored))) {
        return true;
      }
      for (const auto& [k, v] : labels) {
        auto it = stored.labels().find(k);
        if (it == stored.labels().end() || it->second != v) return true;
      }
      matched.emplace_back(position, stored.name());
      return true;
    });
  }
  ListResult result;
  uint64_t last = 0;
  int64_t bytes = 0;
  const bool root_only = query.root_only;
  for (size_t i = 0; i < matched.size(); ++i) {
    const auto& [position, name] = matched[i];
    absl::StatusOr<Task> task = Get(name, query.parts, charge);
    if (!task.ok()) {
      if (task.status().code() == absl::StatusCode::kNotFound) continue;
      return task.status();  // Memory refused.
    }
    if (root_only && task->has_outcome()) {
      *task->mutable_outcome() = common::RootOnly(task->outcome());
    }
    // As the page carries it: a field of its own, tag and length first.
    const int64_t size = static_cast<int64_t>(task->ByteSizeLong()) + 6;
    if (bytes + size > max_bytes) {
      if (result.tasks.empty()) {
        return common::WithLimit(
            absl::ResourceExhaustedError(absl::StrCat(
                task->name(), " alone takes ", size,
                " bytes, more than a page may (--max_outcome_bytes ", max_bytes,
                "); read it with GetTask and detail OUTCOME_DETAIL_ROOT, or "
                "list with view TASK_VIEW_BASIC")),
            common::kAnswerTooLarge, "--max_outcome_bytes", max_bytes);
      }
      more = true;
      break;
    }
    bytes += size;
    result.tasks.push_back(*std::move(task));
    last = position;
  }
  if (more) result.next_page_token = absl::StrCat(last, ".", filter_hash);
  return result;
}

absl::StatusOr<Task> TaskRegistry::Cancel(absl::string_view name,
                                          engine::MemoryCharge* charge,
                                          const Reach& reach) {
  if (absl::Status s = ParseTaskName(name).status(); !s.ok()) return s;
  std::vector<std::function<void()>> after;
  std::shared_ptr<Live> running;
  bool remote = false;
  {
    engine::MutexLock lock(&mu_);
    if (absl::Status s = ReachLocked(name, reach); !s.ok()) return s;
    auto it = live_.find(name);
    if (it == live_.end()) {
      // Finished: unchanged. Or, with replicas, another's.
      if (FinishedLocked(name) == nullptr) {
        if (!store_.shared()) return NotFound(name, reach);
        remote = true;
      }
    } else if (!it->second->stored) {
      // Its creation is still being written: no caller has its name.
      return NotFound(name, reach);
    } else if (it->second->task.state() == weft::v1::TASK_STATE_QUEUED) {
      std::shared_ptr<Live> live = it->second;
      queue_.erase(std::remove(queue_.begin(), queue_.end(), live),
                   queue_.end());
      --counts_[weft::v1::TASK_STATE_QUEUED];
      AddLoadLocked(live->created.creator, 0, -1);
      auto* outcome = live->task.mutable_outcome();
      outcome->set_state(weft::v1::NODE_STATE_CANCELLED);
      outcome->mutable_error()->set_code("CANCELLED");
      outcome->mutable_error()->set_message(
          "cancelled before it started (CancelTask)");
      outcome->mutable_error()->set_reason(std::string(common::kRunCancelled));
      EndLocked(live, weft::v1::TASK_STATE_CANCELLED, &after);
    } else {
      running = it->second;
    }
  }
  if (remote) {
    // Its owner cancels it; the request waits in the store for it (or for
    // its adopter).
    absl::StatusOr<std::shared_ptr<const Task>> task = RemoteTask(name, reach);
    if (!task.ok()) return task.status();
    if (*task != nullptr && !IsTerminal((**task).state())) {
      absl::Status asked = store_.RequestCancel(name);
      if (!asked.ok() && asked.code() != absl::StatusCode::kNotFound) {
        return common::WithReason(
            absl::UnavailableError(absl::StrCat(
                "cannot ask the replica that runs ", name,
                " to cancel it: the task store answered: ", asked.message())),
            common::kTaskStoreUnavailable);
      }
    }
    return GetRemote(name, TaskParts::kWithOutcome, charge, nullptr, reach);
  }
  RunAfter(after);
  if (running != nullptr) {
    running->cancel.Cancel(
        common::WithReason(absl::CancelledError("cancelled by CancelTask"),
                           common::kRunCancelled));
  }
  return Get(name, TaskParts::kWithOutcome, charge, nullptr, reach);
}

void TaskRegistry::Delete(absl::string_view name, DeleteFn done,
                          const Reach& reach) {
  absl::Status refused = ParseTaskName(name).status();
  if (refused.ok()) {
    engine::MutexLock lock(&mu_);
    refused = DeleteLocked(name, done, reach);
  }
  if (refused.code() == absl::StatusCode::kNotFound && store_.shared()) {
    // With replicas: a finished task of another replica's is erased from
    // the store here; an unfinished one is its owner's.
    absl::StatusOr<std::shared_ptr<const Task>> task = RemoteTask(name, reach);
    if (!task.ok()) {
      std::move(done)(task.status());
      return;
    }
    if (*task != nullptr) {
      if (!IsTerminal((**task).state())) {
        std::move(done)(NotFinished(name, (**task).state()));
        return;
      }
      store_.Erase(std::string(name), std::move(done));
      return;
    }
  }
  if (!refused.ok()) {
    std::move(done)(std::move(refused));
    return;
  }
  FlushWrites();
}

absl::Status TaskRegistry::DeleteLocked(absl::string_view name, DeleteFn& done,
                                        const Reach& reach) {
  if (absl::Status s = ReachLocked(name, reach); !s.ok()) return s;
  auto live = live_.find(name);
  if (live != live_.end() && !live->second->stored) {
    return NotFound(name, reach);
  }
  if (live != live_.end()) {
    return NotFinished(name, live->second->task.state());
  }
  if (!finished_names_.erase(std::string(name))) {
    return NotFound(name, reach);
  }
  Forget(std::string(name), "deleted (DeleteTask)",
         [name = std::string(name),
          done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) {
             s = common::WithReason(
                 absl::UnavailableError(absl::StrCat(
                     name,
                     " is deleted here, but the task store could not forget "
                     "it, so it would come back after a restart: ",
                     s.message())),
                 common::kTaskStoreUnavailable);
           }
           std::move(done)(std::move(s));
         });
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TaskRegistry::Handle>> TaskRegistry::Wait(
    absl::string_view name, absl::Time deadline, WaitFn fn,
    const Reach& reach) {
  if (absl::Status s = ParseTaskName(name).status(); !s.ok()) return s;
  std::optional<Task> now;
  std::shared_ptr<OnceFn> once;
  std::optional<engine::TimerId> timer;
  bool remote = false;
  {
    engine::MutexLock lock(&mu_);
    if (absl::Status s = ReachLocked(name, reach); !s.ok()) return s;
    auto it = live_.find(name);
    if (it == live_.end()) {
      std::shared_ptr<const Task> stored = FinishedLocked(name);
      if (stored != nullptr) {
        now = CopyWithoutOutcome(*stored);
      } else if (store_.shared()) {
        remote = true;
      } else {
        return NotFound(name, reach);
      }
    } else if (!it->second->stored) {
      return NotFound(name, reach);
    } else {
      once = std::make_shared<OnceFn>(std::move(fn));
      it->second->waiters.push_back(once);
      std::weak_ptr<Live> weak = it->second;
      timer =
          env_.Schedule(deadline, [this, once, weak, n = std::string(name)] {
            once->Call([&] { return Get(n, TaskParts::kBasic); });
          });
    }
  }
  if (remote) {
    // Heard of before it is read, so that no end falls in between.
    auto waiting = std::make_shared<Remote>();
    waiting->name = std::string(name);
    waiting->reach = reach;
    waiting->wait = std::make_shared<OnceFn>(std::move(fn));
    absl::StatusOr<std::shared_ptr<const Task>> task = RemoteTask(name, reach);
    if (!task.ok()) return task.status();
    if (*task == nullptr) {
      engine::MutexLock lock(&mu_);
      return NotFound(name, reach);
    }
    if (IsTerminal((*task)->state())) {
      // Ended already: answered from this read.
      waiting->wait->Call(
          [&]() -> absl::StatusOr<Task> { return CopyWithoutOutcome(**task); });
      return std::unique_ptr<Handle>(
          new WaitHandle(&env_, nullptr, std::nullopt));
    }
    std::optional<engine::TimerId> at_deadline;
    {
      at_deadline = env_.Schedule(deadline, [this, waiting] {
        waiting->wait->Call([&]() -> absl::StatusOr<Task> {
          absl::StatusOr<std::shared_ptr<const Task>> now =
              RemoteTask(waiting->name, waiting->reach);
          if (!now.ok()) return now.status();
          if (*now == nullptr) {
            engine::MutexLock lock(&mu_);
            return NotFound(waiting->name, waiting->reach);
          }
          return CopyWithoutOutcome(**now);
        });
      });
    }
    std::unique_ptr<Handle> handle = AddRemote(waiting, at_deadline);
    // Read again now that it is heard of: an end written since the first
    // read is seen here or by the notice.
    CheckRemote(*waiting);
    return handle;
  }
  if (now.has_value()) {
    std::move(fn)(*std::move(now));
    return std::unique_ptr<Handle>(
        new WaitHandle(&env_, nullptr, std::nullopt));
  }
  return std::unique_ptr<Handle>(new WaitHandle(&env_, std::move(once), timer));
}

absl::StatusOr<std::unique_ptr<TaskRegistry::Handle>> TaskRegistry::Watch(
    absl::string_view name, std::function<void()> on_change,
    const Reach& reach) {
  if (absl::Status s = ParseTaskName(name).status(); !s.ok()) return s;
  auto fn = std::make_shared<WatchFn>(std::move(on_change));
  std::shared_ptr<Live> live;
  bool remote = false;
  {
    engine::MutexLock lock(&mu_);
    if (absl::Status s = ReachLocked(name, reach); !s.ok()) return s;
    auto it = live_.find(name);
    if (it == live_.end()) {
      if (!finished_names_.contains(name)) {
        if (!store_.shared()) return NotFound(name, reach);
        remote = true;
      }
    } else if (!it->second->stored) {
      return NotFound(name, reach);
    } else {
      live = it->second;
      engine::MutexLock wl(&live->watchers_mu);
      live->watchers.push_back(fn);
      live->watcher_count.store(static_cast<int>(live->watchers.size()),
                                std::memory_order_release);
    }
  }
  if (remote) {
    absl::StatusOr<std::shared_ptr<const Task>> task = RemoteTask(name, reach);
    if (!task.ok()) return task.status();
    if (*task == nullptr) {
      engine::MutexLock lock(&mu_);
      return NotFound(name, reach);
    }
    auto watching = std::make_shared<Remote>();
    watching->name = std::string(name);
    watching->reach = reach;
    watching->watch = fn;
    // The watcher reads it once it has the handle; changes from then on
    // are heard of.
    return AddRemote(watching, std::nullopt);
  }
  return std::unique_ptr<Handle>(
      new WatchHandle(std::move(live), std::move(fn)));
}

std::unique_ptr<TaskRegistry::Handle> TaskRegistry::AddRemote(
    std::shared_ptr<Remote> remote, std::optional<engine::TimerId> timer) {
  {
    engine::MutexLock lock(&remote_mu_);
    remotes_[remote->name].push_back(remote);
  }
  return std::make_unique<RemoteHandle>(this, std::move(remote), timer);
}

void TaskRegistry::OnNotice(const store::TaskStore::Notice& notice) {
  using Kind = store::TaskStore::Notice::Kind;
  switch (notice.kind) {
    case Kind::kCancel:
      CancelAsked(notice.name);
      return;
    case Kind::kChanged: {
      std::vector<std::shared_ptr<Remote>> told;
      {
        engine::MutexLock lock(&remote_mu_);
        auto it = remotes_.find(notice.name);
        if (it == remotes_.end()) return;
        told = it->second;
      }
      for (const auto& remote : told) CheckRemote(*remote);
      return;
    }
    case Kind::kLazy:  // LazySync's.
      return;
    case Kind::kPoll: {
      // Cancels asked while nobody heard (or of tasks adopted since), and
      // every remote wait and watch read again.
      for (const std::string& name : store_.CancelRequests()) {
        CancelAsked(name);
      }
      PollOthersLoad();
      std::vector<std::shared_ptr<Remote>> all;
      {
        engine::MutexLock lock(&remote_mu_);
        for (const auto& [name, v] : remotes_) {
          all.insert(all.end(), v.begin(), v.end());
        }
      }
      for (const auto& remote : all) CheckRemote(*remote);
      return;
    }
  }
}

void TaskRegistry::SetOthersRunningLocked(const std::string& creator,
                                          int running, uint64_t ticket) {
  auto [it, added] = others_running_.try_emplace(creator);
  // A read that started before the one applied last is older.
  if (!added && it->second.ticket > ticket) return;
  it->second = {.running = running, .ticket = ticket};
}

void TaskRegistry::PollOthersLoad() {
  std::vector<std::string> creators;
  uint64_t ticket;
  {
    engine::MutexLock lock(&mu_);
    ticket = ++load_reads_;
    for (const auto& [creator, load] : loads_) {
      if (load.waiting > 0) creators.push_back(creator);
    }
  }
  std::map<std::string, store::TaskStore::CreatorLoad> others;
  if (!creators.empty()) {
    absl::StatusOr<std::map<std::string, store::TaskStore::CreatorLoad>> read =
        store_.OthersLoad(creators);
    // Not read now: counted as they were until the next poll.
    if (!read.ok()) return;
    others = *std::move(read);
  }
  std::vector<std::function<void()>> after;
  {
    engine::MutexLock lock(&mu_);
    for (const std::string& creator : creators) {
      auto it = others.find(creator);
      SetOthersRunningLocked(
          creator, it == others.end() ? 0 : it->second.running, ticket);
    }
    // Creators with nothing here any more are read again at their next
    // task.
    for (auto it = others_running_.begin(); it != others_running_.end();) {
      if (loads_.contains(it->first)) {
        ++it;
      } else {
        others_running_.erase(it++);
      }
    }
    StartQueuedLocked(&after);
  }
  RunAfter(after);
}

void TaskRegistry::CheckRemote(const Remote& remote) {
  if (remote.watch != nullptr) {
    // The watcher reads it (Get) and sends what is new.
    remote.watch->Call();
    return;
  }
  absl::StatusOr<std::shared_ptr<const Task>> task =
      RemoteTask(remote.name, remote.reach);
  // Not read now: the next notice or poll reads it again.
  if (!task.ok()) return;
  if (*task != nullptr && !IsTerminal((**task).state())) return;
  remote.wait->Call([&]() -> absl::StatusOr<Task> {
    if (*task != nullptr) return CopyWithoutOutcome(**task);
    // Ended and deleted since.
    engine::MutexLock lock(&mu_);
    return NotFound(remote.name, remote.reach);
  });
}

void TaskRegistry::CancelAsked(const std::string& name) {
  {
    engine::MutexLock lock(&mu_);
    auto it = live_.find(name);
    if (it == live_.end() || !it->second->stored) return;
  }
  Cancel(name).IgnoreError();
}

bool TaskRegistry::Holds(absl::string_view name) const {
  engine::MutexLock lock(&mu_);
  return live_.contains(name) || finished_names_.contains(name);
}

std::map<TaskState, int> TaskRegistry::Counts() const {
  engine::MutexLock lock(&mu_);
  std::map<TaskState, int> out;
  for (const auto& [state, n] : counts_) {
    if (n > 0) out[state] = n;
  }
  return out;
}

void TaskRegistry::StopAccepting(const absl::Status& reason) {
  std::vector<std::function<void()>> after;
  {
    engine::MutexLock lock(&mu_);
    accepting_ = false;
    stop_reason_ = reason;
    // A durable store keeps them queued for the next start.
    while (!store_.durable() && !queue_.empty()) {
      std::shared_ptr<Live> live = std::move(queue_.front());
      queue_.pop_front();
      --counts_[weft::v1::TASK_STATE_QUEUED];
      AddLoadLocked(live->created.creator, 0, -1);
      auto* outcome = live->task.mutable_outcome();
      outcome->set_state(weft::v1::NODE_STATE_CANCELLED);
      outcome->mutable_error()->set_code("CANCELLED");
      outcome->mutable_error()->set_message(std::string(reason.message()));
      outcome->mutable_error()->set_reason(common::Reason(reason));
      EndLocked(live, weft::v1::TASK_STATE_CANCELLED, &after);
    }
  }
  RunAfter(after);
}

bool TaskRegistry::WaitForRunning(absl::Time deadline) {
  engine::MutexLock lock(&mu_);
  while (running_ > 0) {
    if (!idle_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) break;
  }
  return running_ == 0;
}

void TaskRegistry::CancelRunning(const absl::Status& reason) {
  std::vector<std::shared_ptr<Live>> running;
  {
    engine::MutexLock lock(&mu_);
    for (const auto& [name, live] : live_) running.push_back(live);
  }
  for (const auto& live : running) live->cancel.Cancel(reason);
  WaitForRunning(absl::InfiniteFuture());
}

void TaskRegistry::Suspend(const absl::Status& reason) {
  std::vector<std::shared_ptr<Live>> running;
  {
    engine::MutexLock lock(&mu_);
    suspending_ = true;
    suspended_.store(true, std::memory_order_release);
    for (const auto& [name, live] : live_) running.push_back(live);
  }
  for (const auto& live : running) live->cancel.Cancel(reason);
  WaitForRunning(absl::InfiniteFuture());
}

int TaskRegistry::running() const {
  engine::MutexLock lock(&mu_);
  return running_;
}

}  // namespace weft::tasks
