#include "server/store/postgres_task_store.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/postgres.h"

namespace weft::store {
namespace {

using pg::Connection;
using pg::Param;
using pg::Result;

// Advisory locks, keyed by these ("weft" in ASCII, then + 1) and the
// schema the tables are in (so that stores in different schemas of one
// database do not meet): the schema's migration (per transaction), and the
// store's single weftd (per session).
constexpr int64_t kMigrationLock = 0x77656674;
constexpr int64_t kStoreLock = 0x77656675;

// The schema, one step per version: step i takes a database of version i
// to version i + 1. A released step never changes; a new version adds one.
constexpr const char* kMigrations[] = {
    // Version 1: the tasks, in creation order (position), each as a
    // serialized weft.v1.Task with its plan; the state, request id and
    // owner (Task.creator: empty when weftd runs without callers) beside it
    // for queries. The journal of running tasks' leaves: a row when one
    // starts (outcome NULL), its outcome (a serialized weft.v1.NodeOutcome)
    // when it ends; dropped when the task ends or is erased. The lazy-value
    // definitions made through the API (a serialized
    // weft.v1.CreateLazyValueRequest each), in the order they were made.
    R"sql(
      CREATE TABLE weft_tasks(
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        state INTEGER NOT NULL,
        request_id TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        task BYTEA NOT NULL);
      CREATE TABLE weft_task_nodes(
        position BIGINT NOT NULL
          REFERENCES weft_tasks(position) ON DELETE CASCADE,
        node INTEGER NOT NULL,
        outcome BYTEA,
        PRIMARY KEY(position, node));
      CREATE TABLE weft_lazy_values(
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT PRIMARY KEY,
        request BYTEA NOT NULL);
    )sql",
    // Version 2: replicas. Each weftd sharing the database registers under
    // its name with a generation (the fencing token, from a sequence) and
    // the end of its lease; a task names the replica that owns it ('' for
    // a weftd alone). A principal's request_id names one task at most (an
    // older task that shared one, left by an erase that failed, loses it).
    R"sql(
      CREATE SEQUENCE weft_generations;
      CREATE TABLE weft_replicas(
        id TEXT PRIMARY KEY,
        generation BIGINT NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL,
        started TIMESTAMPTZ NOT NULL DEFAULT now());
      ALTER TABLE weft_tasks ADD COLUMN replica TEXT NOT NULL DEFAULT '';
      CREATE INDEX weft_tasks_by_replica ON weft_tasks(replica);
      UPDATE weft_tasks SET request_id = '' WHERE request_id <> '' AND
        position NOT IN (SELECT max(position) FROM weft_tasks
                         WHERE request_id <> '' GROUP BY owner, request_id);
      CREATE UNIQUE INDEX weft_tasks_request ON weft_tasks(owner, request_id)
        WHERE request_id <> '';
    )sql",
    // Version 3: a cancel asked of a task on another replica than the one
    // that runs it, kept until that one (or its adopter) sees it.
    R"sql(
      ALTER TABLE weft_tasks ADD COLUMN cancel_requested BOOLEAN NOT NULL
        DEFAULT false;
    )sql",
    // Version 4: lazy-value resets, counted per value (one made through
    // the API, or the config file's), so that every replica forgets its
    // cached value; dropped with the value's definition. The unfinished
    // tasks by owner, which replicas count for per-principal quotas.
    R"sql(
      CREATE TABLE weft_lazy_resets(
        id TEXT PRIMARY KEY,
        resets BIGINT NOT NULL);
      CREATE INDEX weft_tasks_unfinished_by_owner ON weft_tasks(owner)
        WHERE state IN (1, 2);
    )sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
              PostgresTaskStore::kSchemaVersion);

// Why the store cannot be opened, for weftd's start-up message.
absl::Status Refused(const std::string& redacted, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("cannot use the task store at ",
                                             redacted, ": ", s.message()));
}

// Runs `body` in a transaction: committed if it returns OK, rolled back
// otherwise.
template <typename Body>
absl::Status InTransaction(Connection& db, Body body) {
  if (absl::Status s = db.Exec("BEGIN"); !s.ok()) return s;
  absl::Status s = body();
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok() && db.ok()) db.Exec("ROLLBACK").IgnoreError();
  return s;
}

