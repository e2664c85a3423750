#include "server/store/sqlite_task_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/sqlite.h"

namespace weft::store {
namespace {

using sqlite::Database;
using sqlite::Scope;
using sqlite::Statement;

// PRAGMA application_id: "weft" in ASCII.
constexpr int64_t kApplicationId = 0x77656674;

// The schema, one step per version: step i takes a file of version i to
// version i + 1. A released step never changes; a new version adds one.
constexpr const char* kMigrations[] = {
    // Version 1: the tasks, in creation order (position), each as a
    // serialized weft.v1.Task with its plan; the state, request id and
    // owner (Task.creator: empty when weftd runs without callers) beside it
    // for queries.
    R"sql(
      CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
        WITHOUT ROWID;
      CREATE TABLE tasks(
        position INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        state INTEGER NOT NULL,
        request_id TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        task BLOB NOT NULL);
    )sql",
    // Version 2: the journal of running tasks' leaves: a row when one
    // starts (outcome NULL), its outcome (a serialized weft.v1.NodeOutcome)
    // when it ends. Dropped when the task ends or is erased. And the
    // lazy-value definitions made through the API (a serialized
    // weft.v1.CreateLazyValueRequest each), in the order they were made.
    R"sql(
      CREATE TABLE task_nodes(
        position INTEGER NOT NULL,
        node INTEGER NOT NULL,
        outcome BLOB,
        PRIMARY KEY(position, node)) WITHOUT ROWID;
      CREATE TABLE lazy_values(
        id TEXT NOT NULL UNIQUE,
        request BLOB NOT NULL);
    )sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
              SqliteTaskStore::kSchemaVersion);

constexpr char kWhatToDo[] =
    "restore it from a backup (weft admin backup), or move it away to start "
    "with an empty store; weftd never resets a store by itself";

// Why the store at `path` cannot be opened, for weftd's start-up message.
absl::Status Refused(const std::string& path, const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kDataLoss:
      return absl::DataLossError(absl::StrCat("the task store ", path,
                                              " is damaged (", s.message(),
                                              "): ", kWhatToDo));
    case absl::StatusCode::kResourceExhausted:
      return absl::ResourceExhaustedError(
          absl::StrCat("the task store ", path, " cannot grow (", s.message(),
                       "): free some disk space and start weftd again"));
    default:
      return absl::Status(
          s.code(),
          absl::StrCat("cannot use the task store ", path, ": ", s.message(),
                       "; give weftd a file it may create and write "
                       "(--store=sqlite:PATH, in a folder that exists)"));
  }
}

