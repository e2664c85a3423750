// SqliteTaskStore: tasks kept in an SQLite file (--store=sqlite:PATH), so
// that accepted work survives a restart, a crash or a deploy.
//
// Writes are group-committed by one writer thread and reads come from
// memory (GroupCommitStore): one fsync serves many calls, and each write's
// `done` runs once its transaction has committed (with Sync::kFull, once it
// is on disk). The store holds every task it has (the registry holds them
// too, within --max_retained_task_bytes) and loads them all when it opens.
// The file is in WAL mode, and space freed by erased tasks is given back to
// the file system a little at a time (incremental vacuum), so the file does
// not grow without bound.
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
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/engine/sync.h"
#include "server/store/group_commit_store.h"

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

class SqliteTaskStore final : public GroupCommitStore {
 public:
  // The newest schema version this build writes.
  static constexpr int kSchemaVersion = 2;

  // Opens the store at `path`, creating the file if it does not exist.
  static absl::StatusOr<std::unique_ptr<SqliteTaskStore>> Open(
      const std::string& path, SqliteOptions options = {});
  // Applies the writes still queued, then closes the file.
  ~SqliteTaskStore() override;

  // Writes a consistent copy of the store to `path` (a new file) with
  // SQLite's online backup API, on a connection of its own: writes go on
  // meanwhile.
  absl::Status Backup(const std::string& path) const;
  // A Backup() beside the store: PATH.backup-XXXXXX.
  absl::StatusOr<std::string> BackupToNewFile() const override;

  // Changes the page limit (see SqliteOptions::max_pages), applied before
  // the next transaction: space "comes back" in tests.
  void SetMaxPages(int64_t pages);

 private:
  SqliteTaskStore(std::string path, SqliteOptions options,
                  std::unique_ptr<sqlite::Database> db, int lock_fd);
  absl::Status Load();
  absl::Status BeforeBatch() override;
  absl::Status Apply(Batch& batch, Positions* positions) override;
  void AfterBatch(const Batch& batch, const absl::Status& s) override;
  void VacuumSome();

  const std::string path_;
  const SqliteOptions options_;
  // Used by the writer thread alone once it runs.
  std::unique_ptr<sqlite::Database> db_;
  uint64_t next_position_ = 1;       // The writer's.
  int64_t erased_since_vacuum_ = 0;  // The writer's.
  // The flock that keeps a second weftd away.
  const int lock_fd_;

  engine::Mutex pages_mu_;
  int64_t max_pages_ ABSL_GUARDED_BY(pages_mu_) = 0;
  bool max_pages_changed_ ABSL_GUARDED_BY(pages_mu_) = false;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_SQLITE_TASK_STORE_H_
