#include "server/service/config.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "tests/testing/status_matchers.h"

namespace weft::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::weft::testing::StatusIs;

TEST(ConfigTest, EveryFieldSetsTheFlagOfTheSameName) {
  absl::StatusOr<weft::v1::ServerConfig> config = ParseConfig(R"({
      "listen": "0.0.0.0:6000", "maxRunDuration": "90s", "maxPlanNodes": 5,
      "maxPlanDepth": 6, "maxMessageBytes": 7, "maxOutcomeBytes": 8,
      "maxActiveRuns": 9, "shutdownGrace": "1.5s", "eventLoopThreads": 3,
      "mallocTuning": false,
      "pools": [{"name": "default", "threads": 2, "queue": 10},
                {"name": "cpu", "threads": 4, "queue": 0}],
      "maxRunningTasks": 11, "maxQueuedTasks": 0, "taskRetention": "3600s",
      "maxRetainedTasks": 12, "maxTaskDuration": "60s",
      "lazyComputeTimeout": "30s", "maxLazyValues": 13,
      "lazyValues": [{"lazyValueId": "x", "lazyValue": {"plan": {
          "call": {"handler": "value", "args": {"value": 1}}}}}]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(
      ConfigFlags(*config),
      ElementsAre(
          Pair("listen", "0.0.0.0:6000"), Pair("max_run_duration", "90s"),
          Pair("max_plan_nodes", "5"), Pair("max_plan_depth", "6"),
          Pair("max_message_bytes", "7"), Pair("max_outcome_bytes", "8"),
          Pair("max_active_runs", "9"), Pair("shutdown_grace", "1.500s"),
          Pair("event_loop_threads", "3"), Pair("malloc_tuning", "false"),
          Pair("pools", "default=2:10,cpu=4:0"),
          Pair("max_running_tasks", "11"),
          Pair("max_queued_tasks", "0"),  // Present although zero.
          Pair("task_retention", "3600s"), Pair("max_retained_tasks", "12"),
          Pair("max_task_duration", "60s"), Pair("lazy_compute_timeout", "30s"),
          Pair("max_lazy_values", "13")));
}

TEST(ConfigTest, AnEmptyConfigSetsNothing) {
  absl::StatusOr<weft::v1::ServerConfig> config = ParseConfig("{}");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(ConfigFlags(*config).empty());
}

TEST(ConfigTest, BadFilesNameWhatIsWrong) {
  EXPECT_THAT(
      ParseConfig(R"({"maxPlanNode": 5})"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("maxPlanNode")));
  EXPECT_THAT(ParseConfig(R"({"maxPlanNodes": "many"})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_plan_nodes")));
  EXPECT_THAT(ParseConfig("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a weft.v1.ServerConfig")));
  EXPECT_THAT(LoadConfig("/nonexistent/weftd.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       "/nonexistent/weftd.json: cannot read the file"));
}

TEST(ConfigTest, LoadConfigNamesTheFile) {
  const std::string path = ::testing::TempDir() + "/weftd_bad.json";
  std::ofstream(path) << R"({"listen": 5})";
  EXPECT_THAT(LoadConfig(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + ": not a weft.v1.ServerConfig")));
}

TEST(ConfigTest, LazyValuesAreDeclaredAndTheirErrorsNamed) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  WeftServer server(options);
  absl::StatusOr<weft::v1::ServerConfig> config = ParseConfig(R"({
      "lazyValues": [
        {"lazyValueId": "daily_stats", "lazyValue": {"ttl": "60s", "plan": {
            "call": {"handler": "value", "args": {"value": 42}}}}},
        {"lazyValueId": "uses_it", "lazyValue": {"plan": {
            "lazy": {"name": "lazyValues/daily_stats"}}}}]})");
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(server.DeclareLazyValues(*config).ok());
  absl::StatusOr<weft::v1::LazyValue> v =
      server.lazies().Get("lazyValues/daily_stats");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->state(), weft::v1::LAZY_VALUE_STATE_EMPTY);

  config = ParseConfig(R"({"lazyValues": [
      {"lazyValueId": "ok", "lazyValue": {"plan": {"call": {"handler": "value", "args": {"value": 1}}}}},
      {"lazyValueId": "bad", "lazyValue": {"ttl": "-5s", "plan": {"call": {"handler": "value", "args": {"value": 1}}}}}]})");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(server.DeclareLazyValues(*config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lazy_values[1].lazy_value.ttl:")));
  config = ParseConfig(
      R"({"lazyValues": [{"lazyValueId": "noplan", "lazyValue": {}}]})");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(server.DeclareLazyValues(*config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "lazy_values[0].lazy_value.plan: missing; a request "
                       "needs a plan"));
}

}  // namespace
}  // namespace weft::service
