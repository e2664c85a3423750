#include "server/store/sqlite.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace weft::store::sqlite {

absl::Status Error(int rc, absl::string_view what, absl::string_view message) {
  const std::string text = absl::StrCat(what, ": ", message);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PERM:
      return absl::UnavailableError(text);
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return absl::InvalidArgumentError(text);
    default:
      return absl::InternalError(text);
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int i, int64_t value) {
  if (sqlite3_bind_int64(stmt_, i, value) != SQLITE_OK) bind_failed_ = true;
  return *this;
}

Statement& Statement::Bind(int i, absl::string_view text) {
  if (sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_STATIC,
                          SQLITE_UTF8) != SQLITE_OK) {
    bind_failed_ = true;
  }
  return *this;
}

Statement& Statement::BindBlob(int i, absl::string_view bytes) {
  // A zero-length blob, not NULL, for an empty message.
  if (sqlite3_bind_blob64(stmt_, i, bytes.empty() ? "" : bytes.data(),
                          bytes.size(), SQLITE_STATIC) != SQLITE_OK) {
    bind_failed_ = true;
  }
  return *this;
}

Statement& Statement::BindNull(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) bind_failed_ = true;
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_failed_) {
    return absl::InternalError(
        absl::StrCat("binding a parameter of \"", sqlite3_sql(stmt_),
                     "\" failed: ", sqlite3_errmsg(sqlite3_db_handle(stmt_))));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->LastError(rc, sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

absl::string_view Statement::Text(int column) const {
  const auto* p =
      reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return p == nullptr
             ? absl::string_view()
             : absl::string_view(
                   p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

absl::string_view Statement::Blob(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return p == nullptr
             ? absl::string_view()
             : absl::string_view(
                   p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_failed_ = false;
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const std::string& path, bool create, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s =
        Error(rc, absl::StrCat("cannot open ", path),
              db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  return std::unique_ptr<Database>(new Database(db, path));
}

Database::~Database() {
  statements_.clear();  // Finalized before the connection closes.
  sqlite3_close(db_);
}

absl::Status Database::Exec(absl::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status s = Error(rc, text, message != nullptr ? message : "");
  sqlite3_free(message);
  return s;
}

absl::StatusOr<Statement*> Database::Prepare(absl::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second.get();
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return LastError(rc, sql);
  auto [pos, inserted] = statements_.emplace(
      std::string(sql), std::unique_ptr<Statement>(new Statement(this, stmt)));
  return pos->second.get();
}

absl::StatusOr<int64_t> Database::QueryInt(absl::string_view sql) {
  absl::StatusOr<Statement*> s = Prepare(sql);
  if (!s.ok()) return s.status();
  Scope scope(*s);
  absl::StatusOr<bool> row = (*s)->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::InternalError(absl::StrCat("\"", sql, "\" returned no row"));
  }
  return (*s)->Int(0);
}

absl::Status Database::LastError(int rc, absl::string_view what) const {
  return Error(rc, what, sqlite3_errmsg(db_));
}

}  // namespace weft::store::sqlite
