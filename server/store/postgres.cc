#include "server/store/postgres.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace weft::store::pg {

namespace {

bool IsSpace(char c) {
  return absl::ascii_isspace(static_cast<unsigned char>(c));
}

// Whether `s` starts with a URI scheme and "://" (any scheme: a mistyped one
// is quoted in errors too).
bool IsUri(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  size_t i = 1;
  while (i < s.size() &&
         (absl::ascii_isalnum(static_cast<unsigned char>(s[i])) ||
          s[i] == '+' || s[i] == '.' || s[i] == '-')) {
    ++i;
  }
  return absl::StartsWith(s.substr(i), "://");
}

// %XX decoded where it is well formed (the rest kept), as libpq decodes a
// URI's parts.
std::string PercentDecoded(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      auto hex = [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c))
                   ? c - '0'
                   : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' +
                         10;
      };
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Replaces out[from, to) with "***", keeping what it held in `secrets`.
void Hide(std::string& out, size_t from, size_t to,
          std::vector<std::string>* secrets) {
  if (to <= from) return;
  secrets->push_back(out.substr(from, to - from));
  out.replace(from, to - from, "***");
}

std::string Redact(absl::string_view conninfo,
                   std::vector<std::string>* secrets) {
  std::string out(conninfo);
  if (IsUri(out)) {
    // scheme://user:password@host...: libpq ends the user part at the last
    // '@' before the query; hide from the first ':' after the scheme to
    // it (a password may hold '@', ':' or '/': hiding more is fine).
    const size_t start = out.find("://") + 3;
    size_t query = out.find('?', start);
    if (query == std::string::npos) query = out.size();
    const size_t at = out.rfind('@', query == 0 ? 0 : query - 1);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) {
        Hide(out, colon + 1, at, secrets);
      }
    }
    // ...and a password=... query parameter.
    query = out.find('?', start);
    for (size_t p = query; p != std::string::npos && p < out.size();) {
      const size_t key = p + 1;
      size_t end = out.find('&', key);
      if (end == std::string::npos) end = out.size();
      if (absl::StartsWith(absl::string_view(out).substr(key), "password=")) {
        Hide(out, key + 9, end, secrets);
        end = key + 9 + 3;
      }
      p = end < out.size() ? end : std::string::npos;
    }
    return out;
  }
  // key = value pairs, as libpq reads them: a value is quoted ('...', with
  // \ escapes) or runs to the next space (with \ escapes).
  size_t i = 0;
  while (i < out.size()) {
    while (i < out.size() && IsSpace(out[i])) ++i;
    const size_t key_start = i;
    while (i < out.size() && !IsSpace(out[i]) && out[i] != '=') ++i;
    const std::string key = out.substr(key_start, i - key_start);
    while (i < out.size() && IsSpace(out[i])) ++i;
    if (i >= out.size() || out[i] != '=') {
      if (i == key_start) ++i;  // Not a key: step on.
      continue;
    }
    ++i;  // '='
    while (i < out.size() && IsSpace(out[i])) ++i;
    const size_t value_start = i;
    if (i < out.size() && out[i] == '\'') {
      ++i;
      while (i < out.size() && out[i] != '\'') i += out[i] == '\\' ? 2 : 1;
      i = std::min(i + 1, out.size());
    } else {
      while (i < out.size() && !IsSpace(out[i])) i += out[i] == '\\' ? 2 : 1;
      i = std::min(i, out.size());
    }
    if (key == "password") {
      Hide(out, value_start, i, secrets);
      i = value_start + 3;
    }
  }
  return out;
}

}  // namespace

std::string RedactConninfo(absl::string_view conninfo) {
  std::vector<std::string> secrets;
  return Redact(conninfo, &secrets);
}

std::string RedactMessage(absl::string_view conninfo,
                          absl::string_view message) {
  std::vector<std::string> secrets;
  Redact(conninfo, &secrets);
  std::string out(message);
  for (const std::string& secret : secrets) {
    // As given, as libpq decodes it, and without the quotes of a quoted one.
    std::string forms[] = {secret, PercentDecoded(secret), secret};
    if (forms[2].size() >= 2 && forms[2].front() == '\'' &&
        forms[2].back() == '\'') {
      forms[2] = forms[2].substr(1, forms[2].size() - 2);
    }
    for (const std::string& form : forms) {
      if (form.empty()) continue;
      for (size_t p = out.find(form); p != std::string::npos;
           p = out.find(form, p + 3)) {
        out.replace(p, form.size(), "***");
      }
    }
  }
  return out;
}