absl::Status Migrate(Database& db, int from, int to) {
  if (from >= to) return absl::OkStatus();
  if (absl::Status s = db.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::Status s;
  for (int v = from; v < to && s.ok(); ++v) s = db.Exec(kMigrations[v]);
  if (s.ok()) {
    s = db.Exec(absl::StrCat("PRAGMA application_id = ", kApplicationId,
                             "; PRAGMA user_version = ", to));
  }
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok()) db.Exec("ROLLBACK").IgnoreError();
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteTaskStore>> SqliteTaskStore::Open(
    const std::string& path, SqliteOptions options) {
  absl::StatusOr<std::unique_ptr<Database>> opened =
      Database::Open(path, /*create=*/true, /*busy_timeout_ms=*/2000);
  if (!opened.ok()) return Refused(path, opened.status());
  std::unique_ptr<Database> db = *std::move(opened);

  // Another weftd on the same file would interleave its writes with ours
  // and resume our tasks: the first to open it holds an exclusive flock
  // (apart from SQLite's own locks, which readers such as a backup share).
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Refused(path, absl::UnavailableError(std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the task store ", path,
          " is in use by another weftd (it holds the file's lock): stop that "
          "one first, or give this one another --store"));
    }
    return Refused(path, absl::UnavailableError(std::strerror(err)));
  }
  // From here the lock is released by the store's destructor, or below.
  auto fail = [&](absl::Status s) {
    ::close(fd);
    return s;
  };

  // A damaged header shows in the first read.
  absl::StatusOr<int64_t> app = db->QueryInt("PRAGMA application_id");
  if (!app.ok()) return fail(Refused(path, app.status()));
  absl::StatusOr<int64_t> version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return fail(Refused(path, version.status()));
  absl::StatusOr<int64_t> objects =
      db->QueryInt("SELECT count(*) FROM sqlite_master");
  if (!objects.ok()) return fail(Refused(path, objects.status()));
  if (*app != kApplicationId && (*app != 0 || *objects > 0)) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        path, " is an SQLite file but not a weft task store (application_id ",
        *app,
        "): give weftd another file (--store=sqlite:PATH); weftd never "
        "changes a file that is not its own")));
  }
  if (*version > kSchemaVersion) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "the task store ", path,
        " was written by a newer weftd (schema "
        "version ",
        *version, "; this weftd knows versions up to ", kSchemaVersion,
        "): run that newer weftd, or a store this one knows")));
  }
  if (*objects == 0) {
    // A new file: space of erased tasks can be given back only if this is
    // set before the first table.
    if (absl::Status s = db->Exec("PRAGMA auto_vacuum = INCREMENTAL");
        !s.ok()) {
      return fail(Refused(path, s));
    }
  }
  {
    absl::StatusOr<Statement*> wal = db->Prepare("PRAGMA journal_mode = WAL");
    if (!wal.ok()) return fail(Refused(path, wal.status()));
    Scope scope(*wal);
    absl::StatusOr<bool> row = (*wal)->Step();
    if (!row.ok()) return fail(Refused(path, row.status()));
    if (!*row || (*wal)->Text(0) != "wal") {
      return fail(
          Refused(path, absl::UnavailableError(absl::StrCat(
                            "it cannot be put in WAL mode (journal mode \"",
                            *row ? (*wal)->Text(0) : "", "\")"))));
    }
  }
  absl::Status set = db->Exec(options.sync == SqliteOptions::Sync::kFull
                                  ? "PRAGMA synchronous = FULL"
                                  : "PRAGMA synchronous = NORMAL");
  if (set.ok() && options.max_pages > 0) {
    set = db->Exec(absl::StrCat("PRAGMA max_page_count = ", options.max_pages));
  }
  if (!set.ok()) return fail(Refused(path, set));

  const int target =
      options.schema_version > 0 ? options.schema_version : kSchemaVersion;
  if (absl::Status s = Migrate(*db, static_cast<int>(*version), target);
      !s.ok()) {
    return fail(Refused(path, s));
  }
  // Writing now finds a file weftd cannot write (a read-only mount) at
  // start, not at the first CreateTask.
  {
    absl::StatusOr<Statement*> probe = db->Prepare(
        "INSERT INTO meta(key, value) VALUES('opened', ?1) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!probe.ok()) return fail(Refused(path, probe.status()));
    Scope scope(*probe);
    // Bound without a copy (SQLITE_STATIC): it must outlive the Run.
    const std::string now = absl::FormatTime(absl::Now());
    (*probe)->Bind(1, now);
    if (absl::Status s = (*probe)->Run(); !s.ok())
      return fail(Refused(path, s));
  }
  // Damage inside the file (not only its header) stops the start too.
  {
    absl::StatusOr<Statement*> check = db->Prepare("PRAGMA quick_check(1)");
    if (!check.ok()) return fail(Refused(path, check.status()));
    Scope scope(*check);
    absl::StatusOr<bool> row = (*check)->Step();
    if (!row.ok()) return fail(Refused(path, row.status()));
    if (*row && (*check)->Text(0) != "ok") {
      return fail(
          Refused(path, absl::DataLossError(std::string((*check)->Text(0)))));
    }
  }

  auto store = std::unique_ptr<SqliteTaskStore>(
      new SqliteTaskStore(path, options, std::move(db), fd));
  if (absl::Status s = store->Load(); !s.ok()) return Refused(path, s);
  store->StartWriter();
  return store;
}

