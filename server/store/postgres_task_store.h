// PostgresTaskStore: tasks kept in a PostgreSQL database
// (--store=postgres://USER@HOST/DB?..., a libpq connection URI), so that
// accepted work survives a restart, a crash or a deploy, on a database the
// operator already runs, backs up and replicates.
//
// It keeps the TaskStore contract as the SQLite store does, and the same
// way: one writer thread applies writes in order on a connection of its
// own; every write waiting when a transaction starts joins it (group
// commit); each write's `done` runs once its transaction has committed
// (durable as the server's synchronous_commit makes it). Reads come from
// memory: the store loads its tasks at open and updates its copy once a
// write has committed, so a read never waits for the network.
//
// The schema (tables weft_meta, weft_tasks, weft_task_nodes,
// weft_lazy_values) is versioned in weft_meta and migrated at open, inside a
// transaction holding an advisory lock, so weftds starting together agree.
// Until several replicas share a database (docs/operations.md), the store
// holds a session advisory lock while open: a second weftd on the same
// database is refused, as a second one on an SQLite file is.
//
// A lost connection fails the writes of the transaction it was in
// (UNAVAILABLE: the registry treats them as any failed write) and is
// reconnected, and the lock taken again, before the next one; no write goes
// without the lock. One case breaks "an error when nothing was applied": a
// connection lost after COMMIT was sent but before its answer came leaves
// the writes reported failed that PostgreSQL may have committed (they are
// there at the next start). No client of a database can tell this apart.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_STORE_POSTGRES_TASK_STORE_H_
#define WEFT_SERVER_STORE_POSTGRES_TASK_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"
#include "server/store/task_store.h"

namespace weft::store {

namespace pg {
class Connection;
}  // namespace pg

struct PostgresOptions {
  // How long Open waits for the store's lock while another weftd holds it
  // (a weftd that just crashed holds it until the server sees its
  // connection gone), before refusing.
  absl::Duration lock_wait = absl::Seconds(10);
};

class PostgresTaskStore final : public TaskStore {
 public:
  // The newest schema version this build writes.
  static constexpr int kSchemaVersion = 1;

  // Connects to `conninfo` (a postgres:// URI, or libpq's key=value pairs;
  // empty: libpq's PG* variables), migrates the schema and loads the
  // tasks. Errors name the database without its password.
  static absl::StatusOr<std::unique_ptr<PostgresTaskStore>> Open(
      const std::string& conninfo, PostgresOptions options = {});
  // Applies the writes still queued, then disconnects.
  ~PostgresTaskStore() override;

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
  // FAILED_PRECONDITION: back up the database with its own tools.
  absl::StatusOr<std::string> BackupToNewFile() const override;

  // Transactions committed so far (group commit makes them fewer than the
  // writes).
  int64_t commits() const;

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

  PostgresTaskStore(std::string redacted, std::unique_ptr<pg::Connection> db);
  absl::Status Load();
  void WriterLoop();
  // Connects again after a loss, and takes the store's lock again.
  absl::Status Reconnect();
  // Applies `batch` in one transaction; the positions written tasks have.
  absl::Status Apply(const std::deque<Op>& batch,
                     absl::flat_hash_map<std::string, uint64_t>* positions);

  // The conninfo without its password, for messages.
  const std::string redacted_;
  // Used by the writer thread alone once it runs.
  std::unique_ptr<pg::Connection> db_;
  // Whether db_'s session holds the store's lock (the writer's).
  bool locked_ = true;

  mutable engine::Mutex mu_;
  engine::CondVar work_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  // What is committed, for reads.
  TaskTable table_;
  // The journals found at open, by task name, until recovery takes them.
  absl::flat_hash_map<std::string, NodeJournal> journals_ ABSL_GUARDED_BY(mu_);
  // The lazy-value definitions found at open (set before the writer runs).
  std::vector<std::pair<std::string, std::string>> lazy_values_;

  std::thread writer_;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_POSTGRES_TASK_STORE_H_
