#include "server/store/postgres.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace weft::store::pg {

std::string RedactConninfo(absl::string_view conninfo) {
  std::string out(conninfo);
  // A URI (any scheme: a mistyped one is quoted in errors too).
  if (out.find("://") != std::string::npos) {
    // scheme://user:password@host...: the password is between the first
    // ':' after the scheme and the '@' of the authority.
    const size_t start = out.find("://") + 3;
    const size_t at = out.find('@', start);
    const size_t slash = out.find('/', start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
    // ...and a password=... query parameter.
    const size_t query = out.find('?');
    if (query != std::string::npos) {
      size_t p = out.find("password=", query);
      while (p != std::string::npos) {
        const size_t end = out.find('&', p);
        out.replace(p + 9,
                    (end == std::string::npos ? out.size() : end) - p - 9,
                    "***");
        p = out.find("password=", p + 12);
      }
    }
    return out;
  }
  // key=value pairs: password=... up to the next space (or quoted).
  size_t p = out.find("password");
  while (p != std::string::npos) {
    size_t eq = out.find_first_not_of(' ', p + 8);
    if (eq == std::string::npos || out[eq] != '=') {
      p = out.find("password", p + 8);
      continue;
    }
    size_t v = out.find_first_not_of(' ', eq + 1);
    if (v == std::string::npos) break;
    size_t end;
    if (out[v] == '\'') {
      end = v + 1;
      while (end < out.size() && out[end] != '\'') {
        end += out[end] == '\\' ? 2 : 1;
      }
      end = std::min(end + 1, out.size());
    } else {
      end = out.find(' ', v);
      if (end == std::string::npos) end = out.size();
    }
    out.replace(v, end - v, "***");
    p = out.find("password", v + 3);
  }
  return out;
}

absl::Status FromSqlState(absl::string_view sqlstate, std::string message) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (sqlstate == "23505") {
    code = absl::StatusCode::kAlreadyExists;
  } else if (absl::StartsWith(sqlstate, "08") ||
             absl::StartsWith(sqlstate, "57P") || sqlstate == "53300") {
    // Connection exceptions, the server shutting down or starting, too many
    // connections: another try may succeed.
    code = absl::StatusCode::kUnavailable;
  } else if (absl::StartsWith(sqlstate, "53")) {
    code = absl::StatusCode::kResourceExhausted;  // Disk full, out of memory.
  } else if (absl::StartsWith(sqlstate, "40")) {
    code = absl::StatusCode::kAborted;  // Serialization failure, deadlock.
  } else if (absl::StartsWith(sqlstate, "28") || sqlstate == "42501") {
    code = absl::StatusCode::kPermissionDenied;
  } else if (sqlstate == "25006") {
    code = absl::StatusCode::kFailedPrecondition;  // A read-only server.
  } else if (absl::StartsWith(sqlstate, "XX001") ||
             absl::StartsWith(sqlstate, "XX002")) {
    code = absl::StatusCode::kDataLoss;
  }
  return absl::Status(code, std::move(message));
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
    const std::string& conninfo, int connect_timeout_s) {
  // A connect timeout and weftd's name in pg_stat_activity, unless the
  // caller's conninfo (expanded from dbname, after them) sets its own.
  const std::string timeout = absl::StrCat(connect_timeout_s);
  const char* keys[] = {"connect_timeout", "application_name", "dbname",
                        nullptr};
  const char* values[] = {timeout.c_str(), "weftd", conninfo.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError(
        "libpq could not allocate a connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
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
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

absl::Status Connection::Reconnect() {
  PQreset(conn_);
  if (ok()) return absl::OkStatus();
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

}  // namespace weft::store::pg
