#include "server/plan/compiler.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"

namespace weft::plan {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::PlanFromJson;
using ::weft::testing::StatusIs;

class CompilerTest : public ::testing::Test {
 protected:
  CompilerTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
  }

  absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
      absl::string_view json) {
    return plan::Compile(PlanFromJson(json), "plan", registry_, limits_,
                         &pools_);
  }

  handlers::HandlerRegistry registry_;
  Limits limits_;
  PoolSet pools_{{{"default", 1, 10}, {"images", 1, 10}}};
};

TEST_F(CompilerTest, CompilesTheIssueExampleInPreOrder) {
  auto plan = Compile(R"({"parallel": {"children": [
    {"id": "user",  "call": {"handler": "sleep", "args": {"duration": "0.3s", "value": {"name": "Ada"}}}},
    {"id": "posts", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": ["p1", "p2"]}}},
    {"id": "stats", "call": {"handler": "value", "args": {"value": {"followers": 42}}}}
  ]}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto& nodes = (*plan)->nodes();
  ASSERT_EQ(nodes.size(), 4u);
  EXPECT_EQ(nodes[0].kind, NodeKind::kParallel);
  EXPECT_TRUE(nodes[0].keyed_by_id);
  EXPECT_THAT(nodes[0].children, ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(nodes[2].source->id(), "posts");
  EXPECT_EQ((*plan)->leaves(), 3);
}

TEST_F(CompilerTest, ParallelWithAnUnnamedChildIsAList) {
  auto plan = Compile(R"({"parallel": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
    {"call": {"handler": "value", "args": {"value": 2}}}]}})");
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE((*plan)->root().keyed_by_id);
}

TEST_F(CompilerTest, TimeoutIsKept) {
  auto plan = Compile(
      R"({"timeout": "2.5s", "call": {"handler": "value", "args": {"value": 1}}})");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)->root().timeout, absl::Milliseconds(2500));
}

TEST_F(CompilerTest, EveryKindCompilesWithItsOptions) {
  auto plan = Compile(R"({"sequence": {"children": [
    {"race": {"mode": "RACE_MODE_FIRST_COMPLETE", "hedgeDelay": "0.05s", "children": [
      {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
      {"id": "b", "call": {"handler": "value", "args": {"value": 2}}}]}},
    {"parallel": {"join": "JOIN_QUORUM", "quorum": 1, "maxConcurrency": 2, "children": [
      {"offload": {"pool": "images", "child": {"call": {"handler": "hash", "args": {"data": "x"}}}}},
      {"retry": {"maxAttempts": 3, "initialBackoff": "0.2s", "retryableCodes": ["NOT_FOUND"]},
       "call": {"handler": "hash", "args": {"data": "y"}}}]}}]}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto& nodes = (*plan)->nodes();
  ASSERT_EQ(nodes.size(), 8u);
  EXPECT_EQ(nodes[0].kind, NodeKind::kSequence);
  EXPECT_EQ(nodes[0].subtree_size, 8);
  EXPECT_EQ(nodes[1].kind, NodeKind::kRace);
  EXPECT_EQ(nodes[1].race_mode, engine::RaceMode::kFirstComplete);
  EXPECT_EQ(nodes[1].hedge_delay, absl::Milliseconds(50));
  EXPECT_EQ(nodes[1].subtree_size, 3);
  EXPECT_EQ(nodes[4].join.join, engine::JoinPolicy::kQuorum);
  EXPECT_EQ(nodes[4].join.quorum, 1);
  EXPECT_EQ(nodes[4].join.max_concurrency, 2);
  EXPECT_EQ(nodes[5].kind, NodeKind::kOffload);
  // The offloaded call runs on its pool; the blocking call on "default";
  // the value calls on the event loop.
  EXPECT_EQ(nodes[6].pool, pools_.Find("images"));
  EXPECT_EQ(nodes[7].pool, pools_.Find("default"));
  EXPECT_EQ(nodes[2].pool, nullptr);
  ASSERT_NE(nodes[7].retry, nullptr);
  EXPECT_EQ(nodes[7].retry->policy.max_attempts, 3);
  EXPECT_EQ(nodes[7].retry->policy.initial_backoff, absl::Milliseconds(200));
  EXPECT_TRUE(
      nodes[7].retry->retryable_codes.contains(absl::StatusCode::kNotFound));
}

TEST_F(CompilerTest, BlockingHandlerWithoutPoolsIsRefused) {
  auto plan = plan::Compile(
      PlanFromJson(R"({"call": {"handler": "hash", "args": {"data": "x"}}})"),
      "plan", registry_, limits_, nullptr);
  EXPECT_THAT(
      plan,
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("handler \"hash\" blocks and needs a thread pool")));
}

TEST_F(CompilerTest, MissingPlanIsNamed) {
  EXPECT_THAT(plan::Compile(nullptr, "plan", registry_, limits_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "plan: missing; a request needs a plan"));
}

