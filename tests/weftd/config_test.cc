#include "server/weftd/config.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/weftd/server.h"
#include "tests/testing/status_matchers.h"

namespace weft::weftd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::weft::testing::IsOk;
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
                       "maxPlanNodes: expected a whole number, got \"many\""));
  EXPECT_THAT(ParseConfig("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "not JSON: line 1, column 1: expected a value"));
  EXPECT_THAT(ParseConfig(R"({"maxPlanNodes": 5, "max_plan_nodes": 6})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("maxPlanNodes: given more than once")));
  EXPECT_THAT(ParseConfig(R"({"maxRunDuration": "99999999999999s"})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "maxRunDuration: the duration is out of range"));
  EXPECT_THAT(ParseConfig(R"({"lazyValues": [{"lazyValue": {"ttl": "abc"}}]})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "lazyValues[0].lazyValue.ttl: expected a duration "
                       "like \"1.5s\""));
  EXPECT_THAT(ParseConfig("[1]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must hold one JSON object")));
  EXPECT_THAT(LoadConfig("/nonexistent/weftd.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       "/nonexistent/weftd.json: cannot read the file"));
}

TEST(ConfigTest, LoadConfigNamesTheFile) {
  const std::string path = ::testing::TempDir() + "/weftd_bad.json";
  std::ofstream(path) << R"({"listen": 5})";
  EXPECT_THAT(LoadConfig(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       path + ": listen: expected a string, got 5"));
}

TEST(ConfigTest, LoadPrincipalsNamesTheFileAndTheField) {
  const std::string path = ::testing::TempDir() + "/weftd_tokens.json";
  std::ofstream(path) << R"({"principals": [{"name": "bob", "role": "boss",
                            "tokenSha256": "ab"}]})";
  EXPECT_THAT(LoadPrincipals(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       path + ": principals[0].role: must be \"admin\" or "
                              "\"user\", got \"boss\""));
  std::ofstream(path) << R"({"principals": [{"name": "bob", "rol": "user"}]})";
  EXPECT_THAT(LoadPrincipals(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr(path + ": ")));
  std::ofstream(path) << R"({"principals": [{"name": "bob", "role": "user",
                            "tokenSha256": ")"
                      << auth::TokenSha256("t") << R"("}]})";
  absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> table =
      LoadPrincipals(path);
  ASSERT_THAT(table, IsOk());
  EXPECT_EQ((*table)->size(), 1);
  EXPECT_THAT(LoadPrincipals("/nonexistent/tokens.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       "/nonexistent/tokens.json: cannot read the file"));
}

TEST(ConfigTest, ErrorsNeverRepeatTheFile) {
  const std::string secret(100'000, 's');
  for (const std::string& json :
       {"{\"listen\": \"x\"}" + secret, "{\"" + secret + "\": 1}",
        "{\"listen\": [\"" + secret + "\"]}"}) {
    absl::StatusOr<weft::v1::ServerConfig> c = ParseConfig(json);
    ASSERT_FALSE(c.ok());
    EXPECT_LE(c.status().message().size(), 400u) << c.status();
  }
}

TEST(ConfigTest, AByteOrderMarkIsSkipped) {
  absl::StatusOr<weft::v1::ServerConfig> c =
      ParseConfig("\xEF\xBB\xBF{\"maxPlanNodes\": 5}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_plan_nodes(), 5);
}

TEST(ConfigTest, ByteBudgetsAreFieldsLikeTheOtherFlags) {
  absl::StatusOr<weft::v1::ServerConfig> c = ParseConfig(
      R"({"maxInflightBytes": "1073741824", "maxRetainedTaskBytes": 2097152,
          "maxLazyBytes": 3145728})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(ConfigFlags(*c),
              ElementsAre(Pair("max_inflight_bytes", "1073741824"),
                          Pair("max_retained_task_bytes", "2097152"),
                          Pair("max_lazy_bytes", "3145728")));
  EXPECT_EQ(ConfigFieldName("max_inflight_bytes"), "maxInflightBytes");
  EXPECT_EQ(ConfigFieldName("no_such_flag"), "");
}

TEST(CheckFlagValueTest, NumbersAndDurationsMustBeInTheirRange) {
  EXPECT_TRUE(CheckFlagValue("event_loop_threads", "4").ok());
  EXPECT_THAT(CheckFlagValue("event_loop_threads", "100000"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a whole number from 1 to 64, got \"100000\""));
  EXPECT_THAT(
      CheckFlagValue("max_plan_depth", "0"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from 1 to 41")));
  EXPECT_TRUE(CheckFlagValue("max_queued_tasks", "0").ok());
  EXPECT_FALSE(CheckFlagValue("max_inflight_bytes", "1000").ok());
  EXPECT_TRUE(CheckFlagValue("shutdown_grace", "0s").ok());
  EXPECT_THAT(CheckFlagValue("shutdown_grace", "-1s"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "must be a duration from 0s up to 1h, got \"-1s\""));
  EXPECT_THAT(
      CheckFlagValue("task_retention", "0s"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("above 0s")));
  EXPECT_FALSE(CheckFlagValue("max_run_duration", "inf").ok());
  EXPECT_TRUE(CheckFlagValue("http_allow", "anything").ok());  // No range.
}

TEST(ParseListenAddressTest, AcceptsHostPortAndSaysWhatIsWrongOtherwise) {
  for (const char* ok :
       {"127.0.0.1:50051", "0.0.0.0:0", "[::1]:50051", "[::]:65535",
        "localhost:8080", "weft.internal:1", "unix:/run/weft.sock"}) {
    EXPECT_TRUE(ParseListenAddress(ok).ok()) << ok;
  }
  struct Bad {
    const char* address;
    const char* why;
  };
  for (const Bad& b :
       {Bad{"127.0.0.1:99999", "from 0 to 65535"},
        Bad{"127.0.0.1:65536", "from 0 to 65535"}, Bad{"127.0.0.1", "no port"},
        Bad{"127.0.0.1:", "from 0 to 65535"},
        Bad{"127.0.0.1:-1", "from 0 to 65535"}, Bad{":50051", "no host"},
        Bad{"::1:50051", "must be written in brackets"},
        Bad{"[::1:50051", "without its ']'"},
        Bad{"[zz]:1", "not an IPv6 address"},
        Bad{"999.1.1.1:1", "not an IPv4 address"},
        Bad{"bad host:1", "not a host name"}, Bad{"unix:", "no socket path"}}) {
    EXPECT_THAT(ParseListenAddress(b.address),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(b.why)))
        << b.address;
  }
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
}  // namespace weft::weftd
