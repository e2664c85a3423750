// The interpreter's node kinds beyond call and parallel: race (failover,
// first-complete, hedging), parallel join policies and max_concurrency,
// sequence, offload, and retry; on the manual clock.

#include <atomic>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "server/engine/event_loop.h"
#include "server/plan/interpreter.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::plan {
namespace {

using ::weft::testing::ToTime;

using ::testing::HasSubstr;
using ::weft::testing::PlanFromJson;
using ::weft::testing::ToJson;
using weft::v1::NodeOutcome;

// "flaky": fails with UNAVAILABLE until it has been called args.fails times,
// then returns "ok". Counts calls across the test.
class FlakyHandler : public handlers::Handler {
 public:
  explicit FlakyHandler(std::atomic<int>* calls) : calls_(calls) {}
  const handlers::HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      const google::protobuf::Struct& args) const override {
    return std::make_unique<FlakyCall>(calls_,
                                       handlers::Args(args).Integer("fails"));
  }

 private:
  struct FlakyCall : handlers::Call {
    FlakyCall(std::atomic<int>* c, int64_t f) : calls(c), fails(f) {}
    void Start(const handlers::CallContext&,
               handlers::CallDone done) const override {
      if (++*calls <= fails)
        return std::move(done)(absl::UnavailableError("flaky"));
      google::protobuf::Value v;
      v.set_string_value("ok");
      std::move(done)(v);
    }
    std::atomic<int>* calls;
    int64_t fails;
  };
  std::atomic<int>* calls_;
  handlers::HandlerInfo info_{.name = "flaky",
                              .description = "test",
                              .args = {{.name = "fails",
                                        .type = handlers::ArgType::kInteger,
                                        .required = true,
                                        .description = "failures first"}}};
};

class KindsTest : public ::testing::Test {
 protected:
  KindsTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
    registry_.Register(std::make_unique<FlakyHandler>(&flaky_calls_))
        .IgnoreError();
  }

  void Start(absl::string_view json, RunOptions options = {}) {
    auto plan =
        plan::Compile(PlanFromJson(json), "plan", registry_, Limits(), &pools_);
    ASSERT_TRUE(plan.ok()) << plan.status();
    options.env = &env_;
    Execute(*std::move(plan), std::move(options),
            [this](NodeOutcome o) { outcome_.emplace(std::move(o)); });
  }

  // Runs posted work (pool completions land here) until the outcome is in.
  bool WaitForOutcome() {
    const absl::Time deadline = absl::Now() + weft::testing::kWait;
    while (!outcome_.has_value() && absl::Now() < deadline) {
      if (env_.RunPending() == 0) {
        weft::testing::Notification().WaitForNotificationWithTimeout(
            absl::Milliseconds(1));
      }
    }
    return outcome_.has_value();
  }

  absl::Duration At(const google::protobuf::Timestamp& t) {
    return ToTime(t) - t0_;
  }

  engine::ManualEnv env_;
  const absl::Time t0_ = env_.Now();
  handlers::HandlerRegistry registry_;
  std::atomic<int> flaky_calls_{0};
  PoolSet pools_{{{"default", 2, 100}, {"tiny", 1, 1}}};
  std::optional<NodeOutcome> outcome_;
};

