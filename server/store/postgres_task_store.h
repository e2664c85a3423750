// PostgresTaskStore: tasks kept in a PostgreSQL database
// (--store=postgres://USER@HOST/DB?..., a libpq connection URI), so that
// accepted work survives a restart, a crash or a deploy, on a database the
// operator already runs, backs up and replicates.
//
// It keeps the TaskStore contract as the SQLite store does, and the same
// way (GroupCommitStore): one writer thread applies writes in order on a
// connection of its own, group-committed; each write's `done` runs once
// its transaction has committed (durable as the server's
// synchronous_commit makes it). Reads come from memory, loaded at open, so
// a read never waits for the network.
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

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/group_commit_store.h"

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

class PostgresTaskStore final : public GroupCommitStore {
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

  // FAILED_PRECONDITION: back up the database with its own tools.
  absl::StatusOr<std::string> BackupToNewFile() const override;

 private:
  PostgresTaskStore(std::string redacted, std::unique_ptr<pg::Connection> db);
  absl::Status Load();
  // Connects again after a loss, and takes the store's lock again.
  absl::Status BeforeBatch() override;
  absl::Status Apply(const Batch& batch, Positions* positions) override;

  // The conninfo without its password, for messages.
  const std::string redacted_;
  // Used by the writer thread alone once it runs.
  std::unique_ptr<pg::Connection> db_;
  // Whether db_'s session holds the store's lock (the writer's).
  bool locked_ = true;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_POSTGRES_TASK_STORE_H_
