#include "server/plan/interpreter.h"

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "server/common/proto_time.h"
#include "server/common/text.h"
#include "server/engine/event_loop.h"
#include "server/engine/memory_budget.h"
#include "tests/engine/test_util.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::plan {
namespace {

using ::weft::testing::ToTime;

using ::testing::HasSubstr;
using ::weft::testing::PlanFromJson;
using weft::v1::NodeOutcome;

class InterpreterTest : public ::testing::Test {
 protected:
  InterpreterTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
  }

  std::shared_ptr<const CompiledPlan> Compile(absl::string_view json) {
    auto plan = plan::Compile(PlanFromJson(json), "plan", registry_, Limits());
    EXPECT_TRUE(plan.ok()) << plan.status();
    return *std::move(plan);
  }

  // Starts the plan on the manual clock; the outcome lands in outcome_.
  void Start(absl::string_view json, RunOptions options = {}) {
    options.env = &env_;
    Execute(Compile(json), std::move(options),
            [this](NodeOutcome o) { outcome_.emplace(std::move(o)); });
  }

  absl::Duration Since(const google::protobuf::Timestamp& t) {
    return ToTime(t) - t0_;
  }

  engine::ManualEnv env_;
  const absl::Time t0_ = env_.Now();
  handlers::HandlerRegistry registry_;
  std::optional<NodeOutcome> outcome_;
};

constexpr char kDashboard[] = R"({"parallel": {"children": [
  {"id": "user",  "call": {"handler": "sleep", "args": {"duration": "0.3s", "value": {"name": "Ada"}}}},
  {"id": "posts", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": ["p1", "p2"]}}},
  {"id": "stats", "call": {"handler": "value", "args": {"value": {"followers": 42}}}}
]}})";

TEST_F(InterpreterTest, ParallelEndsWithItsSlowestChildAndMapsValuesById) {
  Start(kDashboard);
  env_.AdvanceBy(absl::Milliseconds(299));
  EXPECT_FALSE(outcome_.has_value());
  env_.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->kind(), weft::v1::NODE_KIND_PARALLEL);
  EXPECT_EQ(
      weft::testing::ToJson(common::AssembleValue(*outcome_)),
      R"({"posts":["p1","p2"],"stats":{"followers":42},"user":{"name":"Ada"}})");
  EXPECT_EQ(Since(outcome_->start_time()), absl::ZeroDuration());
  EXPECT_EQ(Since(outcome_->end_time()), absl::Milliseconds(300));
  ASSERT_EQ(outcome_->children_size(), 3);
  EXPECT_EQ(outcome_->children(0).id(), "user");
  EXPECT_EQ(Since(outcome_->children(1).end_time()), absl::Milliseconds(200));
  EXPECT_EQ(Since(outcome_->children(2).end_time()), absl::ZeroDuration());
  EXPECT_EQ(weft::testing::ToJson(outcome_->children(2).value()),
            R"({"followers":42})");
  EXPECT_FALSE(outcome_->has_error());
}

TEST_F(InterpreterTest, RootOnlyOutcomeHasTheValueButNoChildren) {
  RunOptions options;
  options.root_only = true;
  Start(kDashboard, options);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->children_size(), 0);
  EXPECT_EQ(
      weft::testing::ToJson(common::AssembleValue(*outcome_)),
      R"({"posts":["p1","p2"],"stats":{"followers":42},"user":{"name":"Ada"}})");
}

