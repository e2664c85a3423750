#include "server/store/postgres_task_store.h"

#include <algorithm>
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
// holds it: FAILED_PRECONDITION if it still does.
absl::Status Lock(Connection& db, const std::string& redacted,
                  absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  for (;;) {
    // -1: no schema to lock (hashtext(NULL) would make the lock a no-op).
    absl::StatusOr<Result> got = db.Query(
        "SELECT CASE WHEN current_schema() IS NULL THEN -1 ELSE "
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
  {
    return absl::FailedPreconditionError(absl::StrCat(
        "the task store at ", redacted,
        " is in use by another weftd (it holds the store's advisory lock): "
        "stop that one first, or give this one another database"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresTaskStore>> PostgresTaskStore::Open(
    const std::string& conninfo, PostgresOptions options) {
  const std::string redacted = pg::RedactConninfo(conninfo);
  absl::StatusOr<std::unique_ptr<Connection>> db = Connection::Open(conninfo);
  if (!db.ok()) return db.status();  // It names the database already.
  // The lock first: a weftd that will be refused changes nothing, not even
  // the schema under the one that runs.
  if (absl::Status s = Lock(**db, redacted, options.lock_wait); !s.ok()) {
    return s.code() == absl::StatusCode::kFailedPrecondition
               ? s
               : Refused(redacted, s);
  }
  if (absl::Status s = Migrate(**db); !s.ok()) return Refused(redacted, s);
  auto store = std::unique_ptr<PostgresTaskStore>(
      new PostgresTaskStore(redacted, *std::move(db)));
  if (absl::Status s = store->Load(); !s.ok()) return Refused(redacted, s);
  store->StartWriter();
  return store;
}

PostgresTaskStore::PostgresTaskStore(std::string redacted,
                                     std::unique_ptr<Connection> db)
    : redacted_(std::move(redacted)), db_(std::move(db)) {}

PostgresTaskStore::~PostgresTaskStore() {
  StopWriter();
  db_.reset();  // Disconnecting releases the session lock.
}

absl::Status PostgresTaskStore::Load() {
  absl::StatusOr<Result> tasks =
      db_->Query("SELECT position, task FROM weft_tasks ORDER BY position");
  if (!tasks.ok()) return tasks.status();
  for (int i = 0; i < tasks->rows(); ++i) {
    const uint64_t position = static_cast<uint64_t>(tasks->Int(i, 0));
    auto task = std::make_shared<weft::v1::Task>();
    const absl::string_view bytes = tasks->Bytes(i, 1);
    if (!task->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        task->name().empty()) {
      return absl::DataLossError(
          absl::StrCat("the task at position ", position, " does not parse"));
    }
    LoadTask(std::move(task), position);
  }
  absl::StatusOr<Result> lazies =
      db_->Query("SELECT id, request FROM weft_lazy_values ORDER BY seq");
  if (!lazies.ok()) return lazies.status();
  for (int i = 0; i < lazies->rows(); ++i) {
    LoadLazyValue(std::string(lazies->Bytes(i, 0)),
                  std::string(lazies->Bytes(i, 1)));
  }
  absl::StatusOr<Result> nodes = db_->Query(
      "SELECT t.name, n.node, n.outcome FROM weft_task_nodes n "
      "JOIN weft_tasks t USING (position)");
  if (!nodes.ok()) return nodes.status();
  absl::flat_hash_map<std::string, NodeJournal> journals;
  for (int i = 0; i < nodes->rows(); ++i) {
    NodeJournal& journal = journals[nodes->Bytes(i, 0)];
    const int32_t node = static_cast<int32_t>(nodes->Int(i, 1));
    if (nodes->IsNull(i, 2)) {
      journal.started.insert(node);
      continue;
    }
    weft::v1::NodeOutcome outcome;
    const absl::string_view bytes = nodes->Bytes(i, 2);
    if (!outcome.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat("node ", node, " of ",
                                              nodes->Bytes(i, 0),
                                              "'s journal does not parse"));
    }
    journal.ended[node] = std::move(outcome);
  }
  for (auto& [name, journal] : journals) {
    LoadJournal(name, std::move(journal));
  }
  return absl::OkStatus();
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
  // no write goes without it.
  absl::Status s = Lock(*db_, redacted_, absl::ZeroDuration());
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "the task store's connection was lost and its lock is not back yet (",
        s.message(), ")"));
  }
  locked_ = true;
  return absl::OkStatus();
}

absl::Status PostgresTaskStore::Apply(const Batch& batch,
                                      Positions* positions) {
  std::string bytes;
  absl::Status s = InTransaction(*db_, [&]() -> absl::Status {
    for (const Op& op : batch) {
      absl::StatusOr<Result> r;
      switch (op.kind) {
        case Op::Kind::kPutLazy:
          r = db_->Query(
              "INSERT INTO weft_lazy_values(id, request) "
              "VALUES($1, $2::bytea) "
              "ON CONFLICT(id) DO UPDATE SET request = excluded.request",
              {Param::Text(op.name), Param::Bytes(op.bytes)});
          break;
        case Op::Kind::kEraseLazy:
          r = db_->Query("DELETE FROM weft_lazy_values WHERE id = $1",
                         {Param::Text(op.name)});
          break;
        case Op::Kind::kJournal:
          // Nothing for a task the store does not hold (erased meanwhile).
          if (op.outcome == nullptr) {
            r = db_->Query(
                "INSERT INTO weft_task_nodes(position, node) "
                "SELECT position, $2::integer FROM weft_tasks WHERE name = $1 "
                "ON CONFLICT DO NOTHING",
                {Param::Text(op.name), Param::Int(op.node)});
          } else {
            bytes.clear();
            op.outcome->SerializeToString(&bytes);
            r = db_->Query(
                "INSERT INTO weft_task_nodes(position, node, outcome) "
                "SELECT position, $2::integer, $3::bytea FROM weft_tasks "
                "WHERE name = $1 ON CONFLICT(position, node) "
                "DO UPDATE SET outcome = excluded.outcome",
                {Param::Text(op.name), Param::Int(op.node),
                 Param::Bytes(bytes)});
          }
          break;
        case Op::Kind::kErase:
          // Its journal goes with it (ON DELETE CASCADE).
          r = db_->Query("DELETE FROM weft_tasks WHERE name = $1",
                         {Param::Text(op.name)});
          positions->erase(op.name);
          break;
        case Op::Kind::kWrite: {
          bytes.clear();
          if (!op.task->SerializeToString(&bytes)) {
            return absl::InvalidArgumentError(
                absl::StrCat(op.name, " does not serialize"));
          }
          // A new task gets the next position; a replaced one keeps its.
          r = db_->Query(
              "INSERT INTO weft_tasks(name, state, request_id, owner, task) "
              "VALUES($1, $2::integer, $3, $4, $5::bytea) "
              "ON CONFLICT(name) DO UPDATE SET state = excluded.state, "
              "task = excluded.task RETURNING position",
              {Param::Text(op.name), Param::Int(op.task->state()),
               Param::Text(op.task->request_id()),
               Param::Text(op.task->creator()), Param::Bytes(bytes)});
          if (!r.ok()) return r.status();
          const uint64_t position = static_cast<uint64_t>(r->Int(0, 0));
          (*positions)[op.name] = position;
          const weft::v1::TaskState state = op.task->state();
          if (state != weft::v1::TASK_STATE_QUEUED &&
              state != weft::v1::TASK_STATE_RUNNING) {
            // Its outcome holds what the journal did.
            r = db_->Query(
                "DELETE FROM weft_task_nodes WHERE position = $1::bigint",
                {Param::Int(static_cast<int64_t>(position))});
          }
          break;
        }
      }
      if (!r.ok()) return r.status();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) positions->clear();  // Nothing of the batch is applied.
  return s;
}

}  // namespace weft::store
