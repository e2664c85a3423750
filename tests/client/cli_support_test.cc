// The CLI's JSON forms and progress line (client/cli_support.h).

#include "client/cli_support.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "client/plan_builders.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/common/proto_time.h"
#include "server/common/serialize.h"
#include "tests/testing/status_matchers.h"

namespace weft::cli {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

// A plan `levels` deep: sequences around a value call.
std::string DeepPlan(int levels) {
  std::string plan = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 1; i < levels; ++i) {
    plan = absl::StrCat(R"({"sequence": {"children": [)", plan, "]}}");
  }
  return absl::StrCat(R"({"plan": )", plan, "}");
}

// A plan `levels` deep whose call's argument nests `value_levels` objects.
std::string DeepPlanWithDeepArgs(int levels, int value_levels) {
  std::string value = "1";
  for (int i = 0; i < value_levels; ++i) {
    value = absl::StrCat(R"({"k": )", value, "}");
  }
  std::string plan = absl::StrCat(
      R"({"call": {"handler": "value", "args": {"value": )", value, "}}}");
  for (int i = 1; i < levels; ++i) {
    plan = absl::StrCat(R"({"parallel": {"children": [)", plan, "]}}");
  }
  return plan;
}

TEST(JsonTest, ALazyValueOrABarePlan) {
  absl::StatusOr<weft::v1::LazyValue> bare =
      ParseLazyValueJson(R"({"call": {"handler": "value"}})");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->plan().call().handler(), "value");
  absl::StatusOr<weft::v1::LazyValue> full = ParseLazyValueJson(
      R"({"plan": {"call": {"handler": "value"}}, "ttl": "60s"})");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->ttl().seconds(), 60);
}

TEST(TaskHelpersTest, ProgressLineFillsTheBarByLeavesDone) {
  weft::v1::Task task;
  task.set_state(weft::v1::TASK_STATE_RUNNING);
  task.mutable_progress()->set_leaves_total(100);
  task.mutable_progress()->set_leaves_done(50);
  task.mutable_progress()->set_leaves_failed(2);
  task.mutable_progress()->set_leaves_running(3);
  EXPECT_EQ(ProgressLine(task, 10),
            "[#####.....]  50/100 leaves  2 failed  3 running  RUNNING");
  task.set_state(weft::v1::TASK_STATE_QUEUED);
  task.mutable_progress()->set_leaves_done(0);
  EXPECT_EQ(ProgressLine(task, 4),
            "[....]   0/100 leaves  2 failed  3 running  QUEUED");
  // Never more than full, even from a confused server.
  task.mutable_progress()->set_leaves_done(500);
  EXPECT_EQ(ProgressLine(task, 4).substr(0, 6), "[####]");
}

TEST(TaskHelpersTest, ElapsedRunsFromStartToEnd) {
  weft::v1::Task task;
  EXPECT_EQ(Elapsed(task), absl::ZeroDuration());
  task.mutable_start_time()->set_seconds(100);
  task.mutable_end_time()->set_seconds(102);
  task.mutable_end_time()->set_nanos(500'000'000);
  EXPECT_EQ(Elapsed(task), absl::Milliseconds(2500));
}

TEST(JsonTest, ACreateTaskRequestOrABarePlan) {
  absl::StatusOr<weft::v1::CreateTaskRequest> bare =
      ParseCreateTaskRequestJson(R"({"call": {"handler": "value"}})");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->plan().call().handler(), "value");
  absl::StatusOr<weft::v1::CreateTaskRequest> full = ParseCreateTaskRequestJson(
      R"({"plan": {"call": {"handler": "value"}}, "labels": {"env": "dev"},
          "requestId": "r-1"})");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->labels().at("env"), "dev");
  EXPECT_EQ(full->request_id(), "r-1");
  EXPECT_THAT(ParseCreateTaskRequestJson(R"({"plan": {}, "lables": {}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a weft.v1.CreateTaskRequest or "
                                 "weft.v1.PlanNode")));
}

