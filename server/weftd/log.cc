#include "server/weftd/log.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "server/common/text.h"

namespace weft::weftd {
namespace {

struct LibraryLog {
  LogLimiter limiter{20, absl::Minutes(1)};
  std::function<void(absl::string_view)> sink;
};

LibraryLog& Library() {
  static LibraryLog* const log = new LibraryLog;
  return *log;
}

void Emit(absl::string_view source, absl::string_view message) {
  LibraryLog& log = Library();
  int64_t left_out = 0;
  const bool allowed = log.limiter.Allow(absl::Now(), &left_out);
  if (left_out > 0) {
    log.sink(absl::StrCat(left_out,
                          " more lines from protobuf and gRPC were left out "
                          "(at most 20 a minute are written)"));
  }
  if (!allowed) return;
  // One line: the libraries' messages may hold newlines and bytes of the
  // request.
  std::string line = common::Abbreviate(message, 300);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  log.sink(absl::StrCat(source, ": ", line));
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  Emit("protobuf", message);
}

void GrpcLog(gpr_log_func_args* args) {
  Emit("grpc", args->message != nullptr ? args->message : "");
}

}  // namespace

bool LogLimiter::Allow(absl::Time now, int64_t* left_out) {
  engine::MutexLock lock(&mu_);
  *left_out = 0;
  if (now - window_start_ >= window_) {
    *left_out = left_out_;
    left_out_ = 0;
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ < burst_) {
    ++in_window_;
    return true;
  }
  ++left_out_;
  return false;
}

void LogLine(absl::string_view line) {
  std::cerr << "weftd: " << line << std::endl;
}

void InstallLibraryLogs(std::function<void(absl::string_view)> sink) {
  Library().sink = std::move(sink);
  google::protobuf::SetLogHandler(&ProtobufLog);
  gpr_set_log_function(&GrpcLog);
}

}  // namespace weft::weftd