TEST_F(InterpreterTest, ParallelWithAnUnnamedChildGivesAListInChildOrder) {
  Start(R"({"parallel": {"children": [
    {"id": "a", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": "slow"}}},
    {"call": {"handler": "value", "args": {"value": "fast"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(weft::testing::ToJson(common::AssembleValue(*outcome_)),
            R"(["slow","fast"])");
}

TEST_F(InterpreterTest, PlanOfValueCallsFinishesInlineWithoutAThreadHop) {
  Start(R"({"parallel": {"children": [
    {"call": {"handler": "value", "args": {"value": 1}}},
    {"parallel": {"children": [{"call": {"handler": "value", "args": {"value": 2}}}]}}]}})");
  // No time passed and no posted work ran: it finished inside Execute().
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(weft::testing::ToJson(common::AssembleValue(*outcome_)), "[1,[2]]");
}

TEST_F(InterpreterTest, FirstFailureCancelsTheSleepingSiblingsAtOnce) {
  Start(R"({"parallel": {"children": [
    {"id": "user", "call": {"handler": "sleep", "args": {"duration": "5s"}}},
    {"id": "posts", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "posts backend down", "after": "0.1s"}}},
    {"id": "stats", "call": {"handler": "sleep", "args": {"duration": "5s"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(100));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "UNAVAILABLE");
  EXPECT_EQ(outcome_->error().message(),
            "children[1] \"posts\": posts backend down");
  EXPECT_EQ(Since(outcome_->end_time()), absl::Milliseconds(100));
  for (int i : {0, 2}) {
    const NodeOutcome& sibling = outcome_->children(i);
    EXPECT_EQ(sibling.state(), weft::v1::NODE_STATE_CANCELLED);
    EXPECT_EQ(sibling.error().code(), "CANCELLED");
    EXPECT_THAT(
        sibling.error().message(),
        HasSubstr("sibling failed: children[1] \"posts\": posts backend down"));
    EXPECT_EQ(Since(sibling.end_time()), absl::Milliseconds(100));
  }
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(InterpreterTest, NestedFailureNamesEachLevel) {
  Start(R"({"parallel": {"children": [
    {"id": "a", "parallel": {"children": [
       {"call": {"handler": "value", "args": {"value": 1}}},
       {"id": "b", "call": {"handler": "fail", "args": {"code": "NOT_FOUND", "message": "boom"}}}]}}]}})");
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->error().code(), "NOT_FOUND");
  EXPECT_EQ(outcome_->error().message(),
            "children[0] \"a\": children[1] \"b\": boom");
}