TEST_F(KindsTest, RaceSlowWinnerBeatsAFastFailure) {
  Start(R"({"race": {"children": [
    {"id": "broken", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "after": "0.01s"}}},
    {"id": "slow", "call": {"handler": "sleep", "args": {"duration": "1s", "value": "answer"}}},
    {"id": "slower", "call": {"handler": "sleep", "args": {"duration": "5s"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->kind(), weft::v1::NODE_KIND_RACE);
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->winner(), "slow");
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"("answer")");
  EXPECT_EQ(outcome_->children(0).state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_SUCCEEDED);
  const NodeOutcome& loser = outcome_->children(2);
  EXPECT_EQ(loser.state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(loser.error().message(),
            "cancelled: lost the race to children[1] \"slow\"");
  EXPECT_EQ(At(loser.end_time()), absl::Seconds(1));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(KindsTest, RaceWhereEveryChildFailsListsEachError) {
  Start(R"({"race": {"children": [
    {"id": "a", "call": {"handler": "fail", "args": {"code": "NOT_FOUND", "message": "a gone", "after": "0.1s"}}},
    {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "b down", "after": "0.2s"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "UNAVAILABLE");
  EXPECT_EQ(outcome_->error().message(),
            "all 2 alternatives failed: children[0] \"a\": a gone; "
            "children[1]: b down");
  EXPECT_EQ(outcome_->winner(), "");
}

TEST_F(KindsTest, FirstCompleteRaceIsDecidedByAFailure) {
  Start(R"({"race": {"mode": "RACE_MODE_FIRST_COMPLETE", "children": [
    {"id": "quick", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "no", "after": "0.1s"}}},
    {"id": "slow", "call": {"handler": "sleep", "args": {"duration": "1s"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(100));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->winner(), "quick");
  EXPECT_EQ(outcome_->error().message(), "children[0] \"quick\": no");
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_CANCELLED);
}

// EXAMPLES.md's search with failover, hedged: the backup starts 50 ms in and
// wins; the fallback (with its own 2 s timeout) starts at 100 ms and loses.
TEST_F(KindsTest, HedgedRaceStartsEachChildOneDelayLater) {
  Start(R"({"race": {"hedgeDelay": "0.05s", "children": [
    {"id": "primary",  "call": {"handler": "sleep", "args": {"duration": "1s", "value": "a"}}},
    {"id": "backup",   "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": "b"}}},
    {"id": "fallback", "timeout": "2s", "call": {"handler": "sleep", "args": {"duration": "0.5s", "value": "c"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->winner(), "backup");
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"("b")");
  EXPECT_EQ(At(outcome_->children(0).start_time()), absl::ZeroDuration());
  EXPECT_EQ(At(outcome_->children(1).start_time()), absl::Milliseconds(50));
  EXPECT_EQ(At(outcome_->children(2).start_time()), absl::Milliseconds(100));
  EXPECT_EQ(At(outcome_->end_time()), absl::Milliseconds(250));
  EXPECT_EQ(outcome_->children(2).state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST_F(KindsTest, HedgeThatNeverCameDueIsSkipped) {
  Start(R"({"race": {"hedgeDelay": "1s", "children": [
    {"id": "primary", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": 1}}},
    {"id": "backup", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": 2}}}]}})");
  env_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->winner(), "primary");
  const NodeOutcome& backup = outcome_->children(1);
  EXPECT_EQ(backup.state(), weft::v1::NODE_STATE_SKIPPED);
  EXPECT_EQ(backup.attempts(), 0);
  EXPECT_FALSE(backup.has_start_time());
  EXPECT_THAT(backup.error().message(), HasSubstr("not started"));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(KindsTest, AllSettledKeepsEveryChildsStateAndNeverCancels) {
  Start(R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
    {"id": "ada", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "smtp down"}}},
    {"id": "grace", "call": {"handler": "sleep", "args": {"duration": "1s", "value": "sent"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)),
            R"({"ada":{"error":{"code":"UNAVAILABLE","message":"smtp down"},)"
            R"("state":"NODE_STATE_FAILED"},)"
            R"("grace":{"state":"NODE_STATE_SUCCEEDED","value":"sent"}})");
}

TEST_F(KindsTest, QuorumReturnsTheSucceededValuesAndCancelsTheRest) {
  Start(R"({"parallel": {"join": "JOIN_QUORUM", "quorum": 2, "children": [
    {"call": {"handler": "sleep", "args": {"duration": "0.1s", "value": "r1"}}},
    {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}},
    {"call": {"handler": "sleep", "args": {"duration": "0.2s", "value": "r3"}}},
    {"call": {"handler": "sleep", "args": {"duration": "9s", "value": "r4"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(200));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"(["r1","r3"])");
  EXPECT_EQ(outcome_->children(3).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_THAT(outcome_->children(3).error().message(),
              HasSubstr("quorum of 2 was reached"));
}

TEST_F(KindsTest, ImpossibleQuorumFailsAtOnce) {
  Start(R"({"parallel": {"join": "JOIN_QUORUM", "quorum": 2, "children": [
    {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "x", "after": "0.1s"}}},
    {"call": {"handler": "fail", "args": {"code": "NOT_FOUND", "message": "y", "after": "0.2s"}}},
    {"call": {"handler": "sleep", "args": {"duration": "9s"}}}]}})");
  env_.AdvanceBy(absl::Milliseconds(200));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "NOT_FOUND");
  EXPECT_EQ(outcome_->error().message(),
            "the quorum of 2 can no longer be reached: 2 of 3 failed: "
            "children[0]: x; children[1]: y");
  EXPECT_EQ(outcome_->children(2).state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST_F(KindsTest, MaxConcurrencyStartsChildrenAsOthersFinish) {
  Start(R"({"parallel": {"maxConcurrency": 2, "children": [
    {"call": {"handler": "sleep", "args": {"duration": "1s", "value": 1}}},
    {"call": {"handler": "sleep", "args": {"duration": "1s", "value": 2}}},
    {"call": {"handler": "sleep", "args": {"duration": "1s", "value": 3}}}]}})");
  env_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), "[1,2,3]");
  EXPECT_EQ(At(outcome_->children(1).start_time()), absl::ZeroDuration());
  EXPECT_EQ(At(outcome_->children(2).start_time()), absl::Seconds(1));
  EXPECT_EQ(At(outcome_->end_time()), absl::Seconds(2));
}

