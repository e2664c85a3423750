// The access log: one JSON line per RPC (--access_log).
//
//   {"time": "2026-12-04T12:00:00.123456Z",
//    "method": "/weft.v1.Orchestrator/GetTask", "principal": "alice",
//    "peer": "ipv4:127.0.0.1:50312", "code": "NOT_FOUND",
//    "reason": "TASK_NOT_FOUND", "duration_ms": 0.412,
//    "resource": "tasks/7f...", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
//
// `principal` is the caller as --auth_tokens names it ("" when weftd has no
// callers, or the call presented none it knows); `reason` the ErrorInfo
// reason of a failed call; `resource` the task or lazy value the call
// named or created; `trace_id` from the caller's W3C `traceparent` header.
// Fields without a value are left out. A streaming call's line is written
// when it ends, its duration the stream's.
//
// Thread-safety: thread-safe. Each line is one write(2) to a file opened
// with O_APPEND, so lines never interleave; Reopen() (on SIGHUP) swaps in
// the file at the same path, for log rotation.

#ifndef WEFT_SERVER_WEFTD_ACCESS_LOG_H_
#define WEFT_SERVER_WEFTD_ACCESS_LOG_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/auth/principals.h"
#include "server/engine/sync.h"

namespace weft::weftd {

class AccessLog {
 public:
  // `path`: a file (created if missing, appended to), or "-" for stderr.
  // Errors name the path.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(
      const std::string& path);
  ~AccessLog();

  // Opens the path again (after a rotation moved the file away); on error
  // the file in use stays. A no-op for stderr.
  absl::Status Reopen() ABSL_LOCKS_EXCLUDED(mu_);

  // Writes `line` and a newline.
  void Write(absl::string_view line) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  AccessLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  mutable engine::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_);
};

// What one line says, and its JSON.
struct AccessRecord {
  absl::Time time;
  std::string method;
  std::string principal;
  std::string peer;
  std::string code;
  std::string reason;
  absl::Duration duration;
  std::string resource;
  std::string trace_id;
};
std::string FormatAccessRecord(const AccessRecord& r);

class RpcMetrics;

// For every RPC of the server it is installed in: writes a line to `log`
// and counts it in `metrics` (either may be null). `callers` (may be null)
// names the principal as the service does. All must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallInterceptors(AccessLog* log, RpcMetrics* metrics,
                 const auth::Callers* callers);

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_ACCESS_LOG_H_
