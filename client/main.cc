// weft: the command-line client.
//
//   weft run FILE|-        runs a plan (or RunRequest) given as JSON
//   weft handlers          lists the handlers a plan can call
//   weft health [SERVICE]  checks the server's health
//
// Exit codes: 0 success; 1 the plan ran and did not succeed (or the server is
// not serving); 2 the call failed (the server refused the request or could
// not be reached); 64 bad usage or unreadable input.

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/client.h"

ABSL_FLAG(std::string, addr, "",
          "Server address, host:port (default: $WEFT_ADDR, else "
          "127.0.0.1:50051).");
ABSL_FLAG(absl::Duration, timeout, absl::ZeroDuration(),
          "Deadline for the call; 0 sets none (the server then bounds a Run "
          "by its --max_run_duration).");
ABSL_FLAG(bool, json, false, "weft handlers: print JSON instead of a table.");

namespace {

constexpr int kExitOk = 0;
constexpr int kExitNotSucceeded = 1;
constexpr int kExitCallFailed = 2;
constexpr int kExitUsage = 64;

constexpr char kUsage[] =
    "weft: runs plans on a weft server.\n"
    "\n"
    "  weft run FILE|-        run a plan or RunRequest given as JSON; prints "
    "the outcome\n"
    "  weft handlers          list the handlers a plan can call\n"
    "  weft health [SERVICE]  check the server's health\n"
    "\n"
    "Flags: --addr (or WEFT_ADDR), --timeout, --json.\n"
    "Exit codes: 0 success; 1 the plan ran and did not succeed, or the "
    "server is not serving; 2 the call failed; 64 bad usage or input.";

std::string Address() {
  std::string addr = absl::GetFlag(FLAGS_addr);
  if (addr.empty()) {
    const char* env = std::getenv("WEFT_ADDR");
    addr = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  return addr;
}

int CallFailed(const absl::Status& s) {
  std::cerr << "weft: " << absl::StatusCodeToString(s.code()) << ": "
            << s.message() << "\n";
  return kExitCallFailed;
}

int Usage(const std::string& message) {
  std::cerr << "weft: " << message << "\n\n" << kUsage << "\n";
  return kExitUsage;
}

int Run(const weft::client::Client& client, const std::string& file) {
  std::stringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(file);
    if (!in) return Usage(absl::StrCat("cannot read \"", file, "\""));
    text << in.rdbuf();
  }
  absl::StatusOr<weft::v1::RunRequest> request =
      weft::client::ParseRunRequestJson(text.str());
  if (!request.ok()) {
    std::cerr << "weft: " << (file == "-" ? "stdin" : file) << ": "
              << request.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<weft::v1::RunResponse> response =
      client.Run(*request, absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  std::cout << weft::client::ToJson(*response) << std::endl;
  return response->outcome().state() == weft::v1::NODE_STATE_SUCCEEDED
             ? kExitOk
             : kExitNotSucceeded;
}

int Handlers(const weft::client::Client& client) {
  absl::StatusOr<weft::v1::ListHandlersResponse> response =
      client.ListHandlers(absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << weft::client::ToJson(*response) << std::endl;
    return kExitOk;
  }
  for (const weft::v1::Handler& h : response->handlers()) {
    std::cout << h.name() << (h.blocking() ? " (blocking)" : "") << ": "
              << h.description() << "\n";
    for (const weft::v1::HandlerArgument& a : h.arguments()) {
      std::string type = weft::v1::ArgumentType_Name(a.type());
      type = absl::AsciiStrToLower(type.substr(sizeof("ARGUMENT_TYPE_") - 1));
      std::cout << absl::StrFormat("  %-10s %-9s %-9s %s\n", a.name(), type,
                                   a.required() ? "required" : "",
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
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("no command given");
  const std::string command = args[1];
  std::unique_ptr<weft::client::Client> client =
      weft::client::Client::Connect(Address());
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
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
