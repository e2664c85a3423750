// GET /metrics (--metrics_listen) on a real server: the names and labels a
// Prometheus scrape finds, and counts that move with the calls made.

#include "server/weftd/metrics.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/json.h"

namespace weft::weftd {
namespace {

using ::testing::HasSubstr;

// The value of the sample line `series` (name and labels as written), or -1.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, series + " ")) continue;
    double v = -1;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
  }
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  static ServerOptions Options() {
    ServerOptions options;
    options.metrics_listen = "127.0.0.1:0";
    return options;
  }

  std::string Scrape() {
    const std::string address = fixture_.server().metrics_address();
    httplib::Client client("http://" + address);
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res) << "no answer from " << address;
    if (!res) return "";
    EXPECT_EQ(res->status, 200);
    EXPECT_THAT(res->get_header_value("Content-Type"),
                HasSubstr("text/plain; version=0.0.4"));
    return res->body;
  }

  weft::testing::ServerFixture fixture_{Options()};
};

TEST_F(MetricsTest, AScrapeFindsEveryFamilyWithItsLabels) {
  weft::v1::RunResponse response;
  ASSERT_TRUE(fixture_
                  .Run(R"({"plan": {"call": {"handler": "value",
                      "args": {"value": 1}}}})",
                       &response)
                  .ok());
  const std::string text = Scrape();
  for (const char* family : {"weft_rpcs_total",
                             "weft_rpc_duration_seconds",
                             "weft_runs_in_flight",
                             "weft_tasks",
                             "weft_memory_used_bytes",
                             "weft_memory_limit_bytes",
                             "weft_memory_refusals_total",
                             "weft_pool_threads",
                             "weft_pool_running",
                             "weft_pool_queued",
                             "weft_pool_queue_capacity",
                             "weft_pool_rejected_total",
                             "weft_lazy_values",
                             "weft_lazy_hits_total",
                             "weft_lazy_misses_total",
                             "weft_lazy_loads_total",
                             "weft_lazy_load_failures_total",
                             "weft_uptime_seconds",
                             "weft_http_calls_total",
                             "weft_http_in_flight",
                             "weft_http_connections_opened_total"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", family, " ")))
        << family;
  }
  EXPECT_EQ(Sample(text,
                   "weft_rpcs_total{method=\"/weft.v1.Orchestrator/Run\","
                   "code=\"OK\"}"),
            1);
  EXPECT_EQ(Sample(text,
                   "weft_rpc_duration_seconds_count{method=\"/weft.v1."
                   "Orchestrator/Run\"}"),
            1);
  EXPECT_EQ(Sample(text,
                   "weft_rpc_duration_seconds_bucket{method=\"/weft.v1."
                   "Orchestrator/Run\",le=\"+Inf\"}"),
            1);
  EXPECT_EQ(Sample(text, "weft_pool_threads{pool=\"default\"}"), 2);
  EXPECT_EQ(Sample(text, "weft_tasks{state=\"TASK_STATE_RUNNING\"}"), 0);
  EXPECT_GE(
      Sample(text, "weft_memory_limit_bytes{budget=\"max_inflight_bytes\"}"),
      1 << 20);
}