absl::Status Migrate(Connection& db) {
  return InTransaction(db, [&]() -> absl::Status {
    // A replica's session bounds statements by its lease; a migration (an
    // index over many tasks) and the wait for another's may take longer.
    if (absl::Status s = db.Exec("SET LOCAL statement_timeout = 0"); !s.ok()) {
      return s;
    }
    absl::StatusOr<Result> locked = db.Query(
        "SELECT pg_advisory_xact_lock($1::integer, hashtext(current_schema()))",
        {Param::Int(kMigrationLock)});
    if (!locked.ok()) return locked.status();
    if (absl::Status s = db.Exec("CREATE TABLE IF NOT EXISTS weft_meta("
                                 "key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<Result> row =
        db.Query("SELECT value FROM weft_meta WHERE key = 'schema_version'");
    if (!row.ok()) return row.status();
    int version = 0;
    if (row->rows() > 0 && !absl::SimpleAtoi(row->Bytes(0, 0), &version)) {
      return absl::DataLossError(
          absl::StrCat("weft_meta's schema_version is not a number: \"",
                       row->Bytes(0, 0), "\""));
    }
    if (version > PostgresTaskStore::kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "it was written by a newer weftd (schema version ", version,
          "; this weftd knows versions up to ",
          PostgresTaskStore::kSchemaVersion,
          "): run that newer weftd, or a database this one knows"));
    }
    for (int v = version; v < PostgresTaskStore::kSchemaVersion; ++v) {
      if (absl::Status s = db.Exec(kMigrations[v]); !s.ok()) return s;
    }
    absl::StatusOr<Result> set = db.Query(
        "INSERT INTO weft_meta(key, value) VALUES('schema_version', $1) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        {Param::Int(PostgresTaskStore::kSchemaVersion)});
    return set.status();
  });
}

// Takes the store's session lock, waiting up to `wait` while another weftd
// holds it: FAILED_PRECONDITION if it still does. A weftd alone takes it
// exclusively; replicas share it (so none runs beside a weftd alone).
absl::Status Lock(Connection& db, const std::string& redacted,
                  absl::Duration wait, bool shared) {
  const absl::Time deadline = absl::Now() + wait;
  for (;;) {
    // -1: no schema to lock (hashtext(NULL) would make the lock a no-op).
    absl::StatusOr<Result> got = db.Query(
        shared ? "SELECT CASE WHEN current_schema() IS NULL THEN -1 ELSE "
                 "pg_try_advisory_lock_shared($1::integer, "
                 "hashtext(current_schema()))::integer END"
               : "SELECT CASE WHEN current_schema() IS NULL THEN -1 ELSE "
                 "pg_try_advisory_lock($1::integer, "
                 "hashtext(current_schema()))::integer END",
        {Param::Int(kStoreLock)});
    if (!got.ok()) return got.status();
    if (got->Int(0, 0) == -1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the task store at ", redacted,
          " has no schema to keep its tables in: the connection's "
          "search_path names no schema that exists; create one, or set "
          "search_path (options=-csearch_path%3DSCHEMA in the URI)"));
    }
    if (got->Int(0, 0) == 1) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  if (shared) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the task store at ", redacted,
        " is in use by a weftd running alone (not as a replica): stop it, "
        "and start every weftd on this database as a replica"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the task store at ", redacted,
      " is in use by another weftd (it holds the store's advisory lock): "
      "stop that one first, or give this one another database"));
}

// `values` as a PostgreSQL text[] literal, for `$n::text[]`.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const std::string& value : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// The channels replicas tell each other on (TaskStore::Notice).
constexpr const char* kTaskChannel = "weft_task";
constexpr const char* kCancelChannel = "weft_cancel";
constexpr const char* kLazyChannel = "weft_lazy";

// A lease's length for SQL: microseconds, as `$n * interval '1
// microsecond'` takes them.
int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

absl::StatusOr<std::shared_ptr<weft::v1::Task>> ParseTask(
    absl::string_view bytes, int64_t position) {
  auto task = std::make_shared<weft::v1::Task>();
  if (!task->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      task->name().empty()) {
    return absl::DataLossError(
        absl::StrCat("the task at position ", position, " does not parse"));
  }
  return task;
}

// Adds row `i` of a (name, node, outcome) result to `journals`.
absl::Status AddJournalRow(
    const Result& rows, int i,
    absl::flat_hash_map<std::string, NodeJournal>& journals) {
  NodeJournal& journal = journals[rows.Bytes(i, 0)];
  const int32_t node = static_cast<int32_t>(rows.Int(i, 1));
  if (rows.IsNull(i, 2)) {
    journal.started.insert(node);
    return absl::OkStatus();
  }
  weft::v1::NodeOutcome outcome;
  const absl::string_view bytes = rows.Bytes(i, 2);
  if (!outcome.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat(
        "node ", node, " of ", rows.Bytes(i, 0), "'s journal does not parse"));
  }
  journal.ended[node] = std::move(outcome);
  return absl::OkStatus();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "weftd";
  }
  return name;
}

// A replica's sessions: one left idle inside a transaction for a lease
// (its process paused or wedged, holding row locks an adopter needs) is
// ended by the server, and no statement outlasts a lease.
std::string ReplicaSessionSetup(absl::Duration lease) {
  const int64_t ms = absl::ToInt64Milliseconds(lease);
  return absl::StrCat("SET idle_in_transaction_session_timeout = ", ms,
                      "; SET statement_timeout = ", ms);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresTaskStore>> PostgresTaskStore::Open(
    const std::string& conninfo, PostgresOptions options) {
  const std::string redacted = pg::RedactConninfo(conninfo);
  if (options.replicas) {
    if (options.replica_id.empty()) options.replica_id = HostName();
    if (options.lease_duration < absl::Seconds(1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a replica's lease must last at least 1s (it is renewed every "
          "third of it), not ",
          absl::FormatDuration(options.lease_duration)));
    }
    if (options.pool_size < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a replica needs at least one connection to read through, not ",
          options.pool_size));
    }
  }
  absl::StatusOr<std::unique_ptr<Connection>> db = Connection::Open(
      conninfo, 10,
      options.replicas ? ReplicaSessionSetup(options.lease_duration) : "");
  if (!db.ok()) return db.status();  // It names the database already.
  // The lock first: a weftd that will be refused changes nothing, not
  // even the schema under the one that runs.
  if (absl::Status s =
          Lock(**db, redacted, options.lock_wait, /*shared=*/options.replicas);
      !s.ok()) {
    return s.code() == absl::StatusCode::kFailedPrecondition
               ? s
               : Refused(redacted, s);
  }
  if (absl::Status s = Migrate(**db); !s.ok()) return Refused(redacted, s);
  if (!options.replicas) {
    // Alone, this weftd owns every task, whichever replica wrote it.
    absl::Status s = (*db)->Exec(
        "UPDATE weft_tasks SET replica = '' WHERE replica <> ''; "
        "DELETE FROM weft_replicas");
    if (!s.ok()) return Refused(redacted, s);
  }
  const bool replicas = options.replicas;
  auto store = std::unique_ptr<PostgresTaskStore>(
      new PostgresTaskStore(conninfo, redacted, options, *std::move(db)));
  if (replicas) {
    if (absl::Status s = store->Register(); !s.ok()) {
      return s.code() == absl::StatusCode::kFailedPrecondition
                 ? s
                 : Refused(redacted, s);
    }
  }
  if (absl::Status s = store->Load(); !s.ok()) return Refused(redacted, s);
  store->StartWriter();
  if (replicas) {
    store->lease_ = std::thread([s = store.get()] { s->LeaseLoop(); });
    store->lease_watch_ = std::thread([s = store.get()] { s->LeaseWatch(); });
    store->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (store->wake_fd_ < 0) {
      return absl::InternalError(
          absl::StrCat("eventfd: ", std::strerror(errno)));
    }
    // Listening before Open returns, so that nothing written after is
    // missed (a failure here is retried by the thread).
    std::unique_ptr<Connection> listening = store->ListenConnection();
    store->listener_ =
        std::thread([s = store.get(), db = std::move(listening)]() mutable {
          s->ListenLoop(std::move(db));
        });
  }
  return store;
}

