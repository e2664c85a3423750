// TaskStore: where background tasks are kept. The TaskRegistry decides what
// happens to tasks; the store only keeps them, so that a durable store can
// replace the in-memory one without touching the registry or the service.
//
// The contract every backend keeps (tests/store/task_store_contract.h checks
// it; run it against a new backend):
//
//   Writes (Write, Erase) may complete later, on the store's own thread, and
//   may fail. Each calls its `done` exactly once: OK when the write is
//   applied (for a durable store, durable), or an error when nothing of it
//   was applied. `done` may run inline, before Write returns, or on another
//   thread; the store never holds a lock of its own while calling it, so
//   `done` may call the store again. Writes are applied in the order they
//   were called, so a caller that issues writes from one sequence (the
//   registry does) never sees an older state replace a newer one.
//
//   Reads (Get, Scan, size) are synchronous and see every write whose `done`
//   has run with OK; they may or may not see a write still in flight.
//
//   Every write's `done` has been called before the store is destroyed.
//
// The registry writes a task on creation (and answers CreateTask only once
// that write is done), on every change of state (not on progress, which it
// tracks itself while the task runs), and erases it when it is forgotten. It
// never calls the store while holding its own lock for a write, so a `done`
// may call back into the registry.
//
// Durable stores also keep a journal of each running task's leaves (Journal)
// and hand what it held at open to the registry's recovery (TakeJournal),
// and keep the lazy-value definitions made through the API.
//
// Thread-safety: implementations are thread-safe.

#ifndef WEFT_SERVER_STORE_TASK_STORE_H_
#define WEFT_SERVER_STORE_TASK_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/engine/sync.h"
#include "weft/v1/outcome.pb.h"
#include "weft/v1/task.pb.h"

namespace weft::store {

// A running task's journal: the leaves (by node index) that ended, with
// their outcome, and those that started without ending.
struct NodeJournal {
  absl::flat_hash_map<int32_t, weft::v1::NodeOutcome> ended;
  absl::flat_hash_set<int32_t> started;
};

// A task taken over from a replica that went away, with its journal (empty
// for a finished one).
struct TakenTask {
  std::shared_ptr<const weft::v1::Task> task;
  NodeJournal journal;
};

class TaskStore {
 public:
  // Called once per write with its result (see the contract above).
  using WriteDone = absl::AnyInvocable<void(absl::Status) &&>;

  virtual ~TaskStore() = default;

  // Inserts the task (its name, "tasks/{id}", is the key) or replaces it.
  // A new task gets the next position in creation order; a replaced one
  // keeps its position.
  virtual void Write(std::shared_ptr<const weft::v1::Task> task,
                     WriteDone done) = 0;

  // Removes the task. OK also when the store did not hold it (an erase
  // repeated after a crash must not fail).
  virtual void Erase(std::string name, WriteDone done) = 0;

  // nullptr if the store does not hold that name. The task is shared, not
  // copied: it may hold a large outcome.
  virtual std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const = 0;

