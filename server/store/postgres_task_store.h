// PostgresTaskStore: tasks kept in a PostgreSQL database
// (--store=postgres://USER@HOST/DB?..., a libpq connection URI), so that
// accepted work survives a restart, a crash or a deploy, on a database the
// operator already runs, backs up and replicates.
//
// It keeps the TaskStore contract as the SQLite store does, and the same
// way (GroupCommitStore): one writer thread applies writes in order on a
// connection of its own, group-committed; each write's `done` runs once
// its transaction has committed (durable as the server's
// synchronous_commit makes it).
//
// The schema (tables weft_meta, weft_tasks, weft_task_nodes,
// weft_lazy_values, weft_replicas) is versioned in weft_meta and migrated
// at open, inside a transaction holding an advisory lock, so weftds
// starting together agree. The pair (owner, request_id) of a task is unique
// in the database: a second task with a taken pair is refused alone
// (ALREADY_EXISTS), the rest of its transaction applied.
//
// Alone (the default), the store holds a session advisory lock while open:
// a second weftd on the same database is refused, as a second one on an
// SQLite file is; reads come from memory, loaded at open.
//
// As a replica (PostgresOptions::replicas), several weftds share the
// database. Each registers in weft_replicas under its name with a new
// generation (the fencing token) and a lease it renews every third of
// --lease_duration on a connection of its own; it owns the tasks it writes
// (weft_tasks.replica). Every write transaction first takes the replica's
// row FOR KEY SHARE and checks its generation and lease, so writes end the
// moment the lease does, and an adopter (which deletes the row) waits for a
// write in flight rather than racing it. AdoptExpired() takes over the
// tasks of replicas whose lease ended, each dead replica's by exactly one
// adopter (FOR UPDATE SKIP LOCKED). Reads come from the database (a pool of
// connections), so each replica sees every replica's tasks. A replica
// closed cleanly ends its lease, so its tasks are adopted at once.
//
// Replicas hear of each other's writes and cancel requests through
// LISTEN/NOTIFY (Listen, RequestCancel), on a connection opened before Open
// returns (when it can be: else the thread keeps trying), and poll besides
// (poll_interval), since PostgreSQL keeps no notice for a session that was not
// listening when it was sent. The channels are per database: stores in other
// schemas of it are heard too, which costs a look and changes nothing (their
// task names are not ours).
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

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"
#include "server/store/group_commit_store.h"

namespace weft::store {

namespace pg {
class Connection;
class Pool;
}  // namespace pg

struct PostgresOptions {
  // How long Open waits for the store's lock while another weftd holds it
  // (a weftd that just crashed holds it until the server sees its
  // connection gone), or, as a replica, for its name's lease to end,
  // before refusing.
  absl::Duration lock_wait = absl::Seconds(10);
  // Several weftds share the database, each a replica (see above).
  bool replicas = false;
  // This replica's name; empty: the host's name. A weftd restarted under
  // its name takes its tasks back at once (a new generation fences the old
  // process); a second one running under a name in use is refused.
  std::string replica_id;
  // How long a replica's lease lasts unless renewed.
  absl::Duration lease_duration = absl::Seconds(5);
  // Connections a replica reads through (its writer and its lease have
  // one each besides).
  int pool_size = 4;
  // How often a replica looks again at what it waits on (other replicas'
  // tasks, cancel requests of its own) besides what NOTIFY tells it: the
  // fallback when a notification is missed (see TaskStore::Notice).
  absl::Duration poll_interval = absl::Seconds(1);
  // Called once, on the thread that finds out (the lease's, or a write's),
  // when a replica learns that its lease ended (not renewed in time, or another
  // replica took its name's row): from then on its writes are refused, and
  // another replica may adopt its tasks.
  std::function<void()> on_lease_lost;
};

class PostgresTaskStore final : public GroupCommitStore {
 public:
  // The newest schema version this build writes.
  static constexpr int kSchemaVersion = 4;

  // Connects to `conninfo` (a postgres:// URI, or libpq's key=value pairs;
  // empty: libpq's PG* variables), migrates the schema and loads the
  // tasks. Errors name the database without its password.
  static absl::StatusOr<std::unique_ptr<PostgresTaskStore>> Open(
      const std::string& conninfo, PostgresOptions options = {});
  // Applies the writes still queued, then disconnects.
  ~PostgresTaskStore() override;

  // FAILED_PRECONDITION: back up the database with its own tools.
  absl::StatusOr<std::string> BackupToNewFile() const override;

  // Replicas: reads come from the database.
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  absl::StatusOr<std::shared_ptr<const weft::v1::Task>> Lookup(
      absl::string_view name) const override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;

  bool shared() const override { return options_.replicas; }