// Every bad plan gets INVALID_ARGUMENT whose message starts with the path.
struct BadPlan {
  const char* name;
  const char* json;
  const char* message;
};

class BadPlanTest : public CompilerTest,
                    public ::testing::WithParamInterface<BadPlan> {};

TEST_P(BadPlanTest, IsRefusedWithThePathOfWhatIsWrong) {
  EXPECT_THAT(Compile(GetParam().json),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadPlanTest,
    ::testing::Values(
        BadPlan{"NodeWithNoKind", R"({})",
                "plan: the node has no kind; set one of call, parallel, race, "
                "offload, sequence"},
        BadPlan{
            "NestedNodeWithNoKind",
            R"({"parallel": {"children": [{"call": {"handler": "value", "args": {"value": 1}}}, {"id": "x"}]}})",
            "plan.parallel.children[1]: the node has no kind"},
        BadPlan{"LazyWithABadName", R"({"lazy": {"name": "daily_stats"}})",
                "plan.lazy.name: \"daily_stats\" is not a lazy value name; "
                "lazy value names look like lazyValues/daily_stats"},
        BadPlan{"LazyWhereNoneCanBeResolved",
                R"({"lazy": {"name": "lazyValues/daily_stats"}})",
                "plan.lazy: lazy values cannot be resolved here"},
        BadPlan{"EmptyParallel", R"({"parallel": {}})",
                "plan.parallel.children: a parallel needs at least one child"},
        BadPlan{"DuplicateSiblingIds",
                R"({"parallel": {"children": [
                  {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
                  {"id": "b", "call": {"handler": "value", "args": {"value": 1}}},
                  {"id": "a", "call": {"handler": "value", "args": {"value": 1}}}]}})",
                "plan.parallel.children[2].id: duplicate id \"a\"; children[0] "
                "has it too"},
        BadPlan{
            "UnknownHandler",
            R"({"parallel": {"children": [
                  {"call": {"handler": "value", "args": {"value": 1}}},
                  {"call": {"handler": "value", "args": {"value": 1}}},
                  {"call": {"handler": "slep", "args": {}}}]}})",
            "plan.parallel.children[2].call.handler: unknown handler \"slep\"; "
            "known handlers: fail, hash, sleep, value"},
        BadPlan{
            "MissingHandler", R"({"call": {}})",
            "plan.call.handler: missing; name one of fail, hash, sleep, value"},
        BadPlan{"MissingArgument", R"({"call": {"handler": "sleep"}})",
                "plan.call.args.duration: required by handler \"sleep\" but "
                "missing"},
        BadPlan{"MistypedArgument",
                R"({"parallel": {"children": [
                  {"call": {"handler": "value", "args": {"value": 1}}},
                  {"call": {"handler": "value", "args": {"value": 1}}},
                  {"call": {"handler": "sleep", "args": {"duration": 3}}}]}})",
                "plan.parallel.children[2].call.args.duration: expected a "
                "duration string like \"1.5s\", got number"},
        BadPlan{
            "NegativeArgument",
            R"({"call": {"handler": "sleep", "args": {"duration": "-0.5s"}}})",
            "plan.call.args.duration: must not be negative, got \"-0.5s\""},
        BadPlan{"UnknownCodeName",
                R"({"call": {"handler": "fail", "args": {"code": "BROKEN"}}})",
                "plan.call.args.code: \"BROKEN\" is not a status code name"},
        BadPlan{
            "UnknownArgument",
            R"({"call": {"handler": "sleep", "args": {"duration": "1s", "durration": "2s"}}})",
            "plan.call.args.durration: unknown argument of handler \"sleep\""},
        BadPlan{
            "NegativeTimeout",
            R"({"timeout": "-1s", "call": {"handler": "value", "args": {"value": 1}}})",
            "plan.timeout: must be a positive duration, got -1s"},
        BadPlan{
            "ZeroTimeout",
            R"({"timeout": "0s", "call": {"handler": "value", "args": {"value": 1}}})",
            "plan.timeout: must be a positive duration, got 0s"},
        BadPlan{
            "LongId",
            R"({"id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "call": {"handler": "value", "args": {"value": 1}}})",
            "plan.id: longer than 128 characters"}),
    [](const auto& info) { return std::string(info.param.name); });

std::string Nested(int depth) {
  std::string json = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 1; i < depth; ++i) {
    json = absl::StrCat(R"({"parallel": {"children": [)", json, "]}}");
  }
  return json;
}

TEST_F(CompilerTest, PlanAtTheDepthLimitCompiles) {
  EXPECT_EQ(limits_.max_plan_depth, 16);
  EXPECT_TRUE(Compile(Nested(16)).ok());
}