TEST_F(KindsTest, SequenceRunsInOrderAndSkipsTheRestAfterAFailure) {
  Start(R"({"sequence": {"children": [
    {"call": {"handler": "sleep", "args": {"duration": "1s", "value": "one"}}},
    {"id": "bad", "call": {"handler": "fail", "args": {"code": "INTERNAL", "message": "step 2 broke"}}},
    {"parallel": {"children": [{"call": {"handler": "value", "args": {"value": 3}}}]}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->kind(), weft::v1::NODE_KIND_SEQUENCE);
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().message(), "children[1] \"bad\": step 2 broke");
  EXPECT_EQ(outcome_->children(0).state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(At(outcome_->children(1).start_time()), absl::Seconds(1));
  const NodeOutcome& rest = outcome_->children(2);
  EXPECT_EQ(rest.state(), weft::v1::NODE_STATE_SKIPPED);
  EXPECT_EQ(rest.error().message(), "not started: an earlier step failed");
  EXPECT_EQ(rest.children(0).state(), weft::v1::NODE_STATE_SKIPPED);
}

TEST_F(KindsTest, SequenceValueIsTheListOfValues) {
  Start(R"({"sequence": {"children": [
    {"call": {"handler": "value", "args": {"value": "a"}}},
    {"call": {"handler": "sleep", "args": {"duration": "0.5s", "value": "b"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"(["a","b"])");
  EXPECT_EQ(At(outcome_->end_time()), absl::Milliseconds(500));
}

TEST_F(KindsTest, OffloadedHashRunsOnItsPool) {
  Start(R"({"parallel": {"children": [
    {"id": "digest", "offload": {"pool": "default", "child":
       {"call": {"handler": "hash", "args": {"data": "abc"}}}}},
    {"id": "plain", "call": {"handler": "hash", "args": {"data": "abc"}}}]}})");
  ASSERT_TRUE(WaitForOutcome());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  const std::string abc =
      "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"";
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)),
            absl::StrCat(R"({"digest":)", abc, R"(,"plain":)", abc, "}"));
  EXPECT_EQ(outcome_->children(0).kind(), weft::v1::NODE_KIND_OFFLOAD);
}

TEST_F(KindsTest, FullPoolFailsTheCallWithResourceExhausted) {
  // "tiny" has one thread and a queue of one: the third long hash is refused.
  Start(R"({"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
    {"offload": {"pool": "tiny", "child": {"call": {"handler": "hash", "args": {"data": "x", "rounds": 2000000}}}}},
    {"offload": {"pool": "tiny", "child": {"call": {"handler": "hash", "args": {"data": "x", "rounds": 2000000}}}}},
    {"offload": {"pool": "tiny", "child": {"call": {"handler": "hash", "args": {"data": "x", "rounds": 2000000}}}}}]}})");
  ASSERT_TRUE(WaitForOutcome());
  int exhausted = 0;
  for (const NodeOutcome& c : outcome_->children()) {
    if (c.state() == weft::v1::NODE_STATE_FAILED) {
      EXPECT_EQ(c.error().code(), "RESOURCE_EXHAUSTED");
      EXPECT_THAT(c.error().message(),
                  HasSubstr("thread pool \"tiny\" is full"));
      ++exhausted;
    }
  }
  EXPECT_EQ(exhausted, 1);
}

TEST_F(KindsTest, RetryRunsAgainUntilSuccessAndCountsAttempts) {
  Start(
      R"({"retry": {"maxAttempts": 5, "initialBackoff": "0.1s", "jitter": 0.000001},
            "call": {"handler": "flaky", "args": {"fails": 2}}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->attempts(), 3);
  EXPECT_EQ(flaky_calls_.load(), 3);
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"("ok")");
}

TEST_F(KindsTest, RetryGivesUpAfterMaxAttemptsKeepingTheLastError) {
  Start(R"({"retry": {"maxAttempts": 3, "initialBackoff": "0.1s"},
            "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "still down"}}})");
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->attempts(), 3);
  EXPECT_EQ(outcome_->error().message(), "still down");
}

TEST_F(KindsTest, RetryLeavesOtherCodesAlone) {
  Start(R"({"retry": {"maxAttempts": 3},
            "call": {"handler": "fail", "args": {"code": "NOT_FOUND"}}})");
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->attempts(), 1);
}

TEST_F(KindsTest, RetryableCodesReplaceTheDefault) {
  Start(R"({"retry": {"maxAttempts": 2, "retryableCodes": ["NOT_FOUND"]},
            "call": {"handler": "fail", "args": {"code": "NOT_FOUND"}}})");
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->attempts(), 2);
}