  // Calls `fn(position, task)` for tasks newest first, starting below
  // `before` (a position from an earlier call; 0 for the newest), until `fn`
  // returns false. Positions only grow, so a scan resumed after a position
  // neither repeats nor skips tasks that were there. `fn` may not call the
  // store's writes.
  virtual void Scan(
      uint64_t before,
      absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const = 0;

  virtual size_t size() const = 0;

  // As Get, telling a failed read apart from a task the store does not
  // hold (nullptr): UNAVAILABLE when a store that reads elsewhere (a
  // database) cannot read it now.
  virtual absl::StatusOr<std::shared_ptr<const weft::v1::Task>> Lookup(
      absl::string_view name) const {
    return Get(name);
  }

  // The tasks this weftd takes back at start (TaskRegistry::Recover),
  // oldest first: every task the store holds, or a replica's own.
  virtual std::vector<std::shared_ptr<const weft::v1::Task>> Owned() const;

  // The task `creator`'s `request_id` names, if the store holds one. Only
  // a store shared by replicas needs it (a request_id taken on another
  // replica); the others answer nullptr, the registry knowing their tasks.
  virtual std::shared_ptr<const weft::v1::Task> GetByRequest(
      absl::string_view /*creator*/, absl::string_view /*request_id*/) const {
    return nullptr;
  }

  // Whether several weftds (replicas) share the store, each owning its
  // tasks: the registry then reads the tasks it does not own from it.
  virtual bool shared() const { return false; }

  // Replicas (shared stores) tell each other of their tasks through the
  // store. What a replica hears:
  struct Notice {
    enum class Kind {
      kChanged,  // Task `name` was written or erased (by any replica).
      kCancel,   // Task `name`'s cancel was requested (RequestCancel).
      kPoll,     // Notices may have been missed (the poll interval passed,
                 // or the store reconnected): look again at what you wait on.
      kLazy,     // Lazy value `name` (its id) was created, reset or deleted.
    };
    Kind kind = Kind::kPoll;
    std::string name;
  };
  // Stops the calls when destroyed, waiting for one in progress.
  class Subscription {
   public:
    virtual ~Subscription() = default;
  };
  // Calls `fn` with every notice, on a thread of the store's, until the
  // subscription is destroyed (every subscriber hears every notice, one
  // subscriber at a time). Stores that are not shared return nullptr and
  // call nothing.
  virtual std::unique_ptr<Subscription> Listen(
      std::function<void(const Notice&)> /*fn*/) {
    return nullptr;
  }
  // Asks the replica that runs the unfinished task `name` to cancel it. The
  // request is kept in the store, so an owner that misses the notice, or
  // adopts the task later, still sees it (CancelRequests). NOT_FOUND when
  // no unfinished task has that name; UNAVAILABLE when the store cannot be
  // reached.
  virtual absl::Status RequestCancel(absl::string_view name) {
    return absl::UnimplementedError(absl::StrCat(
        "this task store is not shared: ", name, " is this weftd's own"));
  }
  // This replica's unfinished tasks whose cancel was requested.
  virtual std::vector<std::string> CancelRequests() const { return {}; }

  // Shared stores: the unfinished tasks of each of `creators` that the
  // other replicas hold, as stored now (creators with none are absent).
  // UNAVAILABLE when the store cannot be read; the others: UNIMPLEMENTED.
  struct CreatorLoad {
    int running = 0;
    int queued = 0;
  };
  virtual absl::StatusOr<std::map<std::string, CreatorLoad>> OthersLoad(
      const std::vector<std::string>& /*creators*/) const {
    return absl::UnimplementedError("this task store is not shared");
  }

  // Whether this process may start work for the tasks it owns now: a
  // replica whose lease has ended, or has run out by its own clock though
  // it has not noticed yet (a process that was paused), answers
  // UNAVAILABLE, so that a leaf another replica may be running again after
  // adopting the task is not started here too. Asked before each leaf's
  // attempt; cheap.
  virtual absl::Status MayStartWork() { return absl::OkStatus(); }

  // Whether what is written outlives the process, so that the registry
  // keeps unfinished tasks in it for the next start rather than ending them
  // at shutdown.
  virtual bool durable() const { return false; }

  // Records in the journal of task `name` that leaf `node` started
  // (`outcome` null) or ended as `outcome` says. A write like the others (in
  // order, `done` once); nothing happens for a task the store does not hold.
  // A Write of the task in a terminal state, or its Erase, drops its
  // journal. Only durable stores keep it; the others call `done` at once.
  virtual void Journal(absl::string_view /*name*/, int32_t /*node*/,
                       std::shared_ptr<const weft::v1::NodeOutcome> /*outcome*/,
                       WriteDone done) {
    std::move(done)(absl::OkStatus());
  }

  // The journal the task `name` had when the store was opened (empty when
  // none); each is handed out once.
  virtual NodeJournal TakeJournal(absl::string_view /*name*/) { return {}; }

  // Lazy-value definitions made through the API, kept by durable stores so
  // that they are declared again at the next start: `request` is the
  // CreateLazyValueRequest as given (serialized). Writes like the others;
  // the other stores call `done` at once and keep nothing.
  virtual void PutLazyValue(std::string /*id*/, std::string /*request*/,
                            WriteDone done) {
    std::move(done)(absl::OkStatus());
  }
  virtual void EraseLazyValue(std::string /*id*/, WriteDone done) {
    std::move(done)(absl::OkStatus());
  }
  // Shared stores: counts a reset of lazy value `id` (ResetLazyValue), so
  // that every replica forgets its cached value (ReadLazyValue; a kLazy
  // notice tells them). A write like the others, whose `done` gets the
  // value's count of resets with this one; the other stores answer 0 at
  // once (a reset there is the process's own).
  using ResetDone = absl::AnyInvocable<void(absl::StatusOr<int64_t>) &&>;
  virtual void ResetLazyValue(std::string /*id*/, ResetDone done) {
    std::move(done)(int64_t{0});
  }
  // A lazy value as a shared store holds it now: its definition made
  // through the API (a serialized CreateLazyValueRequest; empty when there
  // is none, as for the config file's values) and how many resets it has
  // had since its row was made. A value with neither has an empty row.
  struct LazyRow {
    std::string request;
    int64_t resets = 0;
    bool operator==(const LazyRow& o) const {
      return request == o.request && resets == o.resets;
    }
  };
  // Shared stores: the row of `id`, read now; UNAVAILABLE when the store
  // cannot be read. The others: UNIMPLEMENTED.
  virtual absl::StatusOr<LazyRow> ReadLazyValue(
      absl::string_view /*id*/) const {
    return absl::UnimplementedError("this task store is not shared");
  }
  // Shared stores: every row that is not empty, by id.
  virtual absl::StatusOr<std::map<std::string, LazyRow>> ReadLazyValues()
      const {
    return absl::UnimplementedError("this task store is not shared");
  }

  // Writes a consistent copy of the store to a new file of its own choosing
  // and returns its path; the caller removes it. FAILED_PRECONDITION for a
  // store that keeps nothing (memory).
  virtual absl::StatusOr<std::string> BackupToNewFile() const {
    return absl::FailedPreconditionError(
        "the memory store (--store=memory) keeps nothing to back up; run "
        "weftd with --store=sqlite:PATH");
  }

  // The definitions the store held when it was opened, oldest first (a
  // definition's plan may use those before it), as (id, request).
  virtual std::vector<std::pair<std::string, std::string>> LazyValues() const {
    return {};
  }
};

// Tasks by name and by position, in memory: what the in-memory store holds,
// and the durable stores' copy for reads.
class TaskTable {
 public:
  // Inserts the task or replaces the one of its name (which keeps its
  // position). A new task gets `position`, or with 0 the next after the
  // highest so far.
  void Put(std::shared_ptr<const weft::v1::Task> task, uint64_t position = 0);
  void Remove(absl::string_view name);
  // 0 if the table does not hold `name`.
  uint64_t PositionOf(absl::string_view name) const;
  // The highest position given so far.
  uint64_t last_position() const;

  std::shared_ptr<const weft::v1::Task> Get(absl::string_view name) const;
  // As TaskStore::Scan; `fn` runs outside the table's lock.
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const;
  size_t size() const;

 private:
  mutable engine::Mutex mu_;
  uint64_t last_position_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, uint64_t> positions_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::shared_ptr<const weft::v1::Task>> by_position_
      ABSL_GUARDED_BY(mu_);
};

// Keeps tasks in this process's memory: they are lost when it exits. Writes
// never fail and complete inline.
class InMemoryTaskStore final : public TaskStore {
 public:
  void Write(std::shared_ptr<const weft::v1::Task> task,
             WriteDone done) override;
  void Erase(std::string name, WriteDone done) override;
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;

 private:
  TaskTable table_;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_TASK_STORE_H_
