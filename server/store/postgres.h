// A small RAII layer over libpq, PostgreSQL's C client: a connection that
// closes itself, results that free themselves, parameters sent apart from
// the SQL (text, or binary for BYTEA), and errors as absl::Status mapped from
// the SQLSTATE to a code a caller can act on (a lost connection or a server
// shutting down is UNAVAILABLE, a unique violation ALREADY_EXISTS, a full
// disk RESOURCE_EXHAUSTED, a serialization failure ABORTED, a refused login
// PERMISSION_DENIED).
//
// Messages never hold a password: RedactConninfo shows a connection string
// without one, and RedactMessage takes it out of libpq's own messages.
//
// Thread-safety: a Connection belongs to one thread at a time; a Pool lends
// connections to many.

#ifndef WEFT_SERVER_STORE_POSTGRES_H_
#define WEFT_SERVER_STORE_POSTGRES_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"

struct pg_conn;
struct pg_result;

namespace weft::store::pg {

// `conninfo` (a postgres:// URI or key=value pairs) with any password
// replaced by "***", for messages and logs.
std::string RedactConninfo(absl::string_view conninfo);
// `message` with every password `conninfo` holds (as given, as libpq
// percent-decodes it, unquoted) replaced by "***": for libpq's own
// messages, which may quote the conninfo.
std::string RedactMessage(absl::string_view conninfo,
                          absl::string_view message);

// The status for SQLSTATE `sqlstate` ("" when unknown), with `message`.
absl::Status FromSqlState(absl::string_view sqlstate, std::string message);

// A query parameter: text (an integer is sent as its decimal text), bytes
// (sent in binary, for BYTEA) or NULL. It refers to what it was made from,
// which must outlive the query.
class Param {
 public:
  // Copied (libpq reads text to its NUL).
  static Param Text(absl::string_view text);
  static Param Bytes(absl::string_view bytes) { return Param(bytes, true); }
  static Param Int(int64_t value);
  static Param Null() { return Param(); }

  // nullptr only for NULL (libpq sends a null pointer as NULL).
  const char* data() const {
    if (null_) return nullptr;
    if (owns_) return owned_.c_str();
    return value_.data() != nullptr ? value_.data() : "";
  }
  int size() const {
    return static_cast<int>(owns_ ? owned_.size() : value_.size());
  }
  bool binary() const { return binary_; }

 private:
  Param() : null_(true) {}
  Param(absl::string_view value, bool binary)
      : value_(value), binary_(binary) {}

  std::string owned_;  // An integer's text (owns_).
  bool owns_ = false;
  absl::string_view value_;
  bool binary_ = false;
  bool null_ = false;
};

// The rows a query returned (columns in binary: BYTEA as its bytes, BIGINT
// and INTEGER as big-endian integers).
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result);
  Result(Result&& other) noexcept;
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const;
  bool IsNull(int row, int column) const;
  // A BIGINT or INTEGER column.
  int64_t Int(int row, int column) const;
  // A TEXT or BYTEA column; the view lasts as long as the Result.
  absl::string_view Bytes(int row, int column) const;

 private:
  pg_result* result_ = nullptr;
};

class Connection {
 public:
  // Connects to `conninfo` within `connect_timeout_s` seconds, then runs
  // `setup` (SET statements for the session; again after a Reconnect). The
  // error names the server as RedactConninfo shows it.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& conninfo, int connect_timeout_s = 10,
      std::string setup = "");
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs `sql` (one or more statements, no parameters, no rows wanted).
  absl::Status Exec(absl::string_view sql);
  // Runs one statement with `params` ($1, $2, ...); its rows in binary.
  absl::StatusOr<Result> Query(absl::string_view sql,
                               std::initializer_list<Param> params = {});

  // Whether the connection still stands (false after the server went away).
  bool ok() const;

  // A notification from NOTIFY on a channel this session LISTENs to.
  struct Notification {
    std::string channel;
    std::string payload;
  };
  // The socket to wait on (poll(2) for reading) for notifications; -1 when
  // the connection is down.
  int socket() const;
  // Reads what the server sent without waiting, and returns the
  // notifications received so far; UNAVAILABLE when the connection broke.
  absl::StatusOr<std::vector<Notification>> Notifications();
  // Connects again after a loss.
  absl::Status Reconnect();

 private:
  Connection(pg_conn* conn, std::string setup)
      : conn_(conn), setup_(std::move(setup)) {}
  absl::Status StatusOf(pg_result* result, absl::string_view sql) const;

  pg_conn* conn_;
  const std::string setup_;
};

// Connections to one server shared by threads: a caller takes one for a
// few statements and gives it back when its Lease goes. A connection found
// broken is connected again before it is lent. At most `size` exist; a
// caller waits (up to `wait`) while all are lent.
//
// Thread-safety: thread-safe.
class Pool {
 public:
  // `setup` as for Connection::Open, on each connection.
  Pool(std::string conninfo, int size, std::string setup = "",
       absl::Duration wait = absl::Seconds(10))
      : conninfo_(std::move(conninfo)),
        size_(size),
        setup_(std::move(setup)),
        wait_(wait) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // A connection, or UNAVAILABLE when none can be made or freed in time.
  absl::StatusOr<Lease> Take();
  // Connections made so far and not closed.
  int open() const;

 private:
  void Give(std::unique_ptr<Connection> conn);

  const std::string conninfo_;
  const int size_;
  const std::string setup_;
  const absl::Duration wait_;
  mutable engine::Mutex mu_;
  engine::CondVar freed_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace weft::store::pg

#endif  // WEFT_SERVER_STORE_POSTGRES_H_
