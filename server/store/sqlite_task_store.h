// SqliteTaskStore: tasks kept in an SQLite file (--store=sqlite:PATH), so
// that accepted work survives a restart, a crash or a deploy.
//
// Writes: one writer thread applies them in order. Every write waiting when
// a transaction starts joins it (group commit), so one fsync serves many
// calls; each write's `done` runs once its transaction has committed (with
// Sync::kFull, once it is on disk). The file is in WAL mode, and space freed
// by erased tasks is given back to the file system a little at a time
// (incremental vacuum), so the file does not grow without bound.
//
// Reads come from memory: the store holds every task it has (the registry
// holds them too, within --max_retained_task_bytes), loads them all when it
// opens, and updates its copy once a write has committed. A read never
// waits for the disk.
//
// The file: a version table (PRAGMA user_version, with forward migrations
// run at open) and application_id 'weft'. Open refuses, with a message that
// names the file and what to do, a file that is damaged, not a weft store,
// from a newer weftd, not writable, or in use by another weftd (an
// exclusive flock on the file, held while the store is open).
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_STORE_SQLITE_TASK_STORE_H_
#define WEFT_SERVER_STORE_SQLITE_TASK_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/engine/sync.h"
#include "server/store/task_store.h"

namespace weft::store {

namespace sqlite {
class Database;
}  // namespace sqlite

struct SqliteOptions {
  enum class Sync {
    // A committed write survives a power loss (fsync of the WAL on every
    // commit). The default.
    kFull,
    // A committed write survives a crash of weftd (kill -9), but the last
    // commits before a power loss or an OS crash may be lost.
    kNormal,
  };
  Sync sync = Sync::kFull;
  // The most pages (4 KiB) the file may take; 0 for no limit. Writes past
  // it fail with RESOURCE_EXHAUSTED as a full disk does (for tests).
  int64_t max_pages = 0;
  // The schema version to create or migrate to (tests of migrations make
  // files of an earlier version); 0 for the newest.
  int schema_version = 0;
};

class SqliteTaskStore final : public TaskStore {
 public:
  // The newest schema version this build writes.
  static constexpr int kSchemaVersion = 2;

  // Opens the store at `path`, creating the file if it does not exist.
  static absl::StatusOr<std::unique_ptr<SqliteTaskStore>> Open(
      const std::string& path, SqliteOptions options = {});
  // Applies the writes still queued, then closes the file.
  ~SqliteTaskStore() override;

  void Write(std::shared_ptr<const weft::v1::Task> task,
             WriteDone done) override;
  void Erase(std::string name, WriteDone done) override;
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;
  bool durable() const override { return true; }
  void Journal(absl::string_view name, int32_t node,
               std::shared_ptr<const weft::v1::NodeOutcome> outcome,
               WriteDone done) override;
  NodeJournal TakeJournal(absl::string_view name) override;
  void PutLazyValue(std::string id, std::string request,
                    WriteDone done) override;
  void EraseLazyValue(std::string id, WriteDone done) override;
  std::vector<std::pair<std::string, std::string>> LazyValues() const override;

  // Writes a consistent copy of the store to `path` (a new file) with
  // SQLite's online backup API, on a connection of its own: writes go on
  // meanwhile.
  absl::Status Backup(const std::string& path) const;
  // A Backup() beside the store: PATH.backup-XXXXXX.
  absl::StatusOr<std::string> BackupToNewFile() const override;

  // Transactions committed so far (group commit makes them fewer than the
  // writes).
  int64_t commits() const;
  // Changes the page limit (see SqliteOptions::max_pages), applied before
  // the next transaction: space "comes back" in tests.
  void SetMaxPages(int64_t pages);

 private:
  struct Op {
    enum class Kind { kWrite, kErase, kJournal, kPutLazy, kEraseLazy };
    Kind kind;
    std::string name;
    WriteDone done;
    std::shared_ptr<const weft::v1::Task> task;            // kWrite
    int32_t node = 0;                                      // kJournal
    std::shared_ptr<const weft::v1::NodeOutcome> outcome;  // kJournal
    std::string bytes;                                     // kPutLazy
  };
  void Enqueue(Op op);

  SqliteTaskStore(std::string path, SqliteOptions options,
                  std::unique_ptr<sqlite::Database> db, int lock_fd);
  absl::Status Load();
  void WriterLoop();
  // Applies `batch` in one transaction; the positions new tasks got.
  absl::Status Apply(const std::deque<Op>& batch,
                     absl::flat_hash_map<std::string, uint64_t>* positions);
  void VacuumSome();

  const std::string path_;
  const SqliteOptions options_;
  // Used by the writer thread alone once it runs.
  std::unique_ptr<sqlite::Database> db_;
  uint64_t next_position_ = 1;       // The writer's.
  int64_t erased_since_vacuum_ = 0;  // The writer's.
  // The flock that keeps a second weftd away.
  const int lock_fd_;

  mutable engine::Mutex mu_;
  engine::CondVar work_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_pages_ ABSL_GUARDED_BY(mu_) = 0;
  bool max_pages_changed_ ABSL_GUARDED_BY(mu_) = false;
  // What is committed, for reads.
  TaskTable table_;
  // The journals found at open, by task name, until recovery takes them.
  absl::flat_hash_map<std::string, NodeJournal> journals_ ABSL_GUARDED_BY(mu_);
  // The lazy-value definitions found at open (set before the writer runs).
  std::vector<std::pair<std::string, std::string>> lazy_values_;

  std::thread writer_;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_SQLITE_TASK_STORE_H_