absl::Status FromSqlState(absl::string_view sqlstate, std::string message) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (sqlstate == "23505") {
    code = absl::StatusCode::kAlreadyExists;
  } else if (absl::StartsWith(sqlstate, "08") ||
             absl::StartsWith(sqlstate, "57P") || sqlstate == "53300" ||
             sqlstate == "57014" || sqlstate == "55P03" ||
             sqlstate == "25006") {
    // Connection exceptions, the server shutting down or starting, too many
    // connections, a statement or lock timeout, a server that is read-only
    // (a standby, during a failover): another try may succeed.
    code = absl::StatusCode::kUnavailable;
  } else if (absl::StartsWith(sqlstate, "53")) {
    code = absl::StatusCode::kResourceExhausted;  // Disk full, out of memory.
  } else if (absl::StartsWith(sqlstate, "40")) {
    code = absl::StatusCode::kAborted;  // Serialization failure, deadlock.
  } else if (absl::StartsWith(sqlstate, "28") || sqlstate == "42501") {
    code = absl::StatusCode::kPermissionDenied;
  } else if (absl::StartsWith(sqlstate, "XX001") ||
             absl::StartsWith(sqlstate, "XX002")) {
    code = absl::StatusCode::kDataLoss;
  }
  return absl::Status(code, std::move(message));
}

Param Param::Text(absl::string_view text) {
  // Owned: libpq reads a text parameter to its NUL, not by its length.
  Param p(absl::string_view(), false);
  p.owned_ = std::string(text);
  p.owns_ = true;
  return p;
}

Param Param::Int(int64_t value) {
  Param p(absl::string_view(), false);
  p.owned_ = absl::StrCat(value);
  p.owns_ = true;
  return p;
}

Result::Result(pg_result* result) : result_(result) {}

Result::Result(Result&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)) {}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}

int Result::rows() const { return result_ == nullptr ? 0 : PQntuples(result_); }

bool Result::IsNull(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

int64_t Result::Int(int row, int column) const {
  const auto* bytes =
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, column));
  const int n = PQgetlength(result_, row, column);
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | bytes[i];
  // Sign-extend a 4-byte INTEGER.
  if (n == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}

absl::string_view Result::Bytes(int row, int column) const {
  return absl::string_view(PQgetvalue(result_, row, column),
                           PQgetlength(result_, row, column));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& conninfo, int connect_timeout_s, std::string setup) {
  // Defaults the caller's conninfo (expanded from dbname, after them) may
  // override: weftd's name in pg_stat_activity; a connect timeout (unless
  // PGCONNECT_TIMEOUT sets one: an entry here would beat it); TCP
  // keepalives and a user timeout, so that a connection the network lost
  // without a word (a failover with no RST) fails in about a minute rather
  // than holding the writer forever.
  const std::string timeout = absl::StrCat(connect_timeout_s);
  std::vector<const char*> keys = {
      "fallback_application_name", "keepalives",       "keepalives_idle",
      "keepalives_interval",       "keepalives_count", "tcp_user_timeout"};
  std::vector<const char*> values = {"weftd", "1", "30", "10", "3", "60000"};
  if (std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    keys.push_back("connect_timeout");
    values.push_back(timeout.c_str());
  }
  keys.push_back("dbname");
  values.push_back(conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* conn =
      PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError(
        "libpq could not allocate a connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message may quote the conninfo, or a part of it (a URI it
    // took for a database name, a password it could not decode).
    std::string why = RedactMessage(
        conninfo, absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    // A refused login and an unreachable server read alike to libpq
    // (no SQLSTATE before a session exists): tell them apart by the text.
    const bool login = absl::StrContains(why, "password authentication") ||
                       absl::StrContains(why, "no pg_hba.conf entry") ||
                       absl::StrContains(why, "role \"");
    return absl::Status(login ? absl::StatusCode::kPermissionDenied
                              : absl::StatusCode::kUnavailable,
                        absl::StrCat("cannot connect to PostgreSQL at ",
                                     RedactConninfo(conninfo), ": ", why));
  }
  // The server's notices ("... already exists, skipping") are not for
  // weftd's log: libpq would print each on stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  auto connection =
      std::unique_ptr<Connection>(new Connection(conn, std::move(setup)));
  if (!connection->setup_.empty()) {
    if (absl::Status s = connection->Exec(connection->setup_); !s.ok()) {
      return s;
    }
  }
  return connection;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

int Connection::socket() const { return PQsocket(conn_); }

absl::StatusOr<std::vector<Connection::Notification>>
Connection::Notifications() {
  if (PQconsumeInput(conn_) == 0) {
    return absl::UnavailableError(absl::StrCat(
        "lost the connection to PostgreSQL: ",
        absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_))));
  }
  std::vector<Notification> out;
  while (PGnotify* notify = PQnotifies(conn_)) {
    out.push_back({notify->relname, notify->extra});
    PQfreemem(notify);
  }
  return out;
}

absl::Status Connection::Reconnect() {
  PQreset(conn_);
  if (ok()) return setup_.empty() ? absl::OkStatus() : Exec(setup_);
  return absl::UnavailableError(
      absl::StrCat("cannot reconnect to PostgreSQL: ",
                   absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_))));
}

