// TaskRegistry: background tasks (create_background_task plus a status
// endpoint). A task is a compiled plan run in the background; clients follow
// it by name from any connection.
//
// Life: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED | TIMED_OUT.
// At most `max_running_tasks` run at once and `max_queued_tasks` wait; beyond
// that Create is refused with RESOURCE_EXHAUSTED. A task with a creator (a
// principal, when callers authenticate) also counts against its creator's
// quotas: at most `max_running_per_principal` of a principal's tasks run at
// once (the rest wait, and queued tasks start oldest first among the
// principals below their quota), and at most `max_queued_per_principal` wait;
// beyond that the principal's Create is refused with RESOURCE_EXHAUSTED
// (reason PRINCIPAL_QUOTA) while other principals' tasks are still taken and
// started. Terminal tasks are kept for
// `task_retention` and at most `max_retained_tasks` (oldest finished go
// first); the names of expired and deleted tasks are remembered in a bounded
// ring so NOT_FOUND can say which.
//
// Memory: every task held (its request, and once it ends its outcome) counts
// against `max_retained_bytes`. To take a new task or an outcome, the oldest
// finished tasks are forgotten early; when live tasks alone fill it, Create
// is refused with RESOURCE_EXHAUSTED, and an outcome that cannot be kept is
// replaced by its root, FAILED with RESOURCE_EXHAUSTED saying so. A running
// task's values count against `inflight` like a Run's, and its outcome may
// hold at most `max_outcome_bytes`. Methods that copy a task out take a
// MemoryCharge and charge the copy to it first.
//
// Storage: tasks are written to a store::TaskStore (see its contract). Create
// answers once the new task's write is done, and fails with UNAVAILABLE
// (reason TASK_STORE_UNAVAILABLE) when it fails; nothing of the task is then
// kept. State changes and erasures are written in order and not waited for;
// one that fails is counted (store_failures) and reported to
// `on_store_error`, and the registry goes on serving the task from memory.
// Reads of a finished task come from memory until its write is done, then
// from the store. Writes are issued outside the registry's lock. Every
// write carries the task's plan, so that a durable store can run it again.
//
// Durable stores (TaskStore::durable()): at start, Recover() takes back what
// the store holds. Finished tasks are served again; queued tasks are queued
// again; running tasks resume (their plan runs again; the task counts the
// resume). At shutdown, queued tasks stay queued and running tasks that the
// grace period does not see end are stopped without recording an end
// (Suspend), so the next start resumes them.
//
// Thread-safety: thread-safe. Callbacks given to Create, Wait and Watch run
// on the engine's or the store's threads (or inline) and must be quick.

#ifndef WEFT_SERVER_TASKS_REGISTRY_H_
#define WEFT_SERVER_TASKS_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/memory_budget.h"
#include "server/engine/sync.h"
#include "server/plan/compiler.h"
#include "server/store/task_store.h"
#include "server/tasks/task_names.h"
#include "weft/v1/plan.pb.h"
#include "weft/v1/task.pb.h"

