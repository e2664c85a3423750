#include "client/lazy_commands.h"

#include <iostream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/cli.h"
#include "client/cli_support.h"
#include "server/common/proto_time.h"

ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(int32_t, page_size);
ABSL_DECLARE_FLAG(std::string, page_token);

ABSL_FLAG(std::string, ttl, "",
          "weft lazy create: how long a computed value is served, like "
          "\"3600s\" (0: until reset).");
ABSL_FLAG(std::string, refresh_after, "",
          "weft lazy create: once the value is older than this, a resolve "
          "serves it and starts one refresh.");
ABSL_FLAG(std::string, cache_failures_for, "",
          "weft lazy create: how long a failure is served instead of "
          "computing again.");

namespace weft::cli {

const char kLazyUsage[] =
    "  weft lazy create ID FILE|- [--ttl D] [--refresh_after D] "
    "[--cache_failures_for D]\n"
    "                         declare lazyValues/ID: a plan (or LazyValue) "
    "computed once\n"
    "  weft lazy resolve NAME the value, computed if needed; prints it as "
    "JSON\n"
    "  weft lazy get NAME     its definition, state and counters; never "
    "computes\n"
    "  weft lazy reset NAME   forget the cached value\n"
    "  weft lazy list [--page_size N] [--page_token T]\n"
    "  weft lazy delete NAME\n";

namespace {

void Print(const google::protobuf::Message& message) {
  std::cout << ToJson(message) << std::endl;
}

// Sets `out` from a duration flag's text, when given.
absl::Status DurationFlag(const std::string& name, const std::string& text,
                          google::protobuf::Duration* out) {
  if (text.empty()) return absl::OkStatus();
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": expected a duration like 3600s, got \"", text, "\""));
  }
  common::SetDuration(d, out);
  return absl::OkStatus();
}

std::string ShortState(weft::v1::LazyValueState state) {
  const std::string name = weft::v1::LazyValueState_Name(state);
  constexpr absl::string_view kPrefix = "LAZY_VALUE_STATE_";
  return name.substr(std::min(name.size(), kPrefix.size()));
}

int Create(const client::Client& client, const std::string& id,
           const std::string& file) {
  absl::StatusOr<std::string> text = ReadInput(file);
  if (!text.ok()) return Usage(text.status().message());
  weft::v1::CreateLazyValueRequest request;
  request.set_lazy_value_id(id);
  absl::StatusOr<weft::v1::LazyValue> definition = ParseLazyValueJson(*text);
  if (!definition.ok()) {
    std::cerr << "weft: " << (file == "-" ? "stdin" : file) << ": "
              << definition.status().message() << "\n";
    return kExitUsage;
  }
  *request.mutable_lazy_value() = *std::move(definition);
  weft::v1::LazyValue& v = *request.mutable_lazy_value();
  for (const auto& [name, text, field] :
       {std::tuple<const char*, std::string, google::protobuf::Duration*>{
            "ttl", absl::GetFlag(FLAGS_ttl), v.mutable_ttl()},
        {"refresh_after", absl::GetFlag(FLAGS_refresh_after),
         v.mutable_refresh_after()},
        {"cache_failures_for", absl::GetFlag(FLAGS_cache_failures_for),
         v.mutable_cache_failures_for()}}) {
    if (absl::Status s = DurationFlag(name, text, field); !s.ok()) {
      return Usage(s.message());
    }
  }
  // Durations a flag did not set and the file did not give stay absent.
  if (v.ttl().seconds() == 0 && v.ttl().nanos() == 0) v.clear_ttl();
  if (v.refresh_after().seconds() == 0 && v.refresh_after().nanos() == 0) {
    v.clear_refresh_after();
  }
  if (v.cache_failures_for().seconds() == 0 &&
      v.cache_failures_for().nanos() == 0) {
    v.clear_cache_failures_for();
  }
  absl::StatusOr<weft::v1::LazyValue> created =
      client.CreateLazyValue(request, absl::GetFlag(FLAGS_timeout));
  if (!created.ok()) return CallFailed(created.status());
  Print(*created);
  return kExitOk;
}

int List(const client::Client& client) {
  weft::v1::ListLazyValuesRequest request;
  request.set_page_size(absl::GetFlag(FLAGS_page_size));
  request.set_page_token(absl::GetFlag(FLAGS_page_token));
  absl::StatusOr<weft::v1::ListLazyValuesResponse> response =
      client.ListLazyValues(request, absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    Print(*response);
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-32s %-10s %10s %6s %8s %8s\n", "NAME",
                               "STATE", "GENERATION", "LOADS", "HITS",
                               "MISSES");
  for (const weft::v1::LazyValue& v : response->lazy_values()) {
    std::cout << absl::StrFormat("%-32s %-10s %10d %6d %8d %8d\n", v.name(),
                                 ShortState(v.state()), v.generation(),
                                 v.stats().loads(), v.stats().hits(),
                                 v.stats().misses());
  }
  if (!response->next_page_token().empty()) {
    std::cout << "next page: --page_token=" << response->next_page_token()
              << "\n";
  }
  return kExitOk;
}

}  // namespace

int LazyCommand(const client::Client& client,
                const std::vector<std::string>& args) {
  if (args.empty()) return Usage("lazy needs a subcommand");
  const std::string& sub = args[0];
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (sub == "create") {
    if (args.size() != 3) {
      return Usage("lazy create takes an ID and a FILE (or - for stdin)");
    }
    return Create(client, args[1], args[2]);
  }
  if (sub == "list") {
    if (args.size() != 1) return Usage("lazy list takes no operands");
    return List(client);
  }
  if (sub != "get" && sub != "resolve" && sub != "reset" && sub != "delete") {
    return Usage(absl::StrCat("unknown lazy subcommand \"", sub, "\""));
  }
  if (args.size() != 2) {
    return Usage(absl::StrCat("lazy ", sub, " takes one NAME"));
  }
  const std::string name = client::LazyValueName(args[1]);
  if (sub == "resolve") {
    absl::StatusOr<weft::v1::ResolveLazyValueResponse> resolved =
        client.ResolveLazyValue(name, timeout);
    if (!resolved.ok()) return CallFailed(resolved.status());
    Print(resolved->value());
    return kExitOk;
  }
  if (sub == "delete") {
    if (absl::Status s = client.DeleteLazyValue(name, timeout); !s.ok()) {
      return CallFailed(s);
    }
    std::cout << "deleted " << name << std::endl;
    return kExitOk;
  }
  absl::StatusOr<weft::v1::LazyValue> v =
      sub == "get" ? client.GetLazyValue(name, timeout)
                   : client.ResetLazyValue(name, timeout);
  if (!v.ok()) return CallFailed(v.status());
  Print(*v);
  return kExitOk;
}

}  // namespace weft::cli