absl::Status Connection::StatusOf(pg_result* result,
                                  absl::string_view sql) const {
  const ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return absl::OkStatus();
  }
  const char* state = result == nullptr
                          ? nullptr
                          : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string message(absl::StripTrailingAsciiWhitespace(
      result != nullptr ? PQresultErrorMessage(result)
                        : PQerrorMessage(conn_)));
  if (message.empty()) {
    message =
        std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
  }
  // No SQLSTATE and a broken connection: the server went away.
  if (state == nullptr && !ok()) {
    return absl::UnavailableError(
        absl::StrCat("lost the connection to PostgreSQL: ", message));
  }
  absl::string_view first = sql.substr(0, sql.find_first_of(" \n("));
  return FromSqlState(state == nullptr ? "" : state,
                      absl::StrCat("PostgreSQL ", first, ": ", message));
}

absl::Status Connection::Exec(absl::string_view sql) {
  const std::string text(sql);
  pg_result* raw = PQexec(conn_, text.c_str());
  Result result(raw);  // Freed on return.
  return StatusOf(raw, sql);
}

absl::StatusOr<Result> Connection::Query(absl::string_view sql,
                                         std::initializer_list<Param> params) {
  const std::string text(sql);
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  values.reserve(params.size());
  lengths.reserve(params.size());
  formats.reserve(params.size());
  for (const Param& p : params) {
    values.push_back(p.data());
    lengths.push_back(p.size());
    formats.push_back(p.binary() ? 1 : 0);
  }
  pg_result* raw = PQexecParams(
      conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
      values.data(), lengths.data(), formats.data(), /*resultFormat=*/1);
  Result result(raw);
  if (absl::Status s = StatusOf(raw, sql); !s.ok()) return s;
  return result;
}

Pool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Give(std::move(conn_));
}

absl::StatusOr<Pool::Lease> Pool::Take() {
  std::unique_ptr<Connection> conn;
  {
    const absl::Time deadline = absl::Now() + wait_;
    engine::MutexLock lock(&mu_);
    while (idle_.empty() && open_ >= size_) {
      if (!freed_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) {
        return absl::UnavailableError(absl::StrCat(
            "all ", size_, " connections to PostgreSQL stayed busy for ",
            absl::FormatDuration(wait_)));
      }
    }
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++open_;  // Made below, outside the lock.
    }
  }
  if (conn != nullptr && !conn->ok()) {
    if (absl::Status s = conn->Reconnect(); !s.ok()) {
      Give(nullptr);
      return s;
    }
  }
  if (conn == nullptr) {
    absl::StatusOr<std::unique_ptr<Connection>> made =
        Connection::Open(conninfo_, 10, setup_);
    if (!made.ok()) {
      Give(nullptr);
      return made.status();
    }
    conn = *std::move(made);
  }
  return Lease(this, std::move(conn));
}

void Pool::Give(std::unique_ptr<Connection> conn) {
  engine::MutexLock lock(&mu_);
  if (conn == nullptr) {
    --open_;  // One that could not be made, or was dropped.
  } else {
    idle_.push_back(std::move(conn));
  }
  freed_.Signal();
}

int Pool::open() const {
  engine::MutexLock lock(&mu_);
  return open_;
}

}  // namespace weft::store::pg