namespace weft::tasks {

// Whether a task in `state` has ended (SUCCEEDED, FAILED, CANCELLED or
// TIMED_OUT): it will not change again.
bool IsTerminal(weft::v1::TaskState state);

struct TaskOptions {
  int max_running_tasks = 100;
  int max_queued_tasks = 10'000;
  // Per creator, for tasks that have one (see above).
  int max_running_per_principal = 25;
  int max_queued_per_principal = 1'000;
  absl::Duration task_retention = absl::Hours(1);
  int max_retained_tasks = 10'000;
  // The longest a task may run; its root then ends TIMED_OUT.
  absl::Duration max_task_duration = absl::Hours(24);
  // How many expired or deleted names NOT_FOUND can still tell apart.
  int remembered_names = 65'536;
  // What RESOURCE_EXHAUSTED tells the caller to wait before retrying.
  absl::Duration retry_after = absl::Seconds(1);
  // The memory every task held may take together (--max_retained_task_bytes).
  int64_t max_retained_bytes = int64_t{256} << 20;
  // The largest outcome a task's plan may build (--max_outcome_bytes).
  int64_t max_outcome_bytes = 64 << 20;
  // Optional: what running tasks' values are charged to (--max_inflight_bytes).
  engine::MemoryBudget* inflight = nullptr;
  // Optional: told of every store write that failed, outside the lock.
  std::function<void(const absl::Status&)> on_store_error;
};

// What Recover() found in the store.
struct Recovery {
  int finished = 0;  // Served again.
  int queued = 0;    // Queued again.
  int resumed = 0;   // Running again.
  int failed = 0;    // Whose plan no longer compiles: they end FAILED.
};

// How much of a task a copy carries.
enum class TaskParts {
  kBasic,        // Neither the plan nor the outcome (TASK_VIEW_BASIC).
  kWithOutcome,  // The outcome (the default of GetTask and WaitTask).
  kFull,         // The plan and the outcome (TASK_VIEW_FULL).
};

// One page of ListTasks, in plain terms.
struct ListQuery {
  // 0 for the default; see common::PageSize for the range.
  int page_size = 0;
  // From an earlier page's next_page_token, with the same filters.
  std::string page_token;
  // Only tasks in one of these states (all when empty); each must be a
  // known state.
  std::vector<weft::v1::TaskState> states;
  // Only tasks with every one of these labels.
  std::map<std::string, std::string> labels;
  TaskParts parts = TaskParts::kBasic;
  // Each outcome cut to its root (OUTCOME_DETAIL_ROOT).
  bool root_only = false;
  // A page also ends before its tasks would pass this many bytes (it holds
  // at least one).
  int64_t max_bytes = std::numeric_limits<int64_t>::max();
  // Only the tasks the caller reaches.
  Reach reach = Reach::All();
};

// What Create needs besides the compiled plan.
struct NewTask {
  std::shared_ptr<const plan::CompiledPlan> plan;
  // The plan as given, for TASK_VIEW_FULL and for telling request_id
  // repeats apart.
  std::shared_ptr<const weft::v1::PlanNode> source;
  std::map<std::string, std::string> labels;
  std::string request_id;
  bool root_only = false;
  // The memory the request holds (the plan, its arena) while the task is
  // kept.
  int64_t request_bytes = 0;
  // The principal creating it (Task.creator); request_ids are its own.
  std::string creator;
  // The creator's W3C traceparent, passed on to its calls (kept in memory
  // only: a task resumed after a restart runs without it).
  std::string traceparent;
};

class TaskRegistry {
 public:
  // Calls `fn` once with the task as it stands (without its outcome: read it
  // with Get) when it is terminal, or when the wait's deadline passes; or
  // with why it cannot be told (NOT_FOUND: forgotten or deleted meanwhile;
  // with replicas, UNAVAILABLE: the store could not be read at the
  // deadline).
  using WaitFn = absl::AnyInvocable<void(absl::StatusOr<weft::v1::Task>) &&>;
  // Called once with the new task, or why it was not taken.
  using CreateFn = absl::AnyInvocable<void(absl::StatusOr<weft::v1::Task>) &&>;
  using DeleteFn = absl::AnyInvocable<void(absl::Status) &&>;

  // Stops a Wait or a Watch when destroyed (the caller left).
  class Handle {
   public:
    virtual ~Handle() = default;
  };

  // Compiles a stored task's plan again for Recover(); the compiled plan
  // may keep `plan`.
  using CompileFn =
      std::function<absl::StatusOr<std::shared_ptr<const plan::CompiledPlan>>(
          std::shared_ptr<const weft::v1::PlanNode> plan)>;

  TaskRegistry(engine::Env& env, store::TaskStore& store, TaskOptions options);
  // Requires that no task is running (CancelRunning has run); waits for the
  // store's writes in flight.
  ~TaskRegistry();

  // Takes back the tasks the store holds (see above); call it once, before
  // anything else. Returns once the resumes are written. A task whose plan
  // `compile` refuses ends FAILED with that error.
  Recovery Recover(const CompileFn& compile);
  // Takes over tasks another replica left (its lease ended), as Recover
  // takes back a store's: finished ones served, queued ones queued,
  // running ones resumed from their journal. Their names are new to this
  // registry.
  Recovery Adopt(std::vector<store::TakenTask> tasks, const CompileFn& compile);

  // Calls `done` with the new task as it stands once it is stored and
  // started or queued, without its outcome (a plan of values may have ended
  // already: read it with Get or Wait); or with why it was refused. A
  // request_id repeated by the same creator gets the first task (once it is
  // stored); another creator's request_id is another request.
  void Create(NewTask task, CreateFn done);

  // Each method that takes a task's name takes the caller's Reach too: a
  // task it does not reach is NOT_FOUND, as a name never given out is.