TEST_F(KindsTest, TimeoutIsPerAttemptAndItsOwnExpiryIsRetried) {
  Start(
      R"({"timeout": "0.1s", "retry": {"maxAttempts": 3, "initialBackoff": "0.05s", "jitter": 0.000001},
            "call": {"handler": "sleep", "args": {"duration": "1s"}}})");
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(outcome_->attempts(), 3);
  // Three attempts of 0.1 s and two waits of about 0.05 s and 0.1 s.
  EXPECT_NEAR(absl::ToDoubleMilliseconds(ToTime(outcome_->end_time()) - t0_),
              450, 1);
}

TEST_F(KindsTest, ADeadlineInsideTheAttemptIsNotRetriedByDefault) {
  Start(R"({"retry": {"maxAttempts": 3},
            "parallel": {"children": [{"timeout": "0.1s", "call": {"handler": "sleep", "args": {"duration": "1s"}}}]}})");
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(outcome_->attempts(), 1);
}

TEST_F(KindsTest, CancellationStopsABackoffWaitAtOnce) {
  engine::CancellationSource source;
  RunOptions options;
  options.token = source.token();
  Start(
      R"({"retry": {"maxAttempts": 3, "initialBackoff": "3600s", "maxBackoff": "3600s"},
            "call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}})",
      options);
  EXPECT_FALSE(outcome_.has_value());
  source.Cancel(absl::CancelledError("the caller left"));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(outcome_->error().message(), "the caller left");
  EXPECT_EQ(outcome_->attempts(), 1);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(KindsTest, RetriedCompositeShowsItsLastAttemptsChildren) {
  Start(R"({"retry": {"maxAttempts": 2, "initialBackoff": "0.1s"},
            "sequence": {"children": [
              {"call": {"handler": "value", "args": {"value": 1}}},
              {"call": {"handler": "flaky", "args": {"fails": 1}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->attempts(), 2);
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome_->children(1).attempts(), 1);
  EXPECT_EQ(ToJson(common::AssembleValue(*outcome_)), R"([1,"ok"])");
}

// A race inside a parallel inside a sequence, with a timeout at each level:
// the innermost timeout decides.
TEST_F(KindsTest, NestedRaceParallelSequenceWithTimeoutsAtEachLevel) {
  Start(R"({"timeout": "5s", "sequence": {"children": [
    {"timeout": "3s", "parallel": {"children": [
      {"id": "search", "timeout": "1s", "race": {"children": [
        {"call": {"handler": "sleep", "args": {"duration": "2s"}}},
        {"timeout": "0.5s", "call": {"handler": "sleep", "args": {"duration": "2s"}}}]}},
      {"call": {"handler": "sleep", "args": {"duration": "0.1s"}}}]}},
    {"call": {"handler": "value", "args": {"value": "never"}}}]}})");
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome_->error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(outcome_->error().message(),
            "children[0]: children[0] \"search\": timed out after 1s");
  const NodeOutcome& race = outcome_->children(0).children(0);
  EXPECT_EQ(race.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(race.children(1).state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(race.children(0).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(outcome_->children(1).state(), weft::v1::NODE_STATE_SKIPPED);
  EXPECT_EQ(At(outcome_->end_time()), absl::Seconds(1));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

// Ten thousand leaves under races, parallels and sequences.
TEST_F(KindsTest, TenThousandLeafTreeOfEveryKindCompletes) {
  std::string groups;
  for (int g = 0; g < 100; ++g) {
    std::string leaves;
    for (int i = 0; i < 100; ++i) {
      absl::StrAppend(
          &leaves, i ? "," : "",
          R"({"call": {"handler": "sleep", "args": {"duration": "0.)",
          1 + (i % 9), R"(s", "value": 1}}})");
    }
    const char* kind = g % 3 == 0   ? "race"
                       : g % 3 == 1 ? "parallel"
                                    : "sequence";
    absl::StrAppend(&groups, g ? "," : "", R"({")", kind,
                    R"(": {"children": [)", leaves, "]}}");
  }
  auto plan = plan::Compile(
      PlanFromJson(
          absl::StrCat(R"({"parallel": {"children": [)", groups, "]}}")),
      "plan", registry_, Limits{.max_plan_nodes = 20'000}, &pools_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  RunOptions options;
  options.env = &env_;
  options.root_only = true;
  Execute(*std::move(plan), options,
          [this](NodeOutcome o) { outcome_.emplace(std::move(o)); });
  env_.AdvanceBy(absl::Seconds(100));
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_EQ(outcome_->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(common::AssembleValue(*outcome_).list_value().values_size(), 100);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

}  // namespace
}  // namespace weft::plan
