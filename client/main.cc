// weft: the command-line client.
//
//   weft run FILE|-        runs a plan (or RunRequest) given as JSON; with
//                          --timeline draws the outcome (timeline.h)
//   weft handlers          lists the handlers a plan can call
//   weft health [SERVICE]  checks the server's health
//   weft task ...          background tasks (task_commands.h)
//   weft lazy ...          lazy values (lazy_commands.h)
//   weft info              the server's version, uptime, tasks and pools
//   weft admin backup FILE a consistent copy of the server's task store
//
// Exit codes (cli.h): 0 success; 1 the plan ran and did not succeed (or the
// server is not serving); 2 the call failed (the server refused the request
// or could not be reached); 64 bad usage or unreadable input.

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/cli.h"
#include "client/cli_support.h"
#include "client/client.h"
#include "client/lazy_commands.h"
#include "client/task_commands.h"
#include "client/timeline.h"
#include "server/common/flag_help.h"
#include "server/common/outcome.h"

ABSL_FLAG(std::string, addr, "",
          "Server address, host:port (default: $WEFT_ADDR, else "
          "127.0.0.1:50051).");
ABSL_FLAG(absl::Duration, timeout, absl::ZeroDuration(),
          "Deadline for the call (for task wait and watch: for the whole "
          "command); 0 sets none (the server then bounds a Run by its "
          "--max_run_duration).");
ABSL_FLAG(bool, json, false,
          "weft handlers, weft task list: print JSON instead of a table.");
ABSL_FLAG(bool, timeline, false,
          "weft run, weft task get: draw the outcome as a timeline (one row "
          "per node, a bar from its start to its end) instead of JSON.");

ABSL_FLAG(std::string, tls_ca, "",
          "Connect with TLS, trusting the CA certificates in this PEM file "
          "(default: $WEFT_CLIENT_TLS_CA).");
ABSL_FLAG(std::string, tls_cert, "",
          "Mutual TLS: this client's certificate chain, a PEM file; needs "
          "--tls_key (default: $WEFT_CLIENT_TLS_CERT).");
ABSL_FLAG(std::string, tls_key, "",
          "Mutual TLS: the private key of --tls_cert, a PEM file (default: "
          "$WEFT_CLIENT_TLS_KEY).");
ABSL_FLAG(std::string, token, "",
          "Send \"authorization: Bearer TOKEN\" with every call (default: "
          "$WEFT_TOKEN). Prefer the variable: a flag shows in ps.");

namespace weft::cli {

const char kUsage[] =
    "weft: runs plans on a weft server.\n"
    "\n"
    "  weft run FILE|- [--timeline]\n"
    "                         run a plan or RunRequest given as JSON; prints "
    "the outcome\n"
    "  weft handlers          list the handlers a plan can call\n"
    "  weft health [SERVICE]  check the server's health\n"
    "%s"
    "%s"
    "  weft admin backup FILE write a consistent copy of the server's task "
    "store\n"
    "                         (--store=sqlite:PATH) to FILE; start weftd with\n"
    "                         --store=sqlite:FILE to restore it\n"
    "\n"
    "NAME is tasks/{id} or lazyValues/{id}, or the bare id. --timeout bounds "
    "the whole\nof task wait and task watch.\n"
    "\n"
    "Flags: --addr (or WEFT_ADDR), --timeout, --json; --tls_ca, --tls_cert,\n"
    "--tls_key, --token (or WEFT_CLIENT_TLS_CA, WEFT_CLIENT_TLS_CERT,\n"
    "WEFT_CLIENT_TLS_KEY, WEFT_TOKEN); see --helpfull.\n"
    "Exit codes: 0 success; 1 the plan ran (or the task ended) and did not "
    "succeed, or the server is not serving; 2 the call failed; 64 bad usage "
    "or input.";

}  // namespace weft::cli