  // `parts`: how much of the task to copy. With `charge`,
  // what the copy holds is added to it first, and RESOURCE_EXHAUSTED
  // returned when its budget cannot take it. With `changes`, how many times
  // the task had changed when the copy was taken (its creation, each state
  // change, each leaf starting or ending): numbers that only grow.
  absl::StatusOr<weft::v1::Task> Get(absl::string_view name, TaskParts parts,
                                     engine::MemoryCharge* charge = nullptr,
                                     int64_t* changes = nullptr,
                                     const Reach& reach = Reach::All()) const;

  struct ListResult {
    std::vector<weft::v1::Task> tasks;
    std::string next_page_token;
  };
  // Tasks newest first. The filters see the state last written to the
  // store; the copies are as the tasks stand, charged to `charge` as Get
  // does.
  absl::StatusOr<ListResult> List(const ListQuery& query,
                                  engine::MemoryCharge* charge = nullptr) const;

  // The task as it then stands; `charge` as for Get. With replicas, a task
  // another replica runs is cancelled by it: the request is kept in the
  // store and the task as it stands there is returned (still running).
  absl::StatusOr<weft::v1::Task> Cancel(absl::string_view name,
                                        engine::MemoryCharge* charge = nullptr,
                                        const Reach& reach = Reach::All());
  // Forgets a finished task, and calls `done` once its erasure is written
  // (a deleted task does not come back after a restart): OK, or
  // UNAVAILABLE (TASK_STORE_UNAVAILABLE) when the store could not erase it;
  // or at once with why it cannot be deleted.
  void Delete(absl::string_view name, DeleteFn done,
              const Reach& reach = Reach::All());

  // Calls `fn` when the task is terminal (at once if it is) or at
  // `deadline`. The returned handle stops the wait when destroyed. With
  // replicas, a task another replica runs is waited on through the store:
  // its end is heard by NOTIFY, or by the next poll.
  absl::StatusOr<std::unique_ptr<Handle>> Wait(
      absl::string_view name, absl::Time deadline, WaitFn fn,
      const Reach& reach = Reach::All());

  // Calls `on_change` after every change of the task (state or progress)
  // until the handle is destroyed; the watcher reads the task with Get.
  // With replicas, another replica's task changes as the store has it: at
  // each state its owner writes (progress as of then).
  absl::StatusOr<std::unique_ptr<Handle>> Watch(
      absl::string_view name, std::function<void()> on_change,
      const Reach& reach = Reach::All());

  // Whether this weftd holds the task (runs it, or ran it): its change
  // numbers are counted here. With replicas, another's are read from the
  // store, as its owner last wrote them.
  bool Holds(absl::string_view name) const;

  // Tasks held, by state.
  std::map<weft::v1::TaskState, int> Counts() const;
  // What the tasks held take: --max_retained_task_bytes.
  const engine::MemoryBudget& memory() const { return retained_; }

  // From now on Create answers UNAVAILABLE, and queued tasks are cancelled
  // with `reason` (with a durable store, they stay queued in it and no more
  // start).
  void StopAccepting(const absl::Status& reason);
  // Waits until no task runs or `deadline` passes; true if none does.
  bool WaitForRunning(absl::Time deadline);
  // Cancels every running task with `reason` and waits until each has been
  // recorded.
  void CancelRunning(const absl::Status& reason);
  // With a durable store: stops every running task (cancelling it with
  // `reason`) without recording its end, so that its stored state stays
  // RUNNING and the next start resumes it; waits until each has stopped.
  void Suspend(const absl::Status& reason);
  int running() const;
  // Store writes that failed so far.
  int64_t store_failures() const;

 private:
  struct Live;
  struct Alive;
  class WaitHandle;
  class WatchHandle;
  // With replicas: a wait or a watch on a task another replica runs, fed by
  // the store's notices.
  struct Remote;
  class RemoteHandle;