TEST_F(InterpreterTest, TimedOutChildIsTimedOutAndFailsItsParent) {
  Start(R"({"parallel": {"children": [
    {"id": "slow", "timeout": "0.1s", "call": {"handler": "sleep", "args": {"duration": "1s"}}},
    {"id": "other", "call": {"handler": "sleep", "args": {"duration": "1s"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(100));
  ASSERT_TRUE(outcome_.has_value());
  const NodeOutcome& slow = outcome_->children(0);
  EXPECT_EQ(slow.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(slow.error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(slow.error().message(), "timed out after 0.100s");
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(outcome_->error().message(),
            "children[0] \"slow\": timed out after 0.100s");
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST_F(InterpreterTest, TimedOutParallelCancelsItsChildren) {
  Start(R"({"timeout": "0.2s", "parallel": {"children": [
    {"call": {"handler": "sleep", "args": {"duration": "0.1s"}}},
    {"call": {"handler": "sleep", "args": {"duration": "1s"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(200));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(outcome_->error().message(), "timed out after 0.200s");
  EXPECT_EQ(outcome_->children(0).state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(outcome_->children(1).error().message(),
            "cancelled: timed out after 0.200s");
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(InterpreterTest, TimeoutThatDoesNotFireLeavesNoTimerBehind) {
  Start(
      R"({"timeout": "10s", "call": {"handler": "sleep", "args": {"duration": "0.1s"}}})");
  env_.AdvanceBy(absl::Milliseconds(100));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(InterpreterTest, RunDeadlineTimesOutTheRootWithItsMessage) {
  RunOptions options;
  options.deadline = t0_ + absl::Seconds(1);
  options.deadline_message = "the caller's deadline passed";
  Start(
      R"({"parallel": {"children": [{"call": {"handler": "sleep", "args": {"duration": "3600s"}}}]}})",
      options);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(outcome_->error().message(), "the caller's deadline passed");
}

TEST_F(InterpreterTest, RootTimeoutShorterThanTheRunDeadlineWins) {
  RunOptions options;
  options.deadline = t0_ + absl::Seconds(10);
  Start(
      R"({"timeout": "1s", "call": {"handler": "sleep", "args": {"duration": "3600s"}}})",
      options);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->error().message(), "timed out after 1s");
}

constexpr char kTree[] = R"({"parallel": {"children": [
  {"id": "a", "call": {"handler": "sleep", "args": {"duration": "3600s"}}},
  {"id": "b", "parallel": {"children": [
    {"call": {"handler": "sleep", "args": {"duration": "3600s"}}},
    {"timeout": "7200s", "parallel": {"children": [
      {"call": {"handler": "sleep", "args": {"duration": "3600s"}}},
      {"call": {"handler": "fail", "args": {"code": "INTERNAL", "after": "7200s"}}}]}}]}},
  {"id": "c", "call": {"handler": "value", "args": {"value": 1}}}]}})";

void ExpectEveryNodeIs(const NodeOutcome& o, weft::v1::NodeState state,
                       const std::string& message, absl::Time end) {
  if (o.kind() == weft::v1::NODE_KIND_CALL &&
      o.state() == weft::v1::NODE_STATE_SUCCEEDED) {
    return;  // The value call finished before the cancel.
  }
  EXPECT_EQ(o.state(), state) << o.DebugString();
  EXPECT_EQ(o.error().message(), message);
  EXPECT_EQ(ToTime(o.end_time()), end);
  for (const NodeOutcome& c : o.children())
    ExpectEveryNodeIs(c, state, message, end);
}

TEST_F(InterpreterTest, CancellingTheRunReachesEveryLeafAtOnce) {
  engine::CancellationSource source;
  RunOptions options;
  options.token = source.token();
  Start(kTree, options);
  env_.AdvanceBy(absl::Minutes(5));
  EXPECT_FALSE(outcome_.has_value());
  source.Cancel(absl::CancelledError("the caller cancelled the run"));
  ASSERT_TRUE(outcome_.has_value());
  ExpectEveryNodeIs(*outcome_, weft::v1::NODE_STATE_CANCELLED,
                    "the caller cancelled the run", t0_ + absl::Minutes(5));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(InterpreterTest, RunCancelledBeforeItStartsEndsEveryNodeCancelled) {
  engine::CancellationSource source;
  source.Cancel(absl::CancelledError("server shutting down"));
  RunOptions options;
  options.token = source.token();
  Start(kTree, options);
  ASSERT_TRUE(outcome_.has_value());
  std::function<void(const NodeOutcome&)> check = [&](const NodeOutcome& o) {
    EXPECT_EQ(o.state(), weft::v1::NODE_STATE_CANCELLED) << o.DebugString();
    EXPECT_EQ(o.error().message(), "server shutting down");
    for (const NodeOutcome& c : o.children()) check(c);
  };
  check(*outcome_);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

// Counts each node's start and finish.
// A plan whose leaves return a string of `bytes` bytes each.
std::string ValuesPlan(int leaves, int bytes, absl::string_view join = "") {
  std::string children;
  for (int i = 0; i < leaves; ++i) {
    absl::StrAppend(&children, i > 0 ? "," : "",
                    R"({"call": {"handler": "value", "args": {"value": ")",
                    std::string(bytes, 'v'), R"("}}})");
  }
  return absl::StrCat(R"({"parallel": {)", join, R"("children": [)", children,
                      "]}}");
}

TEST_F(InterpreterTest, AFullOutcomeCarriesEachValueOnceAtItsLeaf) {
  // 20 values of 10 KB: 200 KB, at the leaves only.
  RunOptions options;
  options.max_outcome_bytes = 300'000;
  Start(ValuesPlan(20, 10'000), options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_FALSE(outcome_->has_value());  // A composite: built when read.
  ASSERT_EQ(outcome_->children_size(), 20);
  EXPECT_EQ(outcome_->children(3).value().string_value().size(), 10'000u);
  EXPECT_LT(outcome_->ByteSizeLong(), 210'000u);
  const NodeOutcome full = *outcome_;

  // The root alone carries the value built, the same as read from the leaves.
  outcome_.reset();
  options.root_only = true;
  Start(ValuesPlan(20, 10'000), options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->children_size(), 0);
  EXPECT_EQ(weft::testing::ToJson(outcome_->value()),
            weft::testing::ToJson(common::AssembleValue(full)));
  EXPECT_LE(outcome_->ByteSizeLong(), 300'000u);
}

TEST_F(InterpreterTest, TheRootsValueIsWhatReadersBuildFromAFullOutcome) {
  const char* plans[] = {
      R"({"parallel": {"children": [
          {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
          {"id": "b", "sequence": {"children": [
            {"call": {"handler": "value", "args": {"value": "x"}}},
            {"race": {"children": [
              {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}},
              {"call": {"handler": "value", "args": {"value": [true]}}}]}}]}}]}})",
      R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
          {"call": {"handler": "fail", "args": {"code": "NOT_FOUND", "message": "gone"}}},
          {"parallel": {"join": "JOIN_QUORUM", "quorum": 1, "children": [
            {"id": "p", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}},
            {"id": "q", "call": {"handler": "value", "args": {"value": {"k": null}}}}]}}]}})",
      R"({"race": {"mode": "RACE_MODE_FIRST_COMPLETE", "children": [
          {"id": "w", "call": {"handler": "value", "args": {"value": "won"}}}]}})",
  };
  for (const char* plan : plans) {
    outcome_.reset();
    Start(plan);
    ASSERT_TRUE(outcome_.has_value()) << plan;
    const NodeOutcome full = *outcome_;
    EXPECT_FALSE(full.has_value()) << plan;
    outcome_.reset();
    RunOptions root_only;
    root_only.root_only = true;
    Start(plan, root_only);
    ASSERT_TRUE(outcome_.has_value());
    EXPECT_EQ(outcome_->state(), full.state()) << plan;
    EXPECT_EQ(weft::testing::ToJson(outcome_->value()),
              weft::testing::ToJson(common::AssembleValue(full)))
        << plan;
    // And as weftd cuts a full outcome down for OUTCOME_DETAIL_ROOT.
    EXPECT_EQ(weft::testing::ToJson(common::RootOnly(full).value()),
              weft::testing::ToJson(outcome_->value()));
  }
}

