#include "server/weftd/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/duration.h"
#include "server/common/proto_time.h"
#include "server/common/text.h"
#include "server/handlers/json.h"

namespace weft::weftd {

namespace {

// A config holds lazy values' plans, which nest up to 256 plan levels.
constexpr int kConfigJsonDepth = 1000;

// "lazy_values[0].lazy_value.ttl" as the file writes it:
// "lazyValues[0].lazyValue.ttl".
std::string JsonPath(absl::string_view path) {
  std::string out;
  bool upper = false;
  for (char c : path) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? absl::ascii_toupper(static_cast<unsigned char>(c)) : c;
    upper = false;
  }
  return out;
}

// What protobuf says of a bad value, in words.
std::string ValueProblem(absl::string_view what) {
  if (absl::StrContains(what, "Duration value exceeds limits")) {
    return "the duration is out of range";
  }
  if (absl::StrContains(what, "duration")) {
    return "expected a duration like \"1.5s\"";
  }
  const size_t type = what.rfind(" for type ");
  if (absl::StartsWith(what, "invalid value ") &&
      type != absl::string_view::npos) {
    const absl::string_view value = what.substr(
        sizeof("invalid value ") - 1, type - (sizeof("invalid value ") - 1));
    const absl::string_view t = what.substr(type + sizeof(" for type ") - 1);
    std::string expected = absl::StrCat("a value of type ", t);
    if (t == "TYPE_INT32" || t == "TYPE_INT64") expected = "a whole number";
    if (t == "TYPE_STRING") expected = "a string";
    if (t == "TYPE_BOOL") expected = "true or false";
    return absl::StrCat("expected ", expected, ", got ",
                        common::Abbreviate(value, 64));
  }
  return common::Abbreviate(what, 200);
}

// protobuf's JSON error, told the way weftd tells errors: the field first
// (as the file names it), on one line, without the part of the file
// protobuf quotes after it.
std::string CleanJsonError(absl::string_view m) {
  m = m.substr(0, m.find('\n'));
  m = absl::StripAsciiWhitespace(m);
  if (absl::ConsumePrefix(&m, ": ")) m = absl::StripLeadingAsciiWhitespace(m);
  // "oneof field '_x' is already set. Cannot set 'x' for type oneof"
  if (const size_t at = m.find("Cannot set '");
      at != absl::string_view::npos && absl::StrContains(m, "oneof")) {
    absl::string_view field = m.substr(at + sizeof("Cannot set '") - 1);
    field = field.substr(0, field.find('\''));
    return absl::StrCat(JsonPath(field),
                        ": given more than once (perhaps both as camelCase "
                        "and as snake_case)");
  }
  if (absl::StrContains(m, "transcoder produced invalid protobuf output")) {
    return "nested more deeply than protobuf's JSON reader accepts (about "
           "100 levels of objects)";
  }
  // "(a.b): invalid value 5 for type TYPE_STRING" -> "a.b: invalid ..."
  if (absl::StartsWith(m, "(")) {
    const size_t close = m.find("): ");
    if (close != absl::string_view::npos) {
      return absl::StrCat(JsonPath(m.substr(1, close - 1)), ": ",
                          ValueProblem(m.substr(close + 3)));
    }
  }
  return common::Abbreviate(m, 300);
}

struct IntRange {
  const char* flag;
  int64_t min;
  int64_t max;
};

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

constexpr IntRange kIntRanges[] = {
    {"max_plan_nodes", 1, 1'000'000},
    {"max_map_items", 0, 1'000'000},
    {"max_plan_depth", 1, 41},
    {"max_value_depth", 1, 27},
    {"max_message_bytes", 1024, kGiB},
    {"max_outcome_bytes", 1024, kGiB},
    {"max_active_runs", 1, 1'000'000},
    {"event_loop_threads", 1, 64},
    {"max_running_tasks", 1, 100'000},
    {"max_queued_tasks", 0, 10'000'000},
    {"max_running_tasks_per_principal", 1, 100'000},
    {"max_queued_tasks_per_principal", 0, 10'000'000},
    {"max_runs_per_principal", 1, 1'000'000},
    {"http_max_connections_per_host", 0, 100'000},
    {"max_retained_tasks", 1, 10'000'000},
    {"max_lazy_values", 1, 1'000'000},
    {"max_inflight_bytes", kMiB, 1024 * kGiB},
    {"max_retained_task_bytes", kMiB, 1024 * kGiB},
    {"max_lazy_bytes", kMiB, 1024 * kGiB},
    {"plan_cache_bytes", 0, kGiB},
};

struct DurationRange {
  const char* flag;
  bool zero_allowed;
  absl::Duration max;
};

constexpr absl::Duration kYear = absl::Hours(24 * 366);

const DurationRange kDurationRanges[] = {
    {"max_run_duration", false, kYear},
    {"shutdown_grace", true, absl::Hours(1)},
    {"task_retention", false, kYear},
    {"max_task_duration", false, kYear},
    {"lazy_compute_timeout", false, kYear},
};

bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status ParseJsonFile(absl::string_view json,
                           google::protobuf::Message* message) {
  absl::ConsumePrefix(&json, "\xEF\xBB\xBF");  // A UTF-8 byte order mark.
  // The syntax first, with weft's own parser: it says where, and never
  // quotes the file back.
  absl::StatusOr<google::protobuf::Value> syntax =
      handlers::ParseJson(json, kConfigJsonDepth);
  if (!syntax.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", syntax.status().message()));
  }
  if (!syntax->has_struct_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file must hold one JSON object, { ... }, of ",
                     message->GetDescriptor()->full_name(), " fields"));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message,
      options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(CleanJsonError(s.message().ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<weft::v1::ServerConfig> ParseConfig(absl::string_view json) {
  weft::v1::ServerConfig config;
  if (absl::Status s = ParseJsonFile(json, &config); !s.ok()) return s;
  return config;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view what) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  }
  // These files are a few KiB; refuse to read a runaway one into memory.
  constexpr std::streamoff kMaxBytes = 64 << 20;
  in.seekg(0, std::ios::end);
  if (in.tellg() > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": larger than 64 MiB; this is not ", what));
  }
  in.seekg(0, std::ios::beg);
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  }
  return text.str();
}

std::string ConfigFieldName(absl::string_view flag) {
  const google::protobuf::FieldDescriptor* f =
      weft::v1::ServerConfig::descriptor()->FindFieldByName(std::string(flag));
  return f == nullptr ? std::string() : f->json_name();
}

absl::Status CheckFlagValue(absl::string_view flag, absl::string_view value) {
  for (const IntRange& r : kIntRanges) {
    if (flag != r.flag) continue;
    int64_t v;
    if (!absl::SimpleAtoi(value, &v) || v < r.min || v > r.max) {
      return absl::InvalidArgumentError(
          absl::StrCat("must be a whole number from ", r.min, " to ", r.max,
                       ", got ", common::Quote(value)));
    }
    return absl::OkStatus();
  }
  for (const DurationRange& r : kDurationRanges) {
    if (flag != r.flag) continue;
    absl::Duration d;
    if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
        (d == absl::ZeroDuration() && !r.zero_allowed) || d > r.max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "must be a duration ", r.zero_allowed ? "from 0s" : "above 0s",
          " up to ", absl::FormatDuration(r.max), ", got ",
          common::Quote(value)));
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ParseListenAddress(absl::string_view address) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(common::Quote(address), ": ", why,
                     "; write host:port, like 127.0.0.1:50051, [::1]:50051 "
                     "or 0.0.0.0:50051, or unix:PATH"));
  };
  if (absl::StartsWith(address, "unix:")) {
    if (address.size() == sizeof("unix:") - 1) return bad("no socket path");
    return std::string(address);
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return bad("no port");
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port = address.substr(colon + 1);
  int port_number = -1;
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(port, &port_number) || port_number > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  if (host.empty()) return bad("no host");
  if (host.front() == '[') {
    if (host.back() != ']') return bad("an IPv6 address without its ']'");
    const std::string inside(host.substr(1, host.size() - 2));
    in6_addr ignored;
    if (inet_pton(AF_INET6, inside.c_str(), &ignored) != 1) {
      return bad("not an IPv6 address in the brackets");
    }
    return std::string(address);
  }
  if (absl::StrContains(host, ':')) {
    return bad("an IPv6 address must be written in brackets");
  }
  const bool numeric = std::all_of(host.begin(), host.end(), [](char c) {
    return absl::ascii_isdigit(c) || c == '.';
  });
  if (numeric) {
    in_addr ignored;
    if (inet_pton(AF_INET, std::string(host).c_str(), &ignored) != 1) {
      return bad("not an IPv4 address");
    }
  } else if (!IsHostName(host)) {
    return bad("not a host name");
  }
  return std::string(address);
}