SqliteTaskStore::SqliteTaskStore(std::string path, SqliteOptions options,
                                 std::unique_ptr<Database> db, int lock_fd)
    : path_(std::move(path)),
      options_(options),
      db_(std::move(db)),
      lock_fd_(lock_fd) {
  engine::MutexLock lock(&pages_mu_);
  max_pages_ = options.max_pages;
}

SqliteTaskStore::~SqliteTaskStore() {
  StopWriter();
  db_.reset();
  ::close(lock_fd_);  // Releases the flock.
}

absl::Status SqliteTaskStore::Load() {
  absl::StatusOr<Statement*> select =
      db_->Prepare("SELECT position, task FROM tasks ORDER BY position");
  if (!select.ok()) return select.status();
  Scope scope(*select);
  for (;;) {
    absl::StatusOr<bool> row = (*select)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const uint64_t position = static_cast<uint64_t>((*select)->Int(0));
    auto task = std::make_shared<weft::v1::Task>();
    const absl::string_view bytes = (*select)->Blob(1);
    if (!task->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        task->name().empty()) {
      return absl::DataLossError(
          absl::StrCat("the task at position ", position, " does not parse"));
    }
    LoadTask(std::move(task), position);
  }
  next_position_ = table().last_position() + 1;
  if (options_.schema_version != 0 && options_.schema_version < 2) {
    return absl::OkStatus();  // A file made for a migration test.
  }
  {
    absl::StatusOr<Statement*> lazies =
        db_->Prepare("SELECT id, request FROM lazy_values ORDER BY rowid");
    if (!lazies.ok()) return lazies.status();
    Scope scope(*lazies);
    for (;;) {
      absl::StatusOr<bool> row = (*lazies)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      LoadLazyValue(std::string((*lazies)->Text(0)),
                    std::string((*lazies)->Blob(1)));
    }
  }
  absl::StatusOr<Statement*> nodes = db_->Prepare(
      "SELECT t.name, n.node, n.outcome FROM task_nodes n "
      "JOIN tasks t ON t.position = n.position");
  if (!nodes.ok()) return nodes.status();
  Scope nodes_scope(*nodes);
  absl::flat_hash_map<std::string, NodeJournal> journals;
  for (;;) {
    absl::StatusOr<bool> row = (*nodes)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    NodeJournal& journal = journals[(*nodes)->Text(0)];
    const int32_t node = static_cast<int32_t>((*nodes)->Int(1));
    if ((*nodes)->IsNull(2)) {
      journal.started.insert(node);
      continue;
    }
    weft::v1::NodeOutcome outcome;
    const absl::string_view bytes = (*nodes)->Blob(2);
    if (!outcome.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat("node ", node, " of ",
                                              (*nodes)->Text(0),
                                              "'s journal does not parse"));
    }
    journal.ended[node] = std::move(outcome);
  }
  for (auto& [name, journal] : journals) {
    LoadJournal(name, std::move(journal));
  }
  return absl::OkStatus();
}

void SqliteTaskStore::SetMaxPages(int64_t pages) {
  engine::MutexLock lock(&pages_mu_);
  max_pages_ = pages;
  max_pages_changed_ = true;
}

absl::Status SqliteTaskStore::BeforeBatch() {
  int64_t max_pages = 0;
  {
    engine::MutexLock lock(&pages_mu_);
    if (!max_pages_changed_) return absl::OkStatus();
    max_pages_changed_ = false;
    max_pages = max_pages_;
  }
  db_->Exec(absl::StrCat("PRAGMA max_page_count = ",
                         max_pages > 0 ? max_pages : int64_t{4294967294}))
      .IgnoreError();
  return absl::OkStatus();
}

void SqliteTaskStore::AfterBatch(const Batch& batch, const absl::Status& s) {
  if (!s.ok()) return;
  for (const Op& op : batch) {
    if (op.kind == Op::Kind::kErase) ++erased_since_vacuum_;
  }
  if (erased_since_vacuum_ >= 256) VacuumSome();
}