TEST_F(InterpreterTest, AnOutcomeOverItsLimitFailsAtTheRootAlone) {
  RunOptions options;
  options.max_outcome_bytes = 150'000;
  Start(ValuesPlan(20, 10'000), options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(outcome_->error().message(),
              HasSubstr("passed 150000 bytes, the most an answer may carry "
                        "(--max_outcome_bytes)"));
  EXPECT_EQ(outcome_->children_size(), 0);
  EXPECT_FALSE(outcome_->has_value());
}

TEST_F(InterpreterTest,
       OverTheLimitTheRunStopsAtOnceEvenWhereNothingFailsFast) {
  // JOIN_ALL_SETTLED never cancels siblings for a failure; a run over its
  // budget stops anyway: the sleep ends now, not in an hour.
  RunOptions options;
  options.max_outcome_bytes = 100'000;
  Start(R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
    {"call": {"handler": "sleep", "args": {"duration": "3600s"}}},
    {"call": {"handler": "value", "args": {"value": ")" +
            std::string(60'000, 'a') + R"("}}},
    {"call": {"handler": "value", "args": {"value": ")" +
            std::string(60'000, 'b') + R"("}}}
  ]}})",
        options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(env_.pending_timers(), 0u);
}

// Counts its calls; returns a string of 64 KiB.
class CountingValueHandler : public handlers::Handler {
 public:
  explicit CountingValueHandler(std::atomic<int>* calls) : calls_(calls) {
    info_.name = "counted";
  }
  const handlers::HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      const google::protobuf::Struct&) const override {
    return std::unique_ptr<handlers::Call>(new CountedCall(calls_));
  }

 private:
  class CountedCall : public handlers::Call {
   public:
    explicit CountedCall(std::atomic<int>* calls) : calls_(calls) {}
    void Start(const handlers::CallContext&,
               handlers::CallDone done) const override {
      calls_->fetch_add(1);
      google::protobuf::Value v;
      v.set_string_value(std::string(64 << 10, 'c'));
      std::move(done)(std::move(v));
    }

   private:
    std::atomic<int>* calls_;
  };
  std::atomic<int>* calls_;
  handlers::HandlerInfo info_;
};

// Returns a list nested args.depth levels, as an upstream's body might.
class DeepValueHandler : public handlers::Handler {
 public:
  DeepValueHandler() {
    info_.name = "deep";
    info_.args = {{.name = "depth", .type = handlers::ArgType::kInteger}};
  }
  const handlers::HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      const google::protobuf::Struct& args) const override {
    return std::unique_ptr<handlers::Call>(
        new DeepCall(static_cast<int>(handlers::Args(args).Integer("depth"))));
  }

 private:
  class DeepCall : public handlers::Call {
   public:
    explicit DeepCall(int depth) : depth_(depth) {}
    void Start(const handlers::CallContext&,
               handlers::CallDone done) const override {
      google::protobuf::Value v;
      google::protobuf::Value* inner = &v;
      for (int i = 0; i < depth_; ++i) {
        inner = inner->mutable_list_value()->add_values();
      }
      inner->set_number_value(1);
      std::move(done)(std::move(v));
    }

   private:
    const int depth_;
  };
  handlers::HandlerInfo info_;
};

TEST_F(InterpreterTest, ACallValueDeeperThanItsRoomFailsItsNodeForGood) {
  ASSERT_TRUE(registry_.Register(std::make_unique<DeepValueHandler>()).ok());
  Start(R"({"parallel": {"children": [
    {"id": "ok", "call": {"handler": "deep", "args": {"depth": 15}}},
    {"id": "deep", "retry": {"max_attempts": 3},
     "call": {"handler": "deep", "args": {"depth": 16}}}]}})");
  ASSERT_TRUE(outcome_.has_value());
  const NodeOutcome& deep = outcome_->children(1);
  EXPECT_EQ(deep.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(deep.error().code(), "OUT_OF_RANGE");
  EXPECT_EQ(deep.error().message(),
            "the value nests 16 levels of lists and objects; here values may "
            "nest at most 15 levels of lists and objects: --max_value_depth "
            "is 16 and the enclosing nodes' values take 1 (a parallel or a "
            "sequence one level, a JOIN_ALL_SETTLED parallel two)");
  EXPECT_EQ(deep.attempts(), 1);  // Not retried: it would be as deep again.
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);

  // At the root the whole room is the call's.
  outcome_.reset();
  Start(R"({"call": {"handler": "deep", "args": {"depth": 16}}})");
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
}

TEST_F(InterpreterTest, NoCallStartsOnceTheRunIsOverItsBudget) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      registry_.Register(std::make_unique<CountingValueHandler>(&calls)).ok());
  std::string children;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&children, i > 0 ? "," : "",
                    R"({"call": {"handler": "counted"}})");
  }
  RunOptions options;
  options.max_outcome_bytes = 1 << 20;  // 16 values of 64 KiB.
  Start(
      absl::StrCat(R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [)",
                   children, "]}}"),
      options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(calls.load(), 16);  // The 16th passes the limit; none after.
}