TEST_F(MetricsTest, CountsMoveWithTheCalls) {
  const std::string before = Scrape();
  const std::string ok =
      "weft_rpcs_total{method=\"/weft.v1.Orchestrator/GetTask\",code=\"OK\"}";
  const std::string not_found =
      "weft_rpcs_total{method=\"/weft.v1.Orchestrator/GetTask\",code=\"NOT_"
      "FOUND\"}";
  EXPECT_EQ(Sample(before, not_found), -1);  // None yet.

  weft::v1::Task task;
  grpc::ClientContext create;
  ASSERT_TRUE(
      fixture_.orchestrator()
          .CreateTask(&create,
                      weft::testing::FromJson<weft::v1::CreateTaskRequest>(
                          R"({"plan": {"call": {"handler": "sleep",
                                      "args": {"duration": "60s"}}}})"),
                      &task)
          .ok());
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    weft::v1::GetTaskRequest get;
    get.set_name(i == 0 ? task.name() : "tasks/" + std::string(32, 'b'));
    weft::v1::Task got;
    fixture_.orchestrator().GetTask(&context, get, &got);
  }
  // The status reaches the client before the interceptor counts it.
  std::string after;
  ASSERT_TRUE(weft::testing::ServerFixture::WaitFor([&] {
    after = Scrape();
    return Sample(after, not_found) == 1;
  }));
  EXPECT_EQ(Sample(after, ok), 1);
  EXPECT_EQ(Sample(after, "weft_tasks{state=\"TASK_STATE_RUNNING\"}"), 1);
  EXPECT_EQ(Sample(after,
                   "weft_rpcs_total{method=\"/weft.v1.Orchestrator/"
                   "CreateTask\",code=\"OK\"}"),
            1);
}

TEST_F(MetricsTest, HttpCallsAreCountedByOutcome) {
  // No --http_allow: every destination is refused.
  weft::v1::RunResponse response;
  ASSERT_TRUE(fixture_
                  .Run(R"({"plan": {"call": {"handler": "http",
                      "args": {"url": "http://127.0.0.1:9/"}}}})",
                       &response)
                  .ok());
  EXPECT_EQ(response.outcome().error().reason(), "URL_NOT_ALLOWED");
  const std::string text = Scrape();
  EXPECT_EQ(Sample(text, "weft_http_calls_total{outcome=\"not_allowed\"}"), 1);
  EXPECT_EQ(Sample(text, "weft_http_calls_total{outcome=\"ok\"}"), 0);
  EXPECT_EQ(Sample(text, "weft_http_connections_opened_total"), 0);
  // GetServerInfo says the same.
  grpc::ClientContext context;
  weft::v1::ServerInfo info;
  ASSERT_TRUE(fixture_.orchestrator().GetServerInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.http().calls().at("not_allowed"), 1);
  EXPECT_EQ(info.http().max_connections_per_host(), 0);
}

TEST(MetricsServerTest, ABadAddressIsNamed) {
  auto server = MetricsServer::Start("nowhere", [] { return ""; });
  EXPECT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("\"nowhere\": write HOST:PORT"));
}

TEST(RpcMetricsTest, BucketsAreCumulativeAndTheSumAddsUp) {
  RpcMetrics m;
  m.Record("/m", "OK", absl::Microseconds(100));  // <= 0.0005
  m.Record("/m", "OK", absl::Milliseconds(3));    // <= 0.005
  m.Record("/m", "INTERNAL", absl::Seconds(20));  // +Inf only
  std::string text;
  m.Render(&text);
  EXPECT_EQ(Sample(text, "weft_rpcs_total{method=\"/m\",code=\"OK\"}"), 2);
  EXPECT_EQ(Sample(text, "weft_rpcs_total{method=\"/m\",code=\"INTERNAL\"}"),
            1);
  EXPECT_EQ(
      Sample(text,
             "weft_rpc_duration_seconds_bucket{method=\"/m\",le=\"0.0005\"}"),
      1);
  EXPECT_EQ(
      Sample(text,
             "weft_rpc_duration_seconds_bucket{method=\"/m\",le=\"0.0025\"}"),
      1);
  EXPECT_EQ(
      Sample(text,
             "weft_rpc_duration_seconds_bucket{method=\"/m\",le=\"0.005\"}"),
      2);
  EXPECT_EQ(
      Sample(text, "weft_rpc_duration_seconds_bucket{method=\"/m\",le=\"10\"}"),
      2);
  EXPECT_EQ(
      Sample(text,
             "weft_rpc_duration_seconds_bucket{method=\"/m\",le=\"+Inf\"}"),
      3);
  EXPECT_NEAR(Sample(text, "weft_rpc_duration_seconds_sum{method=\"/m\"}"),
              20.0031, 1e-6);
}

}  // namespace
}  // namespace weft::weftd