absl::Status SqliteTaskStore::Apply(Batch& batch, Positions* positions) {
  absl::StatusOr<Statement*> begin = db_->Prepare("BEGIN IMMEDIATE");
  absl::StatusOr<Statement*> upsert = db_->Prepare(
      "INSERT INTO tasks(position, name, state, request_id, owner, task) "
      "VALUES(?1, ?2, ?3, ?4, ?6, ?5) ON CONFLICT(position) DO UPDATE SET "
      "state = excluded.state, task = excluded.task");
  absl::StatusOr<Statement*> erase =
      db_->Prepare("DELETE FROM tasks WHERE name = ?1");
  absl::StatusOr<Statement*> drop_journal =
      db_->Prepare("DELETE FROM task_nodes WHERE position = ?1");
  absl::StatusOr<Statement*> node_started = db_->Prepare(
      "INSERT OR IGNORE INTO task_nodes(position, node) VALUES(?1, ?2)");
  absl::StatusOr<Statement*> node_ended = db_->Prepare(
      "INSERT INTO task_nodes(position, node, outcome) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(position, node) DO UPDATE SET outcome = excluded.outcome");
  absl::StatusOr<Statement*> put_lazy = db_->Prepare(
      "INSERT INTO lazy_values(id, request) VALUES(?1, ?2) "
      "ON CONFLICT(id) DO UPDATE SET request = excluded.request");
  absl::StatusOr<Statement*> erase_lazy =
      db_->Prepare("DELETE FROM lazy_values WHERE id = ?1");
  absl::StatusOr<Statement*> commit = db_->Prepare("COMMIT");
  for (const auto* s : {&begin, &upsert, &erase, &drop_journal, &node_started,
                        &node_ended, &put_lazy, &erase_lazy, &commit}) {
    if (!s->ok()) return s->status();
  }
  if (absl::Status s = (*begin)->Run(); !s.ok()) {
    (*begin)->Reset();
    return s;
  }
  (*begin)->Reset();
  // Positions as the batch goes: a task erased in it and written again is
  // new (0: erased in this batch).
  absl::flat_hash_map<std::string, uint64_t> seen;
  absl::Status s;
  std::string bytes;
  // Where `name` is as the batch goes (0: nowhere).
  auto position_of = [&](const std::string& name) -> uint64_t {
    auto it = seen.find(name);
    return it != seen.end() ? it->second : table().PositionOf(name);
  };
  for (const Op& op : batch) {
    if (op.kind == Op::Kind::kResetLazy) continue;  // Not shared.
    if (op.kind == Op::Kind::kPutLazy) {
      Scope scope(*put_lazy);
      s = (*put_lazy)->Bind(1, op.name).BindBlob(2, op.bytes).Run();
    } else if (op.kind == Op::Kind::kEraseLazy) {
      Scope scope(*erase_lazy);
      s = (*erase_lazy)->Bind(1, op.name).Run();
    } else if (op.kind == Op::Kind::kJournal) {
      const uint64_t position = position_of(op.name);
      if (position == 0) continue;  // Erased meanwhile: nothing to keep.
      if (op.outcome == nullptr) {
        Scope scope(*node_started);
        s = (*node_started)
                ->Bind(1, static_cast<int64_t>(position))
                .Bind(2, int64_t{op.node})
                .Run();
      } else {
        bytes.clear();
        op.outcome->SerializeToString(&bytes);
        Scope scope(*node_ended);
        s = (*node_ended)
                ->Bind(1, static_cast<int64_t>(position))
                .Bind(2, int64_t{op.node})
                .BindBlob(3, bytes)
                .Run();
      }
    } else if (op.kind == Op::Kind::kErase) {
      if (const uint64_t position = position_of(op.name); position != 0) {
        Scope scope(*drop_journal);
        s = (*drop_journal)->Bind(1, static_cast<int64_t>(position)).Run();
      }
      if (s.ok()) {
        Scope scope(*erase);
        s = (*erase)->Bind(1, op.name).Run();
      }
      seen[op.name] = 0;
      positions->erase(op.name);
    } else {
      uint64_t position = position_of(op.name);
      if (position == 0) {
        position = next_position_++;
        (*positions)[op.name] = position;
      }
      seen[op.name] = position;
      bytes.clear();
      if (!op.task->SerializeToString(&bytes)) {
        s = absl::InvalidArgumentError(
            absl::StrCat(op.name, " does not serialize"));
      } else {
        Scope scope(*upsert);
        s = (*upsert)
                ->Bind(1, static_cast<int64_t>(position))
                .Bind(2, op.name)
                .Bind(3, static_cast<int64_t>(op.task->state()))
                .Bind(4, op.task->request_id())
                .BindBlob(5, bytes)
                .Bind(6, op.task->creator())
                .Run();
      }
      const weft::v1::TaskState state = op.task->state();
      if (s.ok() && state != weft::v1::TASK_STATE_QUEUED &&
          state != weft::v1::TASK_STATE_RUNNING) {
        // Its outcome holds what the journal did.
        Scope scope(*drop_journal);
        s = (*drop_journal)->Bind(1, static_cast<int64_t>(position)).Run();
      }
    }
    if (!s.ok()) break;
  }
  if (s.ok()) {
    s = (*commit)->Run();
    (*commit)->Reset();
  }
  if (!s.ok()) {
    // Nothing of the batch is applied. (A failed COMMIT may have rolled
    // back already; ROLLBACK then fails harmlessly.)
    db_->Exec("ROLLBACK").IgnoreError();
    positions->clear();
  }
  return s;
}