TEST_F(InterpreterTest,
       ValuesAreChargedToTheMemoryBudgetAndTheOutcomeKeepsIts) {
  engine::MemoryBudget budget(10 << 20);
  {
    engine::MemoryCharge charge(&budget);
    RunOptions options;
    options.memory = &charge;
    Start(ValuesPlan(20, 10'000), options);
    ASSERT_TRUE(outcome_.has_value());
    EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
    // The outcome holds every value once, at its leaf.
    EXPECT_GE(charge.bytes(), 200'000);
    EXPECT_GE(charge.bytes(), static_cast<int64_t>(outcome_->ByteSizeLong()));
    EXPECT_EQ(budget.used(), charge.bytes());
  }
  EXPECT_EQ(budget.used(), 0);
}

TEST_F(InterpreterTest, ARunThatTheMemoryBudgetCannotHoldFailsSayingSo) {
  engine::MemoryBudget budget(300'000, "the runs in flight",
                              "--max_inflight_bytes");
  engine::MemoryCharge other(&budget);
  ASSERT_TRUE(other.TryAdd(100'000));  // Another run holds some.
  engine::MemoryCharge charge(&budget);
  RunOptions options;
  options.memory = &charge;
  options.root_only = true;
  Start(ValuesPlan(30, 10'000), options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(outcome_->error().message(), HasSubstr("--max_inflight_bytes"));
  EXPECT_THAT(outcome_->error().message(), HasSubstr("Retry later"));
  // What the run made is gone; the root's record is all it keeps.
  EXPECT_LT(charge.bytes(), 10'000);
  EXPECT_EQ(budget.used(), 100'000 + charge.bytes());
}

TEST_F(InterpreterTest, ARetriedNodeGivesBackWhatItsEarlierAttemptHeld) {
  engine::MemoryBudget budget(10 << 20);
  engine::MemoryCharge charge(&budget);
  RunOptions options;
  options.memory = &charge;
  options.root_only = true;
  // The sequence's first step keeps a value, the second fails: three
  // attempts, each charging and then giving back the first step's value.
  Start(R"({"retry": {"max_attempts": 3, "initial_backoff": "0.001s",
                      "retryable_codes": ["UNAVAILABLE"]},
            "sequence": {"children": [
    {"call": {"handler": "value", "args": {"value": ")" +
            std::string(100'000, 'r') + R"("}}},
    {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}
  ]}})",
        options);
  for (int i = 0; i < 10 && !outcome_.has_value(); ++i) {
    env_.AdvanceBy(absl::Seconds(1));
  }
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->attempts(), 3);
  EXPECT_LT(charge.bytes(), 10'000);
}

TEST_F(InterpreterTest, LongErrorMessagesAreCutShort) {
  Start(R"({"sequence": {"children": [{"sequence": {"children": [
    {"call": {"handler": "fail", "args": {"code": "INTERNAL", "message": ")" +
        std::string(100'000, 'e') + R"("}}}]}}]}})");
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_LE(outcome_->error().message().size(), common::kMaxMessageBytes);
  EXPECT_THAT(outcome_->error().message(), HasSubstr("bytes in all"));
  EXPECT_LE(outcome_->children(0).children(0).error().message().size(),
            common::kMaxMessageBytes);
}

class CountingObserver : public NodeObserver {
 public:
  explicit CountingObserver(size_t nodes) : started_(nodes), finished_(nodes) {}
  void OnNodeStarted(int32_t node) override { started_[node]++; }
  void OnNodeFinished(int32_t node, weft::v1::NodeState state) override {
    if (state == weft::v1::NODE_STATE_UNSPECIFIED) bad_states_++;
    finished_[node]++;
  }
  std::vector<std::atomic<int>> started_;
  std::vector<std::atomic<int>> finished_;
  std::atomic<int> bad_states_{0};
};

// A wide tree of every kind: short sleeps, failures, timeouts, races,
// sequences, retries and offloaded hashes, on real threads, so that
// completions, cancellations and timers race each other.
std::string MixedTree(int width) {
  std::string children;
  for (int i = 0; i < width; ++i) {
    std::string leaf;
    switch (i % 7) {
      case 0:
        leaf = absl::StrCat(
            R"({"call": {"handler": "sleep", "args": {"duration": "0.00)",
            i % 10, R"(s"}}})");
        break;
      case 1:
        leaf =
            R"({"timeout": "0.001s", "call": {"handler": "sleep", "args": {"duration": "10s"}}})";
        break;
      case 2:
        leaf = R"({"call": {"handler": "value", "args": {"value": 1}}})";
        break;
      case 3:
        leaf =
            R"({"race": {"hedgeDelay": "0.0005s", "children": [{"call": {"handler": "sleep", "args": {"duration": "0.002s"}}}, {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "after": "0.001s"}}}, {"call": {"handler": "value", "args": {"value": 2}}}]}})";
        break;
      case 4:
        // Its UNAVAILABLE comes 20 ms in, well after the 1 ms timeouts, so
        // a late timer thread on a loaded machine cannot let it fail the
        // root first.
        leaf =
            R"({"sequence": {"children": [{"call": {"handler": "sleep", "args": {"duration": "0.02s"}}}, {"retry": {"maxAttempts": 3, "initialBackoff": "0.0001s"}, "call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}]}})";
        break;
      case 5:
        leaf =
            R"({"offload": {"child": {"call": {"handler": "hash", "args": {"data": "x", "rounds": 2000}}}}})";
        break;
      default:
        leaf =
            R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [{"call": {"handler": "sleep", "args": {"duration": "0.003s"}}}, {"call": {"handler": "value", "args": {"value": 2}}}]}})";
    }
    absl::StrAppend(&children, i ? "," : "", leaf);
  }
  return absl::StrCat(R"({"parallel": {"children": [)", children, "]}}");
}

class InterpreterThreadsTest : public ::testing::TestWithParam<int> {};

TEST_P(InterpreterThreadsTest, EveryNodeStartsAndEndsExactlyOnce) {
  handlers::HandlerRegistry registry;
  EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry).ok());
  engine::EventLoop loop(GetParam());
  PoolSet pools({{"default", 2, 1000}});
  for (int round = 0; round < 20; ++round) {
    auto plan = plan::Compile(PlanFromJson(MixedTree(42)), "plan", registry,
                              Limits(), &pools);
    ASSERT_TRUE(plan.ok());
    std::shared_ptr<const CompiledPlan> compiled = *std::move(plan);
    CountingObserver observer(compiled->nodes().size());
    weft::testing::Notification done;
    NodeOutcome outcome;
    RunOptions options;
    options.env = &loop;
    options.observer = &observer;
    Execute(compiled, options, [&](NodeOutcome o) {
      outcome = std::move(o);
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
    // Outcomes in pre-order are the compiled nodes in order.
    std::vector<weft::v1::NodeState> states;
    std::function<void(const NodeOutcome&)> flatten =
        [&](const NodeOutcome& o) {
          states.push_back(o.state());
          for (const NodeOutcome& c : o.children()) flatten(c);
        };
    flatten(outcome);
    ASSERT_EQ(states.size(), compiled->nodes().size());
    for (size_t i = 0; i < compiled->nodes().size(); ++i) {
      // A node either ran once, start to end, or never started (a hedge
      // whose race was decided first).
      const int runs = states[i] == weft::v1::NODE_STATE_SKIPPED ? 0 : 1;
      ASSERT_EQ(observer.started_[i].load(), runs) << i;
      ASSERT_EQ(observer.finished_[i].load(), runs) << i;
      ASSERT_NE(states[i], weft::v1::NODE_STATE_UNSPECIFIED) << i;
    }
    EXPECT_EQ(observer.bad_states_.load(), 0);
    // The timeouts fail the root; everything else was cancelled or ended.
    EXPECT_EQ(outcome.state(), weft::v1::NODE_STATE_FAILED);
    EXPECT_EQ(outcome.error().code(), "DEADLINE_EXCEEDED");
  }
}

TEST_P(InterpreterThreadsTest,
       TenThousandSleepingLeavesRunOnAFixedSetOfThreads) {
  handlers::HandlerRegistry registry;
  EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry).ok());
  engine::EventLoop loop(GetParam());
  std::string children;
  for (int i = 0; i < 10'000; ++i) {
    absl::StrAppend(
        &children, i ? "," : "",
        R"({"call": {"handler": "sleep", "args": {"duration": "3600s"}}})");
  }
  auto plan =
      plan::Compile(PlanFromJson(absl::StrCat(R"({"parallel": {"children": [)",
                                              children, "]}}")),
                    "plan", registry, Limits{.max_plan_nodes = 10'001});
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int threads = engine::testing::ThreadCount();
  weft::testing::Notification done;
  NodeOutcome outcome;
  engine::CancellationSource source;
  RunOptions options;
  options.env = &loop;
  options.token = source.token();
  Execute(*std::move(plan), options, [&](NodeOutcome o) {
    outcome = std::move(o);
    done.Notify();
  });
  // Every leaf is waiting: each holds a timer, none holds a thread.
  EXPECT_EQ(loop.pending_timers(), 10'000u);
  EXPECT_EQ(engine::testing::ThreadCount(), threads);
  EXPECT_FALSE(done.HasBeenNotified());
  source.Cancel(absl::CancelledError("enough"));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_EQ(engine::testing::ThreadCount(), threads);
  EXPECT_EQ(loop.pending_timers(), 0u);
  EXPECT_EQ(outcome.state(), weft::v1::NODE_STATE_CANCELLED);
  ASSERT_EQ(outcome.children_size(), 10'000);
  for (const NodeOutcome& leaf : outcome.children()) {
    ASSERT_EQ(leaf.state(), weft::v1::NODE_STATE_CANCELLED);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, InterpreterThreadsTest,
                         ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace weft::plan

namespace weft::plan {
namespace {

// Records the leaf outcomes a run reports.
class LeafRecorder : public NodeObserver {
 public:
  void OnNodeStarted(int32_t) override {}
  void OnNodeFinished(int32_t, weft::v1::NodeState) override {}
  bool wants_leaf_outcomes() const override { return true; }
  void OnLeafOutcome(int32_t node, const NodeOutcome& outcome) override {
    engine::MutexLock lock(&mu_);
    outcomes_.emplace_back(node, outcome);
  }
  std::vector<std::pair<int32_t, NodeOutcome>> outcomes() const {
    engine::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  mutable engine::Mutex mu_;
  std::vector<std::pair<int32_t, NodeOutcome>> outcomes_ ABSL_GUARDED_BY(mu_);
};

TEST_F(InterpreterTest, LeavesReportTheirOutcomeToAnObserverThatWantsThem) {
  LeafRecorder recorder;
  RunOptions options;
  options.observer = &recorder;
  Start(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "sleep", "args": {"duration": "1s", "value": "A"}}},
    {"id": "b", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "down"}}}]}})",
        options);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  const auto got = recorder.outcomes();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, 1);
  EXPECT_EQ(got[0].second.id(), "a");
  EXPECT_EQ(got[0].second.value().string_value(), "A");
  EXPECT_EQ(Since(got[0].second.start_time()), absl::ZeroDuration());
  EXPECT_EQ(Since(got[0].second.end_time()), absl::Seconds(1));
  EXPECT_EQ(got[0].second.attempts(), 1);
  EXPECT_EQ(got[1].first, 2);
  EXPECT_EQ(got[1].second.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(got[1].second.error().code(), "UNAVAILABLE");
  EXPECT_EQ(got[1].second.error().message(), "down");
}

// What a replica whose lease ended does: each leaf asks before it starts,
// and one refused ends with the refusal, its handler not called; a replayed
// leaf calls nothing, so it is not asked.
class Gate : public NodeObserver {
 public:
  void OnNodeStarted(int32_t) override {}
  void OnNodeFinished(int32_t, weft::v1::NodeState) override {}
  absl::Status MayStartLeaf() override {
    ++asked;
    return open ? absl::OkStatus()
                : absl::UnavailableError("the lease ended here");
  }
  bool open = true;
  int asked = 0;
};

TEST_F(InterpreterTest,
       ALeafTheObserverRefusesIsNotCalledAndEndsWithTheRefusal) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      registry_.Register(std::make_unique<CountingValueHandler>(&calls)).ok());
  Gate gate;
  RunOptions options;
  options.observer = &gate;
  Start(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "counted"}},
    {"id": "wait", "call": {"handler": "sleep", "args": {"duration": "1s"}}},
    {"id": "b", "call": {"handler": "counted"},
     "retry": {"maxAttempts": 3, "initialBackoff": "1s"}}]}})",
        options);
  EXPECT_EQ(calls.load(), 1);
  gate.open = false;  // The lease ends while "wait" sleeps.
  env_.AdvanceBy(absl::Seconds(1));
  env_.AdvanceBy(absl::Seconds(10));  // Its retries are refused too.
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(gate.asked, 2 + 3);
  const NodeOutcome& b = outcome_->children(2);
  EXPECT_EQ(b.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(b.error().code(), "UNAVAILABLE");
  EXPECT_EQ(b.error().message(), "the lease ended here");
  EXPECT_EQ(b.attempts(), 3);
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
}