PostgresTaskStore::PostgresTaskStore(std::string conninfo, std::string redacted,
                                     PostgresOptions options,
                                     std::unique_ptr<Connection> db)
    : GroupCommitStore(/*keep_table=*/!options.replicas),
      redacted_(std::move(redacted)),
      options_(std::move(options)),
      db_(std::move(db)),
      locked_(true),
      conninfo_(std::move(conninfo)) {
  if (options_.replicas) {
    pool_ = std::make_unique<pg::Pool>(
        conninfo_, options_.pool_size,
        ReplicaSessionSetup(options_.lease_duration));
  }
}

PostgresTaskStore::~PostgresTaskStore() {
  if (listener_.joinable()) {
    listen_stopping_.store(true);
    const uint64_t one = 1;
    // The loop also sees the flag within a poll interval.
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
    listener_.join();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  StopWriter();
  {
    engine::MutexLock lock(&lease_mu_);
    lease_stopping_ = true;
    lease_cv_.SignalAll();
  }
  if (lease_.joinable()) lease_.join();
  if (lease_watch_.joinable()) lease_watch_.join();
  if (options_.replicas && holds_lease()) {
    // The lease ends now rather than when it runs out: another replica
    // adopts the tasks left at once.
    db_->Query(
           "UPDATE weft_replicas SET lease_until = now() "
           "WHERE id = $1 AND generation = $2::bigint",
           {Param::Text(options_.replica_id), Param::Int(generation_)})
        .status()
        .IgnoreError();
  }
  db_.reset();  // Disconnecting releases the session lock.
}

absl::Status PostgresTaskStore::Register() {
  const absl::Time deadline = absl::Now() + options_.lock_wait;
  for (;;) {
    const absl::Time sent = absl::Now();
    // A name whose lease still runs is another live weftd's. One whose
    // lease ended is taken over: its row is deleted first, which waits for
    // a write of the old process still in flight (it holds the row FOR KEY
    // SHARE), and the new generation fences anything after.
    absl::StatusOr<Result> row;
    absl::Status s = InTransaction(*db_, [&]() -> absl::Status {
      absl::StatusOr<Result> gone = db_->Query(
          "DELETE FROM weft_replicas WHERE id = $1 AND lease_until <= now()",
          {Param::Text(options_.replica_id)});
      if (!gone.ok()) return gone.status();
      row = db_->Query(
          "INSERT INTO weft_replicas(id, generation, lease_until) "
          "VALUES($1, nextval('weft_generations'), "
          "now() + $2::bigint * interval '1 microsecond') "
          "ON CONFLICT(id) DO NOTHING RETURNING generation",
          {Param::Text(options_.replica_id),
           Param::Int(Micros(options_.lease_duration))});
      return row.status();
    });
    if (!s.ok()) return s;
    if (row->rows() == 1) {
      generation_ = row->Int(0, 0);
      engine::MutexLock lock(&lease_mu_);
      valid_until_ = sent + options_.lease_duration;
      return absl::OkStatus();
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the task store at ", redacted_, " has a running replica named \"",
      options_.replica_id,
      "\" already (its lease did not end): give this weftd another "
      "--replica_id, or stop that one first"));
}

absl::Status PostgresTaskStore::Load() {
  if (!options_.replicas) {
    absl::StatusOr<Result> tasks =
        db_->Query("SELECT position, task FROM weft_tasks ORDER BY position");
    if (!tasks.ok()) return tasks.status();
    for (int i = 0; i < tasks->rows(); ++i) {
      absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
          ParseTask(tasks->Bytes(i, 1), tasks->Int(i, 0));
      if (!task.ok()) return task.status();
      LoadTask(*std::move(task), static_cast<uint64_t>(tasks->Int(i, 0)));
    }
  }
  absl::StatusOr<Result> lazies =
      db_->Query("SELECT id, request FROM weft_lazy_values ORDER BY seq");
  if (!lazies.ok()) return lazies.status();
  for (int i = 0; i < lazies->rows(); ++i) {
    LoadLazyValue(std::string(lazies->Bytes(i, 0)),
                  std::string(lazies->Bytes(i, 1)));
  }
  if (options_.replicas) {
    // A replica's own tasks (Recover takes them back), read here so that a
    // failure stops the start rather than leaving them unresumed.
    absl::StatusOr<Result> own = db_->Query(
        "SELECT position, task FROM weft_tasks WHERE replica = $1 "
        "ORDER BY position",
        {Param::Text(options_.replica_id)});
    if (!own.ok()) return own.status();
    for (int i = 0; i < own->rows(); ++i) {
      absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
          ParseTask(own->Bytes(i, 1), own->Int(i, 0));
      if (!task.ok()) return task.status();
      owned_at_open_.push_back(*std::move(task));
    }
  }
  // A replica's journals: those of its own tasks.
  absl::StatusOr<Result> nodes = db_->Query(
      "SELECT t.name, n.node, n.outcome FROM weft_task_nodes n "
      "JOIN weft_tasks t USING (position) WHERE t.replica = $1",
      {Param::Text(options_.replica_id)});
  if (!nodes.ok()) return nodes.status();
  absl::flat_hash_map<std::string, NodeJournal> journals;
  for (int i = 0; i < nodes->rows(); ++i) {
    if (absl::Status s = AddJournalRow(*nodes, i, journals); !s.ok()) {
      return s;
    }
  }
  for (auto& [name, journal] : journals) {
    LoadJournal(name, std::move(journal));
  }
  return absl::OkStatus();
}

std::shared_ptr<const weft::v1::Task> PostgresTaskStore::Get(
    absl::string_view name) const {
  absl::StatusOr<std::shared_ptr<const weft::v1::Task>> task = Lookup(name);
  return task.ok() ? *std::move(task) : nullptr;
}

absl::StatusOr<std::shared_ptr<const weft::v1::Task>> PostgresTaskStore::Lookup(
    absl::string_view name) const {
  if (!options_.replicas) return GroupCommitStore::Get(name);
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  absl::StatusOr<Result> row =
      (*db)->Query("SELECT position, task FROM weft_tasks WHERE name = $1",
                   {Param::Text(name)});
  if (!row.ok()) return row.status();
  if (row->rows() == 0) return nullptr;
  absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
      ParseTask(row->Bytes(0, 1), row->Int(0, 0));
  if (!task.ok()) return task.status();
  return std::shared_ptr<const weft::v1::Task>(*std::move(task));
}

void PostgresTaskStore::Scan(
    uint64_t before,
    absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const {
  if (!options_.replicas) return GroupCommitStore::Scan(before, fn);
  // A page at a time, each on a connection taken for it, so that `fn`
  // runs with no connection held.
  constexpr int kPage = 64;
  int64_t below = before == 0 ? std::numeric_limits<int64_t>::max()
                              : static_cast<int64_t>(before);
  for (;;) {
    std::vector<std::pair<int64_t, std::shared_ptr<weft::v1::Task>>> page;
    {
      absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
      if (!db.ok()) return;
      absl::StatusOr<Result> rows = (*db)->Query(
          "SELECT position, task FROM weft_tasks WHERE position < $1::bigint "
          "ORDER BY position DESC LIMIT $2::integer",
          {Param::Int(below), Param::Int(kPage)});
      if (!rows.ok()) return;
      for (int i = 0; i < rows->rows(); ++i) {
        absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
            ParseTask(rows->Bytes(i, 1), rows->Int(i, 0));
        if (task.ok()) page.emplace_back(rows->Int(i, 0), *std::move(task));
      }
      if (rows->rows() == 0) return;
      below = rows->Int(rows->rows() - 1, 0);
    }
    for (const auto& [position, task] : page) {
      if (!fn(static_cast<uint64_t>(position), *task)) return;
    }
    if (static_cast<int>(page.size()) < kPage) return;
  }
}

std::vector<std::shared_ptr<const weft::v1::Task>> PostgresTaskStore::Owned()
    const {
  if (!options_.replicas) return GroupCommitStore::Owned();
  return owned_at_open_;
}

std::shared_ptr<const weft::v1::Task> PostgresTaskStore::GetByRequest(
    absl::string_view creator, absl::string_view request_id) const {
  // Alone, the registry knows every task.
  if (!options_.replicas || request_id.empty()) return nullptr;
  absl::StatusOr<pg::Pool::Lease> lease = pool_->Take();
  if (!lease.ok()) return nullptr;
  absl::StatusOr<Result> row = (*lease)->Query(
      "SELECT position, task FROM weft_tasks "
      "WHERE owner = $1 AND request_id = $2",
      {Param::Text(creator), Param::Text(request_id)});
  if (!row.ok() || row->rows() == 0) return nullptr;
  absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
      ParseTask(row->Bytes(0, 1), row->Int(0, 0));
  return task.ok() ? *std::move(task) : nullptr;
}

size_t PostgresTaskStore::size() const {
  if (!options_.replicas) return GroupCommitStore::size();
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return 0;
  absl::StatusOr<Result> n = (*db)->Query("SELECT count(*) FROM weft_tasks");
  return n.ok() ? static_cast<size_t>(n->Int(0, 0)) : 0;
}

bool PostgresTaskStore::holds_lease() const {
  engine::MutexLock lock(&lease_mu_);
  return options_.replicas && !lease_lost_;
}

absl::Status PostgresTaskStore::MayStartWork() {
  if (!options_.replicas) return absl::OkStatus();
  {
    engine::MutexLock lock(&lease_mu_);
    if (!lease_lost_ && absl::Now() < valid_until_) return absl::OkStatus();
  }
  LeaseLost();
  return absl::UnavailableError(
      absl::StrCat("replica \"", options_.replica_id,
                   "\" no longer holds its lease, so it starts no more work: "
                   "another replica adopts its tasks"));
}

void PostgresTaskStore::StopRenewingForTesting() {
  engine::MutexLock lock(&lease_mu_);
  renewing_ = false;
}

void PostgresTaskStore::LeaseLost() {
  {
    engine::MutexLock lock(&lease_mu_);
    if (lease_lost_) return;
    lease_lost_ = true;
  }
  if (options_.on_lease_lost) options_.on_lease_lost();
}

void PostgresTaskStore::LeaseWatch() {
  {
    engine::MutexLock lock(&lease_mu_);
    for (;;) {
      if (lease_stopping_ || lease_lost_) return;
      // Read again after each wake: a renewal moves it on.
      const absl::Time until = valid_until_;
      if (absl::Now() >= until) break;
      lease_cv_.WaitUntil(&lease_mu_, until);
    }
  }
  // Whatever the renewal is doing (a query hanging on a partition): by
  // this process's clock the lease is over.
  LeaseLost();
}

void PostgresTaskStore::LeaseLoop() {
  std::unique_ptr<Connection> db;
  const absl::Duration every = options_.lease_duration / 3;
  absl::Time next = absl::Now() + every;
  for (;;) {
    bool renew = true;
    {
      engine::MutexLock lock(&lease_mu_);
      while (!lease_stopping_ && absl::Now() < next) {
        lease_cv_.WaitUntil(&lease_mu_, next);
      }
      if (lease_stopping_ || lease_lost_) return;
      renew = renewing_;
    }
    const absl::Time sent = absl::Now();
    next = sent + every;
    absl::Status s = renew ? absl::OkStatus()
                           : absl::UnavailableError("not renewing (a test)");
    if (s.ok() && (db == nullptr || !db->ok())) {
      absl::StatusOr<std::unique_ptr<Connection>> made =
          Connection::Open(conninfo_, /*connect_timeout_s=*/std::max<int64_t>(
                               1, absl::ToInt64Seconds(every)));
      if (made.ok()) {
        db = *std::move(made);
        // A renewal that hangs (a partition) must not outlast the lease
        // unnoticed.
        s = db->Exec(absl::StrCat(
            "SET statement_timeout = ",
            absl::ToInt64Milliseconds(options_.lease_duration / 2)));
      } else {
        s = made.status();
      }
    }
    if (s.ok()) {
      absl::StatusOr<Result> renewed = db->Query(
          "UPDATE weft_replicas SET lease_until = now() + $3::bigint * "
          "interval '1 microsecond' WHERE id = $1 AND generation = $2::bigint "
          "AND lease_until > now() RETURNING 1",
          {Param::Text(options_.replica_id), Param::Int(generation_),
           Param::Int(Micros(options_.lease_duration))});
      if (renewed.ok() && renewed->rows() == 0) {
        LeaseLost();  // Ended, or taken over: it never comes back.
        return;
      }
      if (renewed.ok()) {
        // Counted from when it was sent, never from when it was answered.
        engine::MutexLock lock(&lease_mu_);
        valid_until_ = sent + options_.lease_duration;
        lease_cv_.SignalAll();
      }
    }
  }
}

class PostgresTaskStore::Listening final : public Subscription {
 public:
  Listening(PostgresTaskStore* store, int64_t id) : store_(store), id_(id) {}
  ~Listening() override {
    engine::MutexLock lock(&store_->listen_mu_);
    store_->subscribers_.erase(id_);
  }

 private:
  PostgresTaskStore* const store_;
  const int64_t id_;
};

std::unique_ptr<TaskStore::Subscription> PostgresTaskStore::Listen(
    std::function<void(const Notice&)> fn) {
  if (!options_.replicas) return nullptr;
  engine::MutexLock lock(&listen_mu_);
  subscribers_.emplace(++subscription_, std::move(fn));
  return std::make_unique<Listening>(this, subscription_);
}

void PostgresTaskStore::Dispatch(const Notice& notice) {
  engine::MutexLock lock(&listen_mu_);
  for (const auto& [id, fn] : subscribers_) fn(notice);
}

std::unique_ptr<Connection> PostgresTaskStore::ListenConnection() const {
  absl::StatusOr<std::unique_ptr<Connection>> made =
      Connection::Open(conninfo_, /*connect_timeout_s=*/5);
  if (!made.ok() ||
      !(*made)
           ->Exec(absl::StrCat("LISTEN ", kTaskChannel, "; LISTEN ",
                               kCancelChannel, "; LISTEN ", kLazyChannel))
           .ok()) {
    return nullptr;
  }
  return *std::move(made);
}

void PostgresTaskStore::ListenLoop(std::unique_ptr<Connection> db) {
  absl::Time next_poll = absl::Now() + options_.poll_interval;
  while (!listen_stopping_.load()) {
    if (db == nullptr || !db->ok()) {
      db = ListenConnection();
      if (db != nullptr) {
        // What was sent while nobody listened is missed: look again.
        Dispatch(Notice{});
        next_poll = absl::Now() + options_.poll_interval;
      }
    }
    // Until the next poll; a broken connection is tried again then.
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, POLLIN, 0}};
    if (db != nullptr) fds[1].fd = db->socket();
    const int64_t ms = std::max<int64_t>(
        0, absl::ToInt64Milliseconds(next_poll - absl::Now()) + 1);
    const int ready = ::poll(fds, fds[1].fd >= 0 ? 2 : 1,
                             static_cast<int>(std::min<int64_t>(ms, 60'000)));
    if (listen_stopping_.load()) return;
    if (ready > 0 && fds[1].fd >= 0 && fds[1].revents != 0) {
      absl::StatusOr<std::vector<Connection::Notification>> got =
          db->Notifications();
      if (!got.ok()) {
        db.reset();
        continue;  // Reconnects, then polls.
      }
      for (Connection::Notification& n : *got) {
        Notice notice;
        notice.kind = n.channel == kCancelChannel ? Notice::Kind::kCancel
                      : n.channel == kLazyChannel ? Notice::Kind::kLazy
                                                  : Notice::Kind::kChanged;
        notice.name = std::move(n.payload);
        Dispatch(notice);
      }
    }
    if (absl::Now() >= next_poll) {
      Dispatch(Notice{});
      next_poll = absl::Now() + options_.poll_interval;
    }
  }
}

absl::Status PostgresTaskStore::RequestCancel(absl::string_view name) {
  if (!options_.replicas) return TaskStore::RequestCancel(name);
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  // One statement: the flag and the notice commit together.
  absl::StatusOr<Result> asked = (*db)->Query(
      "WITH asked AS (UPDATE weft_tasks SET cancel_requested = true "
      "WHERE name = $1 AND state IN (1, 2) RETURNING name) "
      "SELECT pg_notify($2, name) FROM asked",
      {Param::Text(name), Param::Text(kCancelChannel)});
  if (!asked.ok()) return asked.status();
  if (asked->rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat("no unfinished task is named ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, TaskStore::CreatorLoad>>
PostgresTaskStore::OthersLoad(const std::vector<std::string>& creators) const {
  if (!options_.replicas) return TaskStore::OthersLoad(creators);
  std::map<std::string, CreatorLoad> loads;
  if (creators.empty()) return loads;
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  absl::StatusOr<Result> r = (*db)->Query(
      "SELECT owner, count(*) FILTER (WHERE state = 2), "
      "count(*) FILTER (WHERE state = 1) FROM weft_tasks "
      "WHERE owner = ANY($1::text[]) AND state IN (1, 2) AND replica <> $2 "
      "GROUP BY owner",
      {Param::Text(TextArray(creators)), Param::Text(options_.replica_id)});
  if (!r.ok()) return r.status();
  for (int i = 0; i < r->rows(); ++i) {
    CreatorLoad& load = loads[std::string(r->Bytes(i, 0))];
    load.running = static_cast<int>(r->Int(i, 1));
    load.queued = static_cast<int>(r->Int(i, 2));
  }
  return loads;
}

absl::StatusOr<TaskStore::LazyRow> PostgresTaskStore::ReadLazyValue(
    absl::string_view id) const {
  if (!options_.replicas) return TaskStore::ReadLazyValue(id);
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  absl::StatusOr<Result> r = (*db)->Query(
      "SELECT (SELECT request FROM weft_lazy_values WHERE id = $1), "
      "(SELECT resets FROM weft_lazy_resets WHERE id = $1)",
      {Param::Text(id)});
  if (!r.ok()) return r.status();
  LazyRow row;
  if (!r->IsNull(0, 0)) row.request = std::string(r->Bytes(0, 0));
  if (!r->IsNull(0, 1)) row.resets = r->Int(0, 1);
  return row;
}

absl::StatusOr<std::map<std::string, TaskStore::LazyRow>>
PostgresTaskStore::ReadLazyValues() const {
  if (!options_.replicas) return TaskStore::ReadLazyValues();
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  absl::StatusOr<Result> r = (*db)->Query(
      "SELECT id, v.request, r.resets FROM weft_lazy_values v "
      "FULL JOIN weft_lazy_resets r USING (id)");
  if (!r.ok()) return r.status();
  std::map<std::string, LazyRow> rows;
  for (int i = 0; i < r->rows(); ++i) {
    LazyRow& row = rows[std::string(r->Bytes(i, 0))];
    if (!r->IsNull(i, 1)) row.request = std::string(r->Bytes(i, 1));
    if (!r->IsNull(i, 2)) row.resets = r->Int(i, 2);
  }
  return rows;
}

std::vector<std::string> PostgresTaskStore::CancelRequests() const {
  if (!options_.replicas) return {};
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return {};
  absl::StatusOr<Result> rows = (*db)->Query(
      "SELECT name FROM weft_tasks WHERE replica = $1 AND cancel_requested "
      "AND state IN (1, 2)",
      {Param::Text(options_.replica_id)});
  std::vector<std::string> names;
  if (!rows.ok()) return names;
  for (int i = 0; i < rows->rows(); ++i) names.emplace_back(rows->Bytes(i, 0));
  return names;
}

absl::StatusOr<std::vector<PostgresTaskStore::Adopted>>
PostgresTaskStore::AdoptExpired() {
  if (!options_.replicas) {
    return absl::FailedPreconditionError(
        "only a replica adopts tasks (PostgresOptions::replicas)");
  }
  absl::StatusOr<pg::Pool::Lease> db = pool_->Take();
  if (!db.ok()) return db.status();
  std::vector<Adopted> adopted;
  absl::Status s = InTransaction(**db, [&]() -> absl::Status {
    if (absl::Status s = CheckLease(**db); !s.ok()) return s;
    // The dead replicas this adopter takes: a row another adopter (or the
    // dead one's last write) holds is skipped, and taken next time if
    // still there.
    absl::StatusOr<Result> dead = (*db)->Query(
        "DELETE FROM weft_replicas WHERE id IN (SELECT id FROM weft_replicas "
        "WHERE lease_until <= now() AND id <> $1 "
        "FOR UPDATE SKIP LOCKED) RETURNING id",
        {Param::Text(options_.replica_id)});
    if (!dead.ok()) return dead.status();
    // Their tasks, and those of any replica no row names (a weftd that ran
    // alone has ''): by the owners' names, so that a row another adopter
    // took meanwhile (which READ COMMITTED checks again, on the row alone)
    // no longer matches.
    std::vector<std::string> owners;
    for (int i = 0; i < dead->rows(); ++i) {
      owners.emplace_back(dead->Bytes(i, 0));
    }
    absl::StatusOr<Result> orphans = (*db)->Query(
        "SELECT DISTINCT t.replica FROM weft_tasks t WHERE NOT EXISTS "
        "(SELECT 1 FROM weft_replicas r WHERE r.id = t.replica)");
    if (!orphans.ok()) return orphans.status();
    for (int i = 0; i < orphans->rows(); ++i) {
      if (orphans->Bytes(i, 0) != options_.replica_id) {
        owners.emplace_back(orphans->Bytes(i, 0));
      }
    }
    if (owners.empty()) return absl::OkStatus();
    absl::StatusOr<Result> tasks = (*db)->Query(
        "UPDATE weft_tasks SET replica = $1 WHERE replica = ANY($2::text[]) "
        "RETURNING position, task",
        {Param::Text(options_.replica_id), Param::Text(TextArray(owners))});
    if (!tasks.ok()) return tasks.status();
    std::vector<std::pair<int64_t, std::shared_ptr<weft::v1::Task>>> taken;
    for (int i = 0; i < tasks->rows(); ++i) {
      absl::StatusOr<std::shared_ptr<weft::v1::Task>> task =
          ParseTask(tasks->Bytes(i, 1), tasks->Int(i, 0));
      if (!task.ok()) return task.status();
      taken.emplace_back(tasks->Int(i, 0), *std::move(task));
    }
    std::sort(taken.begin(), taken.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string positions = "{";
    for (size_t i = 0; i < taken.size(); ++i) {
      absl::StrAppend(&positions, i ? "," : "", taken[i].first);
    }
    positions += "}";
    absl::StatusOr<Result> nodes = (*db)->Query(
        "SELECT t.name, n.node, n.outcome FROM weft_task_nodes n "
        "JOIN weft_tasks t USING (position) "
        "WHERE n.position = ANY($1::bigint[])",
        {Param::Text(positions)});
    if (!nodes.ok()) return nodes.status();
    absl::flat_hash_map<std::string, NodeJournal> journals;
    for (int i = 0; i < nodes->rows(); ++i) {
      if (absl::Status s = AddJournalRow(*nodes, i, journals); !s.ok()) {
        return s;
      }
    }
    for (auto& [position, task] : taken) {
      Adopted a;
      if (auto it = journals.find(task->name()); it != journals.end()) {
        a.journal = std::move(it->second);
      }
      a.task = std::move(task);
      adopted.push_back(std::move(a));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return adopted;
}

absl::Status PostgresTaskStore::CheckLease(Connection& db) {
  // Known lost here (by this process's clock too): nothing more is
  // written, whatever the database's clock says yet.
  if (!holds_lease()) return LeaseLostError();
  // FOR KEY SHARE: an adopter's DELETE of this row (and a restart's, under
  // the same name) waits until this transaction ends, so nothing it writes
  // is taken from under it; the lease's renewal (an UPDATE of other
  // columns) does not wait for it.
  absl::StatusOr<Result> row = db.Query(
      "SELECT 1 FROM weft_replicas WHERE id = $1 AND generation = $2::bigint "
      "AND lease_until > now() FOR KEY SHARE",
      {Param::Text(options_.replica_id), Param::Int(generation_)});
  if (!row.ok()) return row.status();
  if (row->rows() == 1) return absl::OkStatus();
  LeaseLost();
  return LeaseLostError();
}

absl::Status PostgresTaskStore::LeaseLostError() const {
  return absl::FailedPreconditionError(absl::StrCat(
      "replica \"", options_.replica_id, "\" (generation ", generation_,
      ") lost its lease: another replica may have adopted its tasks, and it "
      "writes nothing more"));
}

absl::StatusOr<std::string> PostgresTaskStore::BackupToNewFile() const {
  return absl::FailedPreconditionError(
      "the PostgreSQL store is backed up with PostgreSQL's own tools "
      "(pg_dump, or the server's base backups and WAL archive), not by "
      "weftd");
}

absl::Status PostgresTaskStore::BeforeBatch() {
  if (db_->ok() && locked_) return absl::OkStatus();
  if (!db_->ok()) {
    locked_ = false;  // The session lock went with the old session.
    if (absl::Status s = db_->Reconnect(); !s.ok()) return s;
  }
  // Another weftd may have taken the lock meanwhile, or the old session
  // (cut off by the network, not yet ended by the server) still holds it:
  // no write goes without it. (A replica's writes are guarded by its lease
  // too: CheckLease.)
  absl::Status s =
      Lock(*db_, redacted_, absl::ZeroDuration(), options_.replicas);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "the task store's connection was lost and its lock is not back yet (",
        s.message(), ")"));
  }
  locked_ = true;
  return absl::OkStatus();
}

absl::Status PostgresTaskStore::ApplyWrite(Op& op, std::string& bytes,
                                           Positions* positions) {
  bytes.clear();
  if (!op.task->SerializeToString(&bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(op.name, " does not serialize"));
  }
  const Param replica = Param::Text(options_.replica_id);
  // A task this replica has: replaced, keeping its position.
  absl::StatusOr<Result> r = db_->Query(
      "UPDATE weft_tasks SET state = $2::integer, task = $3::bytea "
      "WHERE name = $1 AND replica = $4 RETURNING position",
      {Param::Text(op.name), Param::Int(op.task->state()), Param::Bytes(bytes),
       replica});
  if (!r.ok()) return r.status();
  if (r->rows() == 0) {
    // A new one gets the next position, unless its name or its creator's
    // request_id is taken: that write alone is refused.
    r = db_->Query(
        "INSERT INTO weft_tasks(name, state, request_id, owner, task, "
        "replica) VALUES($1, $2::integer, $3, $4, $5::bytea, $6) "
        "ON CONFLICT DO NOTHING RETURNING position",
        {Param::Text(op.name), Param::Int(op.task->state()),
         Param::Text(op.task->request_id()), Param::Text(op.task->creator()),
         Param::Bytes(bytes), replica});
    if (!r.ok()) return r.status();
    if (r->rows() == 0) {
      absl::StatusOr<Result> owner =
          db_->Query("SELECT replica FROM weft_tasks WHERE name = $1",
                     {Param::Text(op.name)});
      if (!owner.ok()) return owner.status();
      if (owner->rows() > 0) {
        op.refused = absl::FailedPreconditionError(
            absl::StrCat(op.name, " belongs to replica \"", owner->Bytes(0, 0),
                         "\", not to \"", options_.replica_id, "\""));
      } else {
        op.refused = absl::AlreadyExistsError(
            absl::StrCat("request_id \"", op.task->request_id(), "\" of \"",
                         op.task->creator(), "\" names another task already"));
      }
      return absl::OkStatus();
    }
  }
  const uint64_t position = static_cast<uint64_t>(r->Int(0, 0));
  (*positions)[op.name] = position;
  const weft::v1::TaskState state = op.task->state();
  if (state != weft::v1::TASK_STATE_QUEUED &&
      state != weft::v1::TASK_STATE_RUNNING) {
    // Its outcome holds what the journal did.
    r = db_->Query("DELETE FROM weft_task_nodes WHERE position = $1::bigint",
                   {Param::Int(static_cast<int64_t>(position))});
  }
  return r.status();
}

absl::Status PostgresTaskStore::Apply(Batch& batch, Positions* positions) {
  std::string bytes;
  const Param replica = Param::Text(options_.replica_id);
  // Replicas: the tasks written or erased, announced at commit.
  std::vector<std::string> changed;
  // Replicas: the lazy values created, reset or deleted.
  std::vector<std::string> lazies;
  absl::Status s = InTransaction(*db_, [&]() -> absl::Status {
    changed.clear();
    lazies.clear();
    if (options_.replicas) {
      if (absl::Status s = CheckLease(*db_); !s.ok()) return s;
    }
    for (Op& op : batch) {
      op.refused = absl::OkStatus();
      absl::StatusOr<Result> r;
      if (options_.replicas &&
          (op.kind == Op::Kind::kPutLazy || op.kind == Op::Kind::kEraseLazy ||
           op.kind == Op::Kind::kResetLazy)) {
        lazies.push_back(op.name);
      }
      switch (op.kind) {
        case Op::Kind::kPutLazy:
          if (options_.replicas) {
            // Another replica's definition of the id stays: this one is
            // refused (its replica checked just before, so they raced).
            // The main query sees the table as it was before the insert.
            r = db_->Query(
                "WITH put AS (INSERT INTO weft_lazy_values(id, request) "
                "VALUES($1, $2::bytea) ON CONFLICT(id) DO NOTHING "
                "RETURNING 1) "
                "SELECT (SELECT count(*) FROM put), "
                "(SELECT request = $2::bytea FROM weft_lazy_values "
                "WHERE id = $1)",
                {Param::Text(op.name), Param::Bytes(op.bytes)});
            if (r.ok() && r->Int(0, 0) == 0 && !r->IsNull(0, 1) &&
                r->Int(0, 1) == 0) {
              op.refused = absl::AlreadyExistsError(absl::StrCat(
                  "lazyValues/", op.name,
                  " was just declared with another definition on another "
                  "replica"));
              lazies.pop_back();
            }
            break;
          }
          r = db_->Query(
              "INSERT INTO weft_lazy_values(id, request) "
              "VALUES($1, $2::bytea) "
              "ON CONFLICT(id) DO UPDATE SET request = excluded.request",
              {Param::Text(op.name), Param::Bytes(op.bytes)});
          break;
        case Op::Kind::kEraseLazy:
          r = db_->Query(
              "WITH resets AS (DELETE FROM weft_lazy_resets WHERE id = $1) "
              "DELETE FROM weft_lazy_values WHERE id = $1",
              {Param::Text(op.name)});
          break;
        case Op::Kind::kResetLazy:
          r = db_->Query(
              "INSERT INTO weft_lazy_resets(id, resets) VALUES($1, 1) "
              "ON CONFLICT(id) DO UPDATE "
              "SET resets = weft_lazy_resets.resets + 1 RETURNING resets",
              {Param::Text(op.name)});
          if (r.ok() && op.count != nullptr) *op.count = r->Int(0, 0);
          break;
        case Op::Kind::kJournal:
          // Nothing for a task this replica does not have (erased
          // meanwhile).
          if (op.outcome == nullptr) {
            r = db_->Query(
                "INSERT INTO weft_task_nodes(position, node) "
                "SELECT position, $2::integer FROM weft_tasks "
                "WHERE name = $1 AND replica = $3 ON CONFLICT DO NOTHING",
                {Param::Text(op.name), Param::Int(op.node), replica});
          } else {
            bytes.clear();
            op.outcome->SerializeToString(&bytes);
            r = db_->Query(
                "INSERT INTO weft_task_nodes(position, node, outcome) "
                "SELECT position, $2::integer, $3::bytea FROM weft_tasks "
                "WHERE name = $1 AND replica = $4 ON CONFLICT(position, node) "
                "DO UPDATE SET outcome = excluded.outcome",
                {Param::Text(op.name), Param::Int(op.node), Param::Bytes(bytes),
                 replica});
          }
          break;
        case Op::Kind::kErase:
          // Its journal goes with it (ON DELETE CASCADE). Any replica may
          // erase a finished task; an unfinished one, only its owner.
          r = db_->Query(
              "DELETE FROM weft_tasks WHERE name = $1 AND "
              "(replica = $2 OR state NOT IN (1, 2))",
              {Param::Text(op.name), replica});
          positions->erase(op.name);
          if (options_.replicas) changed.push_back(op.name);
          break;
        case Op::Kind::kWrite:
          if (absl::Status w = ApplyWrite(op, bytes, positions); !w.ok()) {
            return w;
          }
          if (options_.replicas && op.refused.ok()) {
            changed.push_back(op.name);
          }
          continue;
      }
      if (!r.ok()) return r.status();
    }
    // Delivered at commit, once each (PostgreSQL folds repeats).
    for (const auto& [channel, names] : {std::pair(kTaskChannel, &changed),
                                         std::pair(kLazyChannel, &lazies)}) {
      if (names->empty()) continue;
      absl::StatusOr<Result> r =
          db_->Query("SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n",
                     {Param::Text(channel), Param::Text(TextArray(*names))});
      if (!r.ok()) return r.status();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) positions->clear();  // Nothing of the batch is applied.
  return s;
}

}  // namespace weft::store