  absl::Status NotFound(absl::string_view name,
                        const Reach& reach = Reach::All()) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK if `reach` covers the task `name` held (or it holds none: the
  // caller's own lookup then answers NOT_FOUND); else NOT_FOUND.
  absl::Status ReachLocked(absl::string_view name, const Reach& reach) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Create's checks; takes `done` (and answers nothing) once the task is
  // being written.
  std::optional<absl::StatusOr<weft::v1::Task>> Admit(NewTask task,
                                                      CreateFn& done);
  // Takes `done` when the task is being erased.
  absl::Status DeleteLocked(absl::string_view name, DeleteFn& done,
                            const Reach& reach)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The creation's write is done: start or queue the task, or drop it.
  void Stored(const std::shared_ptr<Live>& live, absl::Status written);
  // A finished task as last known: from memory until its write is done.
  std::shared_ptr<const weft::v1::Task> FinishedLocked(
      absl::string_view name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The state of a task the store holds, as Get serves it: from memory while
  // it runs or until its last write is done.
  weft::v1::TaskState StateLocked(const weft::v1::Task& stored) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queue a store write (nullptr `task`: erase `name`); FlushWrites issues
  // the queued writes in order, outside the lock.
  void WriteLocked(std::shared_ptr<const weft::v1::Task> task, std::string name,
                   store::TaskStore::WriteDone done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushWrites() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes a leaf's start (null `outcome`) or end to the task's journal.
  void Journal(const std::string& name, int32_t node,
               std::shared_ptr<const weft::v1::NodeOutcome> outcome)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs what was left for after the lock, then issues the writes.
  void RunAfter(std::vector<std::function<void()>>& after)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Counts and reports a failed write of `name` (`what` was written).
  void WriteFailed(absl::string_view what, absl::string_view name,
                   const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  void StartLocked(const std::shared_ptr<Live>& live,
                   std::vector<std::function<void()>>* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a task of `creator` may start now: a running slot is free and
  // the creator is below its running quota.
  bool MayStartLocked(const std::string& creator) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts queued tasks, oldest first, skipping those whose creator is at
  // its running quota, while slots are free.
  void StartQueuedLocked(std::vector<std::function<void()>>* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to a creator's counts of running and waiting tasks (no-op for
  // tasks without a creator); forgets a creator whose counts reach zero.
  void AddLoadLocked(const std::string& creator, int running, int waiting)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The refusal of a task `creator` may not add, if it may not.
  // `others`: the creator's tasks on other replicas, as just read.
  absl::Status QuotaLocked(const std::string& creator, bool run_now,
                           const store::TaskStore::CreatorLoad& others) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replicas, at each poll: reads how many tasks other replicas run for
  // the creators with tasks queued here, and starts those that now may.
  void PollOthersLoad() ABSL_LOCKS_EXCLUDED(mu_);
  // Records a read of how many tasks other replicas run for `creator`,
  // unless one that started later was recorded already.
  void SetOthersRunningLocked(const std::string& creator, int running,
                              uint64_t ticket)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the store keeps of a queued or running task: with its plan.
  std::shared_ptr<const weft::v1::Task> StoredLocked(const Live& live) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With replicas (store::TaskStore::shared()): a task another replica
  // owns, read from the store outside the lock; nullptr unless `reach`
  // covers it.
  // UNAVAILABLE (TASK_STORE_UNAVAILABLE) when the store cannot be read.
  absl::StatusOr<std::shared_ptr<const weft::v1::Task>> RemoteTask(
      absl::string_view name, const Reach& reach) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<weft::v1::Task> GetRemote(
      absl::string_view name, TaskParts parts, engine::MemoryCharge* charge,
      int64_t* changes, const Reach& reach) const ABSL_LOCKS_EXCLUDED(mu_);
  // A wait or a watch on another replica's task `name`, registered to hear
  // of its changes; the handle unregisters it.
  std::unique_ptr<Handle> AddRemote(std::shared_ptr<Remote> remote,
                                    std::optional<engine::TimerId> timer)
      ABSL_LOCKS_EXCLUDED(mu_, remote_mu_);
  // What the store tells of other replicas' tasks (TaskStore::Notice).
  void OnNotice(const store::TaskStore::Notice& notice)
      ABSL_LOCKS_EXCLUDED(mu_, remote_mu_);
  // Reads the task of `remote` from the store and tells its wait or watch.
  void CheckRemote(const Remote& remote) ABSL_LOCKS_EXCLUDED(mu_, remote_mu_);
  // Cancels the task `name` if this replica runs it (asked by another).
  void CancelAsked(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // What Recover and Adopt share.
  Recovery TakeBack(std::vector<store::TakenTask> tasks,
                    const CompileFn& compile, bool at_start);
  // Recover()'s steps for one stored task.
  void RecoverFinishedLocked(const weft::v1::Task& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WaitForWrites() ABSL_LOCKS_EXCLUDED(mu_);
  void Finished(const std::shared_ptr<Live>& live,
                weft::v1::NodeOutcome outcome);
  void EndLocked(const std::shared_ptr<Live>& live, weft::v1::TaskState state,
                 std::vector<std::function<void()>>* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  weft::v1::Task SnapshotLocked(const Live& live, TaskParts parts) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Retain(std::vector<std::function<void()>>* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the entries of deleted tasks from the front of finished_.
  void SkipDeletedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the oldest finished task, saying `why`; false if there is none.
  bool ForgetOldestLocked(const char* why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the oldest finished tasks until `bytes` more fit; false if they
  // do not even then.
  bool MakeRoomLocked(int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bytes a copy of the task takes with these parts.
  int64_t CopyBytesLocked(absl::string_view name, TaskParts parts) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `erased`, if given, is called with the erasure's result.
  void Forget(const std::string& name, const char* why,
              DeleteFn erased = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SweepLater() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  engine::Env& env_;
  store::TaskStore& store_;
  const TaskOptions options_;

  mutable engine::Mutex mu_;
  engine::CondVar idle_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  // Suspend() began: ends are not recorded. (The atomic, for the runs'
  // journal writes, which do not take the lock.)
  bool suspending_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> suspended_{false};
  absl::Status stop_reason_ ABSL_GUARDED_BY(mu_);
  // Queued and running tasks, by name.
  absl::flat_hash_map<std::string, std::shared_ptr<Live>> live_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Live>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  // Per creator with unfinished tasks: how many run, and how many wait
  // (queued, or being stored).
  struct Load {
    int running = 0;
    int waiting = 0;
  };
  absl::flat_hash_map<std::string, Load> loads_ ABSL_GUARDED_BY(mu_);
  // Replicas: the tasks other replicas run for the creators with tasks
  // queued here, as the last poll or creation read them (per-principal
  // running quotas count across replicas).
  struct OthersRunning {
    int running = 0;
    // Which read it came from (reads are numbered as they start).
    uint64_t ticket = 0;
  };
  absl::flat_hash_map<std::string, OthersRunning> others_running_
      ABSL_GUARDED_BY(mu_);
  uint64_t load_reads_ ABSL_GUARDED_BY(mu_) = 0;
  // Terminal tasks, oldest end first, for retention.
  std::deque<std::pair<absl::Time, std::string>> finished_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> finished_names_ ABSL_GUARDED_BY(mu_);
  // RequestKey(creator, request_id) -> (name, plan fingerprint), while the
  // task is held; request_of_ maps the name back to its key.
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>>
      requests_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> request_of_
      ABSL_GUARDED_BY(mu_);
  // Names no longer held, and why.
  ForgottenNames forgotten_ ABSL_GUARDED_BY(mu_);
  // Tasks whose creation is being written: not yet queued or running.
  int storing_ ABSL_GUARDED_BY(mu_) = 0;
  // Finished tasks whose last write is not done (or failed): reads take
  // them from here rather than from the store.
  absl::flat_hash_map<std::string, std::shared_ptr<const weft::v1::Task>>
      unsaved_ ABSL_GUARDED_BY(mu_);
  // Store writes waiting to be issued, in order; one thread issues them at
  // a time (`writing_`).
  struct StoreWrite {
    std::shared_ptr<const weft::v1::Task> task;  // nullptr: erase `name`.
    std::string name;
    store::TaskStore::WriteDone done;
  };
  std::deque<StoreWrite> writes_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Writes queued or issued whose `done` has not returned.
  int64_t unfinished_writes_ ABSL_GUARDED_BY(mu_) = 0;
  // Journal writes issued whose `done` has not returned.
  std::atomic<int64_t> journal_writes_{0};
  int64_t store_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Threads inside Finished: its last steps (starting queued tasks, issuing
  // writes) run after running_ has dropped, and the destructor waits for
  // them.
  int finishing_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<weft::v1::TaskState, int> counts_ ABSL_GUARDED_BY(mu_);
  // What each task held takes: its request, and its outcome once it ended.
  struct Footprint {
    int64_t request = 0;
    int64_t outcome = 0;
    // Once it ended: its changes in all (Live::changes), and its state.
    int64_t changes = 0;
    weft::v1::TaskState state = weft::v1::TASK_STATE_UNSPECIFIED;
    // Task.creator.
    std::string creator;
  };
  absl::flat_hash_map<std::string, Footprint> footprints_ ABSL_GUARDED_BY(mu_);
  engine::MemoryBudget retained_;
  bool sweep_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<engine::TimerId> sweep_timer_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Alive> alive_;
  // With replicas: waits and watches on other replicas' tasks, by name.
  engine::Mutex remote_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Remote>>>
      remotes_ ABSL_GUARDED_BY(remote_mu_);
  // The store's notices; reset first in the destructor.
  std::unique_ptr<store::TaskStore::Subscription> listening_;
};

}  // namespace weft::tasks

#endif  // WEFT_SERVER_TASKS_REGISTRY_H_