  // A replica's name and generation ("" and 0 alone).
  const std::string& replica_id() const { return options_.replica_id; }
  int64_t generation() const { return generation_; }
  // False once the replica learned that its lease ended.
  bool holds_lease() const;
  // Replicas: UNAVAILABLE once the lease ended, or once its end by this
  // process's clock has passed, which it then declares lost at once (as
  // LeaseWatch would on waking: a process that was paused may run before
  // that thread does).
  absl::Status MayStartWork() override;

  // A replica's own tasks, as they were at open.
  std::vector<std::shared_ptr<const weft::v1::Task>> Owned() const override;
  std::shared_ptr<const weft::v1::Task> GetByRequest(
      absl::string_view creator, absl::string_view request_id) const override;

  // Replicas: notices come from the database's LISTEN/NOTIFY (channels
  // weft_task, weft_cancel and weft_lazy) on a connection of the store's own,
  // and a kPoll every poll_interval and after each reconnection.
  std::unique_ptr<Subscription> Listen(
      std::function<void(const Notice&)> fn) override;
  absl::Status RequestCancel(absl::string_view name) override;
  std::vector<std::string> CancelRequests() const override;
  absl::StatusOr<std::map<std::string, CreatorLoad>> OthersLoad(
      const std::vector<std::string>& creators) const override;
  // Replicas: lazy-value rows (channel weft_lazy tells of changes).
  absl::StatusOr<LazyRow> ReadLazyValue(absl::string_view id) const override;
  absl::StatusOr<std::map<std::string, LazyRow>> ReadLazyValues()
      const override;

  using Adopted = TakenTask;
  // Takes over every task of the replicas whose lease ended (and of any
  // replica the table no longer names), oldest first: this replica owns
  // them from then on. FAILED_PRECONDITION if this replica's own lease
  // ended. Each dead replica's tasks go to one adopter, however many try.
  absl::StatusOr<std::vector<Adopted>> AdoptExpired();

  // For tests: the lease is no longer renewed (a paused process).
  void StopRenewingForTesting();

 private:
  PostgresTaskStore(std::string conninfo, std::string redacted,
                    PostgresOptions options,
                    std::unique_ptr<pg::Connection> db);
  absl::Status Load();
  // Registers the replica: a new generation and lease under its name.
  absl::Status Register();
  // Connects again after a loss, and takes the store's lock again.
  absl::Status BeforeBatch() override;
  absl::Status Apply(Batch& batch, Positions* positions) override;
  // The replica's check at the start of each write transaction.
  absl::Status CheckLease(pg::Connection& db);
  absl::Status LeaseLostError() const;
  absl::Status ApplyWrite(Op& op, std::string& bytes, Positions* positions);
  // Renews the lease every third of it.
  void LeaseLoop();
  // Declares the lease lost once this process's clock passes its end, even
  // while a renewal hangs.
  void LeaseWatch();
  void LeaseLost();

  // Replicas: hears NOTIFY on a connection of its own and calls the
  // subscriber.
  void ListenLoop(std::unique_ptr<pg::Connection> db);
  // A connection that LISTENs on the channels; nullptr when none can be
  // made.
  std::unique_ptr<pg::Connection> ListenConnection() const;
  void Dispatch(const Notice& notice);
  class Listening;

  // The conninfo without its password, for messages.
  const std::string redacted_;
  const PostgresOptions options_;
  // Used by the writer thread alone once it runs.
  std::unique_ptr<pg::Connection> db_;
  // Whether db_'s session holds the store's lock (the writer's; alone).
  bool locked_ = true;
  // Replicas: reads, adoption.
  std::unique_ptr<pg::Pool> pool_;
  // Replicas: its own tasks at open (set before the writer runs).
  std::vector<std::shared_ptr<const weft::v1::Task>> owned_at_open_;
  int64_t generation_ = 0;
  // Replicas: the lease's own connection and thread.
  const std::string conninfo_;
  std::thread lease_;
  std::thread lease_watch_;
  mutable engine::Mutex lease_mu_;
  engine::CondVar lease_cv_;
  bool lease_stopping_ ABSL_GUARDED_BY(lease_mu_) = false;
  bool renewing_ ABSL_GUARDED_BY(lease_mu_) = true;
  bool lease_lost_ ABSL_GUARDED_BY(lease_mu_) = false;
  // Until when the lease surely runs, by this process's clock.
  absl::Time valid_until_ ABSL_GUARDED_BY(lease_mu_);
  // Replicas: the listening thread, woken to stop through an eventfd.
  std::thread listener_;
  int wake_fd_ = -1;
  std::atomic<bool> listen_stopping_{false};
  // Held while the subscribers are called.
  mutable engine::Mutex listen_mu_;
  std::map<int64_t, std::function<void(const Notice&)>> subscribers_
      ABSL_GUARDED_BY(listen_mu_);
  // The last subscription's number.
  int64_t subscription_ ABSL_GUARDED_BY(listen_mu_) = 0;
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_POSTGRES_TASK_STORE_H_