absl::StatusOr<weft::v1::ServerConfig> LoadConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, "a config file");
  if (!text.ok()) return text.status();
  absl::StatusOr<weft::v1::ServerConfig> config = ParseConfig(*text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::StatusOr<weft::v1::AuthTokens> LoadAuthTokens(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, "a tokens file");
  if (!text.ok()) return text.status();
  weft::v1::AuthTokens tokens;
  if (absl::Status s = ParseJsonFile(*text, &tokens); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return tokens;
}

absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> LoadPrincipals(
    const std::string& path) {
  absl::StatusOr<weft::v1::AuthTokens> tokens = LoadAuthTokens(path);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> table =
      auth::PrincipalTable::Create(*tokens);
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<std::shared_ptr<const plan::SecretTable>> LoadSecrets(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, "a secrets file");
  if (!text.ok()) return text.status();
  weft::v1::SecretsFile file;
  if (absl::Status s = ParseJsonFile(*text, &file); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  absl::StatusOr<std::shared_ptr<const plan::SecretTable>> table =
      plan::SecretTable::Create(std::map<std::string, std::string>(
          file.secrets().begin(), file.secrets().end()));
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

std::vector<std::pair<std::string, std::string>> ConfigFlags(
    const weft::v1::ServerConfig& config) {
  using google::protobuf::FieldDescriptor;
  std::vector<std::pair<std::string, std::string>> out;
  const google::protobuf::Reflection* r = config.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(config, &fields);  // Present fields, in field-number order.
  for (const FieldDescriptor* f : fields) {
    if (f->name() == "lazy_values") continue;
    std::string value;
    if (f->name() == "pools") {
      std::vector<std::string> pools;
      for (const weft::v1::PoolConfig& p : config.pools()) {
        pools.push_back(
            absl::StrCat(p.name(), "=", p.threads(), ":", p.queue()));
      }
      value = absl::StrJoin(pools, ",");
    } else if (f->is_repeated()) {
      // Only lists of strings are left: http_allow.
      std::vector<std::string> items;
      for (int i = 0; i < r->FieldSize(config, f); ++i) {
        items.push_back(r->GetRepeatedString(config, f, i));
      }
      value = absl::StrJoin(items, ",");
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // Only google.protobuf.Duration fields are messages here.
      const auto& d = static_cast<const google::protobuf::Duration&>(
          r->GetMessage(config, f));
      value = common::FormatJsonDuration(common::FromProto(d));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
      value = absl::StrCat(r->GetInt32(config, f));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
      value = absl::StrCat(r->GetInt64(config, f));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      value = r->GetBool(config, f) ? "true" : "false";
    } else {
      value = r->GetString(config, f);
    }
    out.emplace_back(f->name(), std::move(value));
  }
  return out;
}

}  // namespace weft::weftd
