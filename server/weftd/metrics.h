// Metrics in Prometheus' text format, over HTTP (--metrics_listen).
//
//   GET /metrics
//   weft_rpcs_total{method="/weft.v1.Orchestrator/Run",code="OK"} 12
//   weft_rpc_duration_seconds_bucket{method="...",le="0.005"} 11
//   weft_runs_in_flight 0
//   weft_tasks{state="TASK_STATE_RUNNING"} 3
//   ...
//
// RpcMetrics counts every RPC (fed by the interceptor weftd installs);
// the rest is read when scraped from what GetServerInfo reports. The HTTP
// side is cpp-httplib (Debian's libcpp-httplib), two threads, GET only.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_WEFTD_METRICS_H_
#define WEFT_SERVER_WEFTD_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"
#include "weft/v1/orchestrator.pb.h"

namespace httplib {
class Server;
}

namespace weft::weftd {

// Counts and latency histograms of RPCs, by method (and code).
class RpcMetrics {
 public:
  // The histogram's upper bounds, in seconds (+Inf is added).
  static constexpr std::array<double, 14> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  void Record(absl::string_view method, absl::string_view code,
              absl::Duration duration) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends weft_rpcs_total and weft_rpc_duration_seconds.
  void Render(std::string* out) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Method {
    std::map<std::string, int64_t, std::less<>> codes;
    std::array<int64_t, kBuckets.size() + 1> buckets{};  // Not cumulative.
    double sum = 0;
    int64_t count = 0;
  };
  mutable engine::Mutex mu_;
  std::map<std::string, Method, std::less<>> methods_ ABSL_GUARDED_BY(mu_);
};

// Appends the gauges and counters of an admin's ServerInfo: runs in flight,
// tasks by state, memory budgets, pools, lazy-value caches.
void RenderServerInfo(const weft::v1::ServerInfo& info, std::string* out);

// Serves GET /metrics with what `render` returns, on its own thread.
class MetricsServer {
 public:
  // `listen`: HOST:PORT (port 0 picks one). Errors name the address.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, std::function<std::string()> render);
  ~MetricsServer();  // Stops serving.

  // HOST:PORT as bound.
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
};

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_METRICS_H_