TEST_F(CompilerTest, PlanOverTheDepthLimitNamesTheLimitAndItsFlag) {
  auto plan = Compile(Nested(17));
  EXPECT_THAT(plan, StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("nested deeper than 16 levels, the "
                                       "limit (--max_plan_depth)")));
  EXPECT_THAT(std::string(plan.status().message()),
              ::testing::StartsWith("plan.parallel.children[0].parallel"));
}

// A JSON list nested `depth` levels around 1.
std::string DeepList(int depth) {
  std::string json = "1";
  for (int i = 0; i < depth; ++i) json = absl::StrCat("[", json, "]");
  return json;
}

TEST_F(CompilerTest, ArgumentsNestedDeeperThanValuesMayAreRefusedByPath) {
  EXPECT_TRUE(Compile(absl::StrCat(
                          R"({"call": {"handler": "value", "args": {"value": )",
                          DeepList(16), "}}}"))
                  .ok());
  EXPECT_THAT(
      Compile(absl::StrCat(
          R"({"call": {"handler": "sleep", "args": {"duration": "1s", "value": )",
          DeepList(17), "}}}")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "plan.call.args.value: nests 17 levels of lists and objects; "
               "values nest at most 16 levels of lists and objects "
               "(--max_value_depth)"));
}

TEST_F(CompilerTest, AReturnedArgumentMustFitInsideTheCompositesAroundIt) {
  // Each parallel around the call takes a level of the value's room.
  const std::string plan = absl::StrCat(
      R"({"parallel": {"children": [{"sequence": {"children": [
           {"call": {"handler": "value", "args": {"value": )",
      DeepList(15), "}}}]}}]}}");
  EXPECT_THAT(
      Compile(plan),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "plan.parallel.children[0].sequence.children[0].call.args."
               "value: nests 15 levels of lists and objects, and the call "
               "returns it: here values may nest at most 14 levels of lists "
               "and objects: --max_value_depth is 16 and the enclosing "
               "nodes' values take 2 (a parallel or a sequence one level, a "
               "JOIN_ALL_SETTLED parallel two)"));
  limits_.max_value_depth = 17;
  EXPECT_TRUE(Compile(plan).ok());
}

TEST_F(CompilerTest,
       CompositesNestedDeeperThanValuesMayAreRefusedWhereTheyPass) {
  // JOIN_ALL_SETTLED parallels add two levels each, and a failed child's
  // {"state", "error": {...}} three: the room runs out at the eighth.
  std::string json = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 0; i < 8; ++i) {
    json = absl::StrCat(
        R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [)", json,
        "]}}");
  }
  std::string path = "plan";
  for (int i = 0; i < 7; ++i) path += ".parallel.children[0]";
  EXPECT_THAT(
      Compile(json),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat(path,
                            ".parallel: the value of a parallel nests 3 levels "
                            "of lists and objects at least, deeper than it "
                            "may: here values may nest at most 2 levels of "
                            "lists and objects: --max_value_depth is 16 and "
                            "the enclosing nodes' values take 14 (a parallel "
                            "or a sequence one level, a JOIN_ALL_SETTLED "
                            "parallel two)")));
  // Races and offloads pass their child's value on: they take no room.
  std::string races = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 1; i < 16; ++i) {
    races = absl::StrCat(R"({"race": {"children": [)", races, "]}}");
  }
  EXPECT_TRUE(Compile(races).ok());
  // Each compiled node knows its room.
  auto plan = Compile(Nested(3));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)->nodes()[0].max_value_depth, 16);
  EXPECT_EQ((*plan)->nodes()[2].max_value_depth, 14);
}

TEST(LimitsTest, PlanAndValueDepthsTogetherKeepMessagesParseable) {
  EXPECT_EQ(MessageNesting(Limits()), 85);
  EXPECT_TRUE(CheckLimits(Limits()).ok());
  EXPECT_TRUE(
      CheckLimits(Limits{.max_plan_depth = 41, .max_value_depth = 1}).ok());
  EXPECT_THAT(
      CheckLimits(Limits{.max_plan_depth = 32, .max_value_depth = 16}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--max_plan_depth 32 with --max_value_depth 16 would "
                         "let weftd's messages nest 117 protobuf message "
                         "levels")));
}

TEST_F(CompilerTest, PlanOverTheNodeLimitNamesTheLimitAndItsFlag) {
  limits_.max_plan_nodes = 10;
  std::string children;
  for (int i = 0; i < 10; ++i) {
    absl::StrAppend(&children, i ? "," : "",
                    R"({"call": {"handler": "value", "args": {"value": 1}}})");
  }
  const std::string json =
      absl::StrCat(R"({"parallel": {"children": [)", children, "]}}");
  EXPECT_THAT(Compile(json),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "plan.parallel.children[9]: the plan has more than 10 "
                       "nodes, the limit (--max_plan_nodes)"));
  limits_.max_plan_nodes = 11;
  EXPECT_TRUE(Compile(json).ok());
}

}  // namespace
}  // namespace weft::plan