TEST(JsonTest, ABarePlanIsReadAsTheRequestsPlan) {
  absl::StatusOr<weft::v1::RunRequest> r = ParseRunRequestJson(
      R"({"call": {"handler": "value", "args": {"value": 1}}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->plan().call().handler(), "value");
  EXPECT_EQ(r->detail(), weft::v1::OUTCOME_DETAIL_UNSPECIFIED);
}

TEST(JsonTest, ARunRequestKeepsItsDetail) {
  absl::StatusOr<weft::v1::RunRequest> r = ParseRunRequestJson(
      R"({"detail": "OUTCOME_DETAIL_ROOT", "plan": {"call": {"handler": "value"}}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->detail(), weft::v1::OUTCOME_DETAIL_ROOT);
}

TEST(JsonTest, SnakeCaseAndCamelCaseAreBothAccepted) {
  EXPECT_TRUE(ParseRunRequestJson(
                  R"({"plan": {"call": {"handler": "v"}}, "detail": 2})")
                  .ok());
  // Field names of the proto3 JSON mapping, either spelling.
  weft::v1::NodeOutcome o;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"start_time": "2026-01-01T00:00:00Z"})", &o)
                  .ok());
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"startTime": "2026-01-01T00:00:00Z"})", &o)
                  .ok());
}

TEST(JsonTest, BadInputSaysWhatIsWrong) {
  EXPECT_THAT(ParseRunRequestJson("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a JSON object")));
  EXPECT_THAT(
      ParseRunRequestJson(R"({"paralel": {}})"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("not a weft.v1.RunRequest or weft.v1.PlanNode")));
  EXPECT_THAT(client::ArgsFromJson("[1]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a JSON object")));
}

TEST(JsonTest, PlansAsDeepAsWeftdTakesAreRead) {
  absl::StatusOr<weft::v1::RunRequest> r = ParseRunRequestJson(DeepPlan(16));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->plan().has_sequence());
  // Every depth weftd's flags allow (2 * plan + 3 * value depth at most 85,
  // plan depth up to 41, value depth up to 27), with the deepest values it
  // allows beside: the CLI reads whatever weftd can be set to take.
  for (int plan = 1; plan <= 41; ++plan) {
    const int value = std::min(27, (85 - 2 * plan) / 3);
    const std::string json = DeepPlanWithDeepArgs(plan, value);
    EXPECT_TRUE(
        ParseRunRequestJson(absl::StrCat(R"({"plan": )", json, "}")).ok())
        << plan;
    EXPECT_TRUE(ParseCreateTaskRequestJson(json).ok()) << plan;
    EXPECT_TRUE(
        ParseLazyValueJson(absl::StrCat(R"({"plan": )", json, "}")).ok())
        << plan;
  }
}

TEST(JsonTest, APlanTooDeepForProtobufsReaderSaysSo) {
  EXPECT_THAT(ParseRunRequestJson(DeepPlan(80)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the input nests 241 levels of objects and "
                                 "lists, more than protobuf's JSON reader "
                                 "takes")));
}

TEST(JsonTest, PrintsIndentedWithSortedKeysAndIntactStrings) {
  weft::v1::RunResponse response;
  auto* fields = response.mutable_outcome()
                     ->mutable_value()
                     ->mutable_struct_value()
                     ->mutable_fields();
  (*fields)["zeta"].set_string_value("a \"quoted\", {braced} [x]: y");
  (*fields)["alpha"].mutable_list_value();
  (*fields)["mid"].mutable_struct_value();
  response.mutable_outcome()->set_state(weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(response),
            "{\n"
            "  \"outcome\": {\n"
            "    \"state\": \"NODE_STATE_SUCCEEDED\",\n"
            "    \"value\": {\n"
            "      \"alpha\": [],\n"
            "      \"mid\": {},\n"
            "      \"zeta\": \"a \\\"quoted\\\", {braced} [x]: y\"\n"
            "    }\n"
            "  }\n"
            "}");
}

}  // namespace
}  // namespace weft::cli