TEST_F(InterpreterTest, AReplayUsesRecordedLeavesAndMarksThoseThatRunAgain) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      registry_.Register(std::make_unique<CountingValueHandler>(&calls)).ok());
  // Nodes: 0 the sequence, 1 "a", 2 "b", 3 "c".
  auto replay = std::make_shared<Replay>();
  NodeOutcome a;
  a.set_id("a");
  a.set_state(weft::v1::NODE_STATE_SUCCEEDED);
  a.mutable_value()->set_string_value("recorded");
  common::SetTimestamp(t0_ - absl::Seconds(10), a.mutable_start_time());
  common::SetTimestamp(t0_ - absl::Seconds(9), a.mutable_end_time());
  a.set_attempts(2);
  replay->ended[1] = a;
  replay->started.insert(2);  // In flight when the last run stopped.
  LeafRecorder recorder;
  RunOptions options;
  options.replay = replay;
  options.observer = &recorder;
  Start(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "counted"}},
    {"id": "b", "call": {"handler": "counted"}},
    {"id": "c", "call": {"handler": "value", "args": {"value": "C"}}}]}})",
        options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(calls.load(), 1);  // "b" alone.
  const NodeOutcome& got_a = outcome_->children(0);
  EXPECT_EQ(got_a.value().string_value(), "recorded");
  EXPECT_TRUE(got_a.recovered());
  EXPECT_FALSE(got_a.ran_again());
  EXPECT_EQ(got_a.attempts(), 2);
  EXPECT_EQ(Since(got_a.start_time()), -absl::Seconds(10));
  EXPECT_EQ(Since(got_a.end_time()), -absl::Seconds(9));
  EXPECT_TRUE(outcome_->children(1).ran_again());
  EXPECT_FALSE(outcome_->children(1).recovered());
  EXPECT_FALSE(outcome_->children(2).ran_again());
  EXPECT_FALSE(outcome_->children(2).recovered());
  // What was replayed is not reported again; what ran is.
  const auto reported = recorder.outcomes();
  ASSERT_EQ(reported.size(), 2u);
  EXPECT_EQ(reported[0].first, 2);
  EXPECT_EQ(reported[1].first, 3);
}

TEST_F(InterpreterTest, AReplayedFailureFailsItsParentAsItDidBefore) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      registry_.Register(std::make_unique<CountingValueHandler>(&calls)).ok());
  auto replay = std::make_shared<Replay>();
  NodeOutcome x;
  x.set_state(weft::v1::NODE_STATE_FAILED);
  x.mutable_error()->set_code("UNAVAILABLE");
  x.mutable_error()->set_message("primary is down");
  x.mutable_error()->set_reason("HTTP_UNREACHABLE");
  x.set_attempts(1);
  replay->ended[1] = x;
  RunOptions options;
  options.replay = replay;
  Start(R"({"sequence": {"children": [
    {"id": "x", "call": {"handler": "counted"}},
    {"id": "y", "call": {"handler": "counted"}}]}})",
        options);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "UNAVAILABLE");
  EXPECT_EQ(outcome_->error().message(), "children[0] \"x\": primary is down");
  EXPECT_EQ(outcome_->children(0).error().reason(), "HTTP_UNREACHABLE");
  EXPECT_TRUE(outcome_->children(0).recovered());
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_SKIPPED);
}

}  // namespace
}  // namespace weft::plan
