// A small RAII layer over SQLite's C API: a connection that closes itself,
// and prepared statements it caches by their text, reset after each use.
// Errors come back as absl::Status with SQLite's own message, mapped to the
// code a caller can act on (SQLITE_FULL is RESOURCE_EXHAUSTED, a damaged
// file DATA_LOSS, a busy or unwritable one UNAVAILABLE).
//
// Thread-safety: none. A Database and its statements belong to one thread
// at a time (the store's writer, or the thread opening it).

#ifndef WEFT_SERVER_STORE_SQLITE_H_
#define WEFT_SERVER_STORE_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace weft::store::sqlite {

// The status for SQLite result code `rc` (an extended code is fine), with
// `what` and SQLite's message.
absl::Status Error(int rc, absl::string_view what, absl::string_view message);

class Database;

// A prepared statement of a Database, reset (and its bindings cleared) when
// its Scope ends.
class Statement {
 public:
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters count from 1, as in SQL's ?1.
  Statement& Bind(int i, int64_t value);
  Statement& Bind(int i, absl::string_view text);
  Statement& BindBlob(int i, absl::string_view bytes);
  Statement& BindNull(int i);

  // true when a row is ready to read, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to the end (for statements that return no rows).
  absl::Status Run();

  // Columns count from 0. The views last until the next Step or Reset.
  int64_t Int(int column) const;
  absl::string_view Text(int column) const;
  absl::string_view Blob(int column) const;
  bool IsNull(int column) const;

  void Reset();

 private:
  friend class Database;
  Statement(Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  Database* db_;
  sqlite3_stmt* stmt_;
  bool bind_failed_ = false;
};

class Database {
 public:
  // Opens (creating it if `create`) the database file at `path`. The
  // connection waits up to `busy_timeout_ms` for another's lock.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        bool create,
                                                        int busy_timeout_ms);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs one or more statements that return no rows.
  absl::Status Exec(absl::string_view sql);
  // The statement for `sql`, prepared once and cached; reset it (or use a
  // Scope) when done.
  absl::StatusOr<Statement*> Prepare(absl::string_view sql);
  // One integer from a statement returning one row (a PRAGMA, a count).
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql);

  // The status for the last error on this connection.
  absl::Status LastError(int rc, absl::string_view what) const;
  const std::string& path() const { return path_; }
  sqlite3* raw() { return db_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  const std::string path_;
  absl::flat_hash_map<std::string, std::unique_ptr<Statement>> statements_;
};

// Resets a statement when it goes out of scope.
class Scope {
 public:
  explicit Scope(Statement* s) : s_(s) {}
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  ~Scope() { s_->Reset(); }

 private:
  Statement* s_;
};

}  // namespace weft::store::sqlite

#endif  // WEFT_SERVER_STORE_SQLITE_H_