void SqliteTaskStore::VacuumSome() {
  erased_since_vacuum_ = 0;
  absl::StatusOr<int64_t> free_pages = db_->QueryInt("PRAGMA freelist_count");
  if (!free_pages.ok() || *free_pages < 64) return;
  // A few thousand pages at a time, so that writes waiting behind it do
  // not wait long; the next erasures free the rest.
  db_->Exec("PRAGMA incremental_vacuum(4096)").IgnoreError();
}

absl::StatusOr<std::string> SqliteTaskStore::BackupToNewFile() const {
  std::string path = path_ + ".backup-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create a file beside ", path_, ": ", std::strerror(errno)));
  }
  ::close(fd);
  if (absl::Status s = Backup(path); !s.ok()) {
    ::unlink(path.c_str());
    return s;
  }
  return path;
}

absl::Status SqliteTaskStore::Backup(const std::string& path) const {
  sqlite3* source = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &source,
                           SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = sqlite::Error(rc, absl::StrCat("cannot read ", path_),
                                   sqlite3_errmsg(source));
    sqlite3_close(source);
    return s;
  }
  sqlite3_busy_timeout(source, 5000);
  absl::StatusOr<std::unique_ptr<Database>> dest =
      Database::Open(path, /*create=*/true, /*busy_timeout_ms=*/5000);
  if (!dest.ok()) {
    sqlite3_close(source);
    return dest.status();
  }
  sqlite3_backup* backup =
      sqlite3_backup_init((*dest)->raw(), "main", source, "main");
  absl::Status s;
  if (backup == nullptr) {
    s = (*dest)->LastError(sqlite3_errcode((*dest)->raw()),
                           absl::StrCat("cannot back up to ", path));
  } else {
    // All pages in one step: one read transaction, one consistent copy.
    rc = sqlite3_backup_step(backup, -1);
    const int finished = sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE) {
      s = sqlite::Error(rc, absl::StrCat("backing up to ", path),
                        sqlite3_errstr(rc));
    } else if (finished != SQLITE_OK) {
      s = (*dest)->LastError(finished, absl::StrCat("backing up to ", path));
    }
  }
  sqlite3_close(source);
  return s;
}

}  // namespace weft::store
