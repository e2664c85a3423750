#include "server/weftd/metrics.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "httplib.h"
#include "server/common/proto_time.h"

namespace weft::weftd {
namespace {

// A label value, escaped as the text format asks.
std::string Label(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Header(std::string* out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n");
}

}  // namespace

void RpcMetrics::Record(absl::string_view method, absl::string_view code,
                        absl::Duration duration) {
  const double seconds = absl::ToDoubleSeconds(duration);
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  engine::MutexLock lock(&mu_);
  auto it = methods_.find(method);
  if (it == methods_.end())
    it = methods_.emplace(std::string(method), Method()).first;
  Method& m = it->second;
  auto c = m.codes.find(code);
  if (c == m.codes.end()) c = m.codes.emplace(std::string(code), 0).first;
  ++c->second;
  ++m.buckets[bucket];
  m.sum += seconds;
  ++m.count;
}

void RpcMetrics::Render(std::string* out) const {
  engine::MutexLock lock(&mu_);
  Header(out, "weft_rpcs_total", "counter",
         "RPCs answered, by method and status code.");
  for (const auto& [method, m] : methods_) {
    for (const auto& [code, n] : m.codes) {
      absl::StrAppend(out, "weft_rpcs_total{method=\"", Label(method),
                      "\",code=\"", code, "\"} ", n, "\n");
    }
  }
  Header(out, "weft_rpc_duration_seconds", "histogram",
         "Time from an RPC's start to its status, by method.");
  for (const auto& [method, m] : methods_) {
    int64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets.size(); ++i) {
      cumulative += m.buckets[i];
      absl::StrAppend(
          out, "weft_rpc_duration_seconds_bucket{method=\"", Label(method),
          "\",le=\"",
          i < kBuckets.size() ? absl::StrCat(kBuckets[i]) : std::string("+Inf"),
          "\"} ", cumulative, "\n");
    }
    absl::StrAppendFormat(out,
                          "weft_rpc_duration_seconds_sum{method=\"%s\"} %.6f\n"
                          "weft_rpc_duration_seconds_count{method=\"%s\"} %d\n",
                          Label(method), m.sum, Label(method), m.count);
  }
}

void RenderServerInfo(const weft::v1::ServerInfo& info, std::string* out) {
  Header(out, "weft_uptime_seconds", "gauge", "Seconds since weftd started.");
  absl::StrAppendFormat(
      out, "weft_uptime_seconds %.3f\n",
      absl::ToDoubleSeconds(common::FromProto(info.uptime())));
  Header(out, "weft_runs_in_flight", "gauge", "Run calls in flight.");
  absl::StrAppend(out, "weft_runs_in_flight ", info.active_runs(), "\n");
  Header(out, "weft_tasks", "gauge", "Background tasks held, by state.");
  for (weft::v1::TaskState state :
       {weft::v1::TASK_STATE_QUEUED, weft::v1::TASK_STATE_RUNNING,
        weft::v1::TASK_STATE_SUCCEEDED, weft::v1::TASK_STATE_FAILED,
        weft::v1::TASK_STATE_CANCELLED, weft::v1::TASK_STATE_TIMED_OUT}) {
    int32_t n = 0;
    for (const auto& c : info.tasks()) {
      if (c.state() == state) n = c.count();
    }
    absl::StrAppend(out, "weft_tasks{state=\"", weft::v1::TaskState_Name(state),
                    "\"} ", n, "\n");
  }
  Header(out, "weft_memory_used_bytes", "gauge",
         "Bytes held in each memory budget (named by its flag).");
  for (const auto& m : info.memory()) {
    absl::StrAppend(out, "weft_memory_used_bytes{budget=\"", m.name(), "\"} ",
                    m.used_bytes(), "\n");
  }
  Header(out, "weft_memory_limit_bytes", "gauge",
         "Each memory budget's limit.");
  for (const auto& m : info.memory()) {
    absl::StrAppend(out, "weft_memory_limit_bytes{budget=\"", m.name(), "\"} ",
                    m.limit_bytes(), "\n");
  }
  Header(out, "weft_memory_refusals_total", "counter",
         "Requests a memory budget refused.");
  for (const auto& m : info.memory()) {
    absl::StrAppend(out, "weft_memory_refusals_total{budget=\"", m.name(),
                    "\"} ", m.refusals(), "\n");
  }
  struct PoolField {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*get)(const weft::v1::PoolInfo&);
  };
  const PoolField pool_fields[] = {
      {"weft_pool_threads", "gauge", "Threads of each pool (--pools).",
       [](const weft::v1::PoolInfo& p) -> int64_t { return p.threads(); }},
      {"weft_pool_running", "gauge", "Calls running on each pool.",
       [](const weft::v1::PoolInfo& p) -> int64_t { return p.running(); }},
      {"weft_pool_queued", "gauge", "Calls waiting for each pool.",
       [](const weft::v1::PoolInfo& p) -> int64_t { return p.queued(); }},
      {"weft_pool_queue_capacity", "gauge",
       "Calls each pool may hold waiting (--pools).",
       [](const weft::v1::PoolInfo& p) -> int64_t {
         return p.queue_capacity();
       }},
      {"weft_pool_rejected_total", "counter",
       "Calls each pool refused because it was full (POOL_FULL).",
       [](const weft::v1::PoolInfo& p) -> int64_t { return p.rejected(); }},
  };
  for (const PoolField& f : pool_fields) {
    Header(out, f.name, f.type, f.help);
    for (const auto& p : info.pools()) {
      absl::StrAppend(out, f.name, "{pool=\"", Label(p.name()), "\"} ",
                      f.get(p), "\n");
    }
  }
  if (info.has_http()) {
    const weft::v1::HttpInfo& h = info.http();
    Header(out, "weft_http_calls_total", "counter",
           "http handler calls (attempts) by how they ended.");
    for (const auto& [outcome, n] :
         std::map<std::string, int64_t>(h.calls().begin(), h.calls().end())) {
      absl::StrAppend(out, "weft_http_calls_total{outcome=\"", outcome, "\"} ",
                      n, "\n");
    }
    Header(out, "weft_http_in_flight", "gauge", "http transfers in flight.");
    absl::StrAppend(out, "weft_http_in_flight ", h.in_flight(), "\n");
    Header(out, "weft_http_connections_opened_total", "counter",
           "Connections the http handler opened.");
    absl::StrAppend(out, "weft_http_connections_opened_total ",
                    h.connections_opened(), "\n");
  }
  const weft::v1::LazyCacheInfo& l = info.lazy_values();
  Header(out, "weft_lazy_values", "gauge", "Lazy values declared.");
  absl::StrAppend(out, "weft_lazy_values ", l.count(), "\n");
  const std::pair<const char*, int64_t> lazy[] = {
      {"weft_lazy_hits_total", l.hits()},
      {"weft_lazy_misses_total", l.misses()},
      {"weft_lazy_loads_total", l.loads()},
      {"weft_lazy_load_failures_total", l.load_failures()},
  };
  for (const auto& [name, value] : lazy) {
    Header(out, name, "counter",
           "Lazy-value resolves from a cache (hits), that waited (misses), "
           "computations started (loads) and failed, over the values "
           "declared now.");
    absl::StrAppend(out, name, " ", value, "\n");
  }
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, std::function<std::string()> render) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", listen,
        "\": write HOST:PORT, like 127.0.0.1:9090 or 0.0.0.0:9090"));
  }
  absl::string_view host = absl::string_view(listen).substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->server_;
  // Two threads, and short timeouts: a scrape every few seconds needs no
  // more, and an idle connection neither holds the server nor its stop.
  http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  http.set_read_timeout(2, 0);
  http.set_write_timeout(2, 0);
  http.set_keep_alive_timeout(1);
  http.Get("/metrics", [render = std::move(render)](const httplib::Request&,
                                                    httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const std::string h(host);
  const int bound = port == 0 ? http.bind_to_any_port(h)
                              : (http.bind_to_port(h, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(
        absl::StrCat("\"", listen, "\": cannot listen there"));
  }
  server->address_ = absl::StrCat(listen.substr(0, colon), ":", bound);
  server->thread_ = std::thread([&http] { http.listen_after_bind(); });
  // Serving before Start returns: stop() only stops a server that runs.
  while (!http.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return server;
}

MetricsServer::~MetricsServer() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace weft::weftd
