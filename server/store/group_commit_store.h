// GroupCommitStore: what the durable stores (SQLite, PostgreSQL) share.
// Writes are queued and applied in order by one writer thread; every write
// waiting when a transaction starts joins it (group commit), so one commit
// serves many calls, and each write's `done` runs once its transaction has
// committed. Reads come from memory: a TaskTable loaded at open and updated
// once a write has committed (before its `done` runs), so a read never
// waits for the disk or the network.
//
// A backend gives the transaction (Apply) and may prepare for it
// (BeforeBatch: a lost connection comes back there) and tidy after it
// (AfterBatch). Its Open loads what the database holds through the
// protected Load* calls, then calls StartWriter; its destructor calls
// StopWriter first, while what Apply uses is still there.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_STORE_GROUP_COMMIT_STORE_H_
#define WEFT_SERVER_STORE_GROUP_COMMIT_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "server/engine/sync.h"
#include "server/store/task_store.h"

namespace weft::store {

class GroupCommitStore : public TaskStore {
 public:
  ~GroupCommitStore() override;

  void Write(std::shared_ptr<const weft::v1::Task> task, WriteDone done) final;
  void Erase(std::string name, WriteDone done) final;
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;
  bool durable() const final { return true; }
  void Journal(absl::string_view name, int32_t node,
               std::shared_ptr<const weft::v1::NodeOutcome> outcome,
               WriteDone done) final;
  NodeJournal TakeJournal(absl::string_view name) final;
  void PutLazyValue(std::string id, std::string request, WriteDone done) final;
  void EraseLazyValue(std::string id, WriteDone done) final;
  // Shared stores only; the others call `done` at once.
  void ResetLazyValue(std::string id, ResetDone done) final;
  std::vector<std::pair<std::string, std::string>> LazyValues() const final;

  // Transactions committed so far (group commit makes them fewer than the
  // writes).
  int64_t commits() const;

 protected:
  // One queued write.
  struct Op {
    enum class Kind {
      kWrite,
      kErase,
      kJournal,
      kPutLazy,
      kEraseLazy,
      kResetLazy,  // Shared stores only.
    };
    Kind kind;
    std::string name;  // The task's, or the lazy value's id.
    WriteDone done;
    std::shared_ptr<const weft::v1::Task> task;            // kWrite
    int32_t node = 0;                                      // kJournal
    std::shared_ptr<const weft::v1::NodeOutcome> outcome;  // kJournal
    std::string bytes;                                     // kPutLazy
    // kResetLazy: set by Apply to the value's count of resets.
    std::shared_ptr<int64_t> count;
    // Set by Apply for a write it refused alone (the rest of the batch
    // applied): its `done` gets this.
    absl::Status refused;
  };
  using Batch = std::deque<Op>;
  // The positions of the tasks a batch wrote, by name.
  using Positions = absl::flat_hash_map<std::string, uint64_t>;

  // With `keep_table` false the backend serves reads itself (overriding
  // Get, Scan and size) and nothing is kept in memory.
  explicit GroupCommitStore(bool keep_table = true) : keep_table_(keep_table) {}

  // What the database holds, given by the backend's Open before
  // StartWriter.
  void LoadTask(std::shared_ptr<const weft::v1::Task> task, uint64_t position);
  void LoadJournal(std::string name, NodeJournal journal);
  void LoadLazyValue(std::string id, std::string request);
  // What is committed (the writer's Apply may look up positions in it).
  const TaskTable& table() const { return table_; }

  void StartWriter();
  // Applies the writes still queued and joins the writer. Backends call it
  // first in their destructor.
  void StopWriter();

  // On the writer thread, before each batch: an error fails the batch's
  // writes without applying them.
  virtual absl::Status BeforeBatch() { return absl::OkStatus(); }
  // Applies `batch` in one transaction, all or nothing, filling `positions`
  // for the tasks it wrote (new ones at least); or all but the writes whose
  // `refused` it sets.
  virtual absl::Status Apply(Batch& batch, Positions* positions) = 0;
  // On the writer thread, after the batch's `done`s ran (their `done`s are
  // moved out; the rest of each Op is there).
  virtual void AfterBatch(const Batch& /*batch*/, const absl::Status& /*s*/) {}

 private:
  void Enqueue(Op op);
  void WriterLoop();

  const bool keep_table_;
  mutable engine::Mutex mu_;
  engine::CondVar work_;
  Batch queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  TaskTable table_;
  // The journals found at open, by task name, until recovery takes them.
  absl::flat_hash_map<std::string, NodeJournal> journals_ ABSL_GUARDED_BY(mu_);
  // The lazy-value definitions found at open (set before the writer runs).
  std::vector<std::pair<std::string, std::string>> lazy_values_;

  std::thread writer_;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_GROUP_COMMIT_STORE_H_