namespace {

using weft::cli::CallFailed;
using weft::cli::kExitNotSucceeded;
using weft::cli::kExitOk;
using weft::cli::kExitUsage;
using weft::cli::Usage;

std::string Address() {
  std::string addr = absl::GetFlag(FLAGS_addr);
  if (addr.empty()) {
    const char* env = std::getenv("WEFT_ADDR");
    addr = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  return addr;
}

// A flag's value, else the variable's.
std::string FlagOrEnv(const absl::Flag<std::string>& flag, const char* var) {
  std::string value = absl::GetFlag(flag);
  if (value.empty()) {
    const char* env = std::getenv(var);
    if (env != nullptr) value = env;
  }
  return value;
}

int Run(const weft::client::Client& client, const std::string& file) {
  absl::StatusOr<std::string> text = weft::cli::ReadInput(file);
  if (!text.ok()) return Usage(text.status().message());
  absl::StatusOr<weft::v1::RunRequest> request =
      weft::cli::ParseRunRequestJson(*text);
  if (!request.ok()) {
    std::cerr << "weft: " << (file == "-" ? "stdin" : file) << ": "
              << request.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<weft::v1::RunResponse> response =
      client.Run(*request, absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  // A full outcome carries values at its leaves; show the root's built.
  weft::v1::NodeOutcome& root = *response->mutable_outcome();
  if (root.state() == weft::v1::NODE_STATE_SUCCEEDED && !root.has_value()) {
    *root.mutable_value() = weft::common::AssembleValue(root);
  }
  if (absl::GetFlag(FLAGS_timeline)) {
    std::cout << weft::cli::TimelineForStdout(root) << std::flush;
  } else {
    std::cout << weft::cli::ToJson(*response) << std::endl;
  }
  return response->outcome().state() == weft::v1::NODE_STATE_SUCCEEDED
             ? kExitOk
             : kExitNotSucceeded;
}

int Handlers(const weft::client::Client& client) {
  absl::StatusOr<weft::v1::ListHandlersResponse> response =
      client.ListHandlers(absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << weft::cli::ToJson(*response) << std::endl;
    return kExitOk;
  }
  for (const weft::v1::Handler& h : response->handlers()) {
    std::cout << h.name() << (h.blocking() ? " (blocking)" : "") << ": "
              << h.description() << "\n";
    // The names' column fits this handler's longest name.
    int width = 10;
    for (const weft::v1::HandlerArgument& a : h.arguments()) {
      width = std::max(width, static_cast<int>(a.name().size()));
    }
    for (const weft::v1::HandlerArgument& a : h.arguments()) {
      std::string type = weft::v1::ArgumentType_Name(a.type());
      type = absl::AsciiStrToLower(type.substr(sizeof("ARGUMENT_TYPE_") - 1));
      std::cout << absl::StrFormat("  %-*s %-9s %-9s %s\n", width, a.name(),
                                   type, a.required() ? "required" : "",
                                   a.description());
    }
  }
  return kExitOk;
}

int Health(const weft::client::Client& client, const std::string& service) {
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> status =
      client.Check(service, absl::GetFlag(FLAGS_timeout));
  if (!status.ok()) return CallFailed(status.status());
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   *status)
            << std::endl;
  return *status == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitNotSucceeded;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage = absl::StrFormat(
      weft::cli::kUsage, weft::cli::kTaskUsage, weft::cli::kLazyUsage);
  absl::SetProgramUsageMessage(usage);
  if (weft::common::AskedForHelp(argc, argv)) {
    weft::common::PrintHelp(std::cout, {"client/"});
    return kExitOk;
  }
  // --label and --state may be given more than once: taken out before absl
  // parses the rest.
  std::vector<std::string> raw(argv, argv + argc);
  weft::cli::RepeatedFlags repeated;
  absl::StatusOr<std::vector<std::string>> labels =
      weft::cli::TakeRepeatedFlag(raw, "label");
  if (!labels.ok()) return Usage(labels.status().message());
  absl::StatusOr<std::vector<std::string>> states =
      weft::cli::TakeRepeatedFlag(raw, "state");
  if (!states.ok()) return Usage(states.status().message());
  repeated.labels = *std::move(labels);
  repeated.states = *std::move(states);
  std::vector<char*> rest;
  for (std::string& a : raw) rest.push_back(a.data());
  std::vector<char*> parsed =
      absl::ParseCommandLine(static_cast<int>(rest.size()), rest.data());
  std::vector<std::string> args(parsed.begin(), parsed.end());

  if (args.size() < 2) return Usage("no command given");
  const std::string command = args[1];
  if (command != "task" &&
      (!repeated.labels.empty() || !repeated.states.empty())) {
    return Usage("--label and --state are for the task commands");
  }
  weft::client::ConnectOptions connect;
  connect.tls_ca = FlagOrEnv(FLAGS_tls_ca, "WEFT_CLIENT_TLS_CA");
  connect.tls_cert = FlagOrEnv(FLAGS_tls_cert, "WEFT_CLIENT_TLS_CERT");
  connect.tls_key = FlagOrEnv(FLAGS_tls_key, "WEFT_CLIENT_TLS_KEY");
  connect.token = FlagOrEnv(FLAGS_token, "WEFT_TOKEN");
  absl::StatusOr<std::unique_ptr<weft::client::Client>> connected =
      weft::client::Client::Connect(Address(), connect);
  if (!connected.ok()) return Usage(connected.status().message());
  std::unique_ptr<weft::client::Client> client = *std::move(connected);
  if (command == "run") {
    if (args.size() != 3) return Usage("run takes one FILE, or - for stdin");
    return Run(*client, args[2]);
  }
  if (command == "handlers") {
    if (args.size() != 2) return Usage("handlers takes no arguments");
    return Handlers(*client);
  }
  if (command == "health") {
    if (args.size() > 3) return Usage("health takes at most one SERVICE");
    return Health(*client, args.size() == 3 ? args[2] : "");
  }
  if (command == "task") {
    return weft::cli::TaskCommand(
        *client, std::vector<std::string>(args.begin() + 2, args.end()),
        repeated);
  }
  if (command == "lazy") {
    return weft::cli::LazyCommand(
        *client, std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (command == "info") {
    if (args.size() != 2) return Usage("info takes no arguments");
    return weft::cli::Info(*client);
  }
  if (command == "admin") {
    if (args.size() != 4 || args[2] != "backup") {
      return Usage("admin takes: backup FILE");
    }
    absl::StatusOr<int64_t> bytes =
        client->BackupStore(args[3], absl::GetFlag(FLAGS_timeout));
    if (!bytes.ok()) return CallFailed(bytes.status());
    std::cout << "wrote " << args[3] << " (" << *bytes
              << " bytes): start weftd with --store=sqlite:" << args[3]
              << " to restore it" << std::endl;
    return kExitOk;
  }
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
