#include "tests/testing/manual_env.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::engine {
namespace {

using ::testing::ElementsAre;

TEST(ManualEnvTest, PostNeverRunsInline) {
  ManualEnv env;
  bool ran = false;
  env.Post([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_EQ(env.RunPending(), 1);
  EXPECT_TRUE(ran);
}

TEST(ManualEnvTest, TimersRunInOrderWithTheClockAtTheirTime) {
  ManualEnv env;
  const absl::Time t0 = env.Now();
  std::vector<absl::Duration> seen;
  env.Schedule(t0 + absl::Seconds(2), [&] { seen.push_back(env.Now() - t0); });
  env.Schedule(t0 + absl::Seconds(1), [&] { seen.push_back(env.Now() - t0); });
  env.AdvanceBy(absl::Milliseconds(999));
  EXPECT_TRUE(seen.empty());
  env.AdvanceBy(absl::Seconds(5));
  EXPECT_THAT(seen, ElementsAre(absl::Seconds(1), absl::Seconds(2)));
  EXPECT_EQ(env.Now() - t0, absl::Milliseconds(5999));
}

TEST(ManualEnvTest, TimerScheduledByATimerRunsInTheSameAdvance) {
  ManualEnv env;
  const absl::Time t0 = env.Now();
  absl::Time inner_ran;
  env.Schedule(t0 + absl::Seconds(1), [&] {
    env.Schedule(env.Now() + absl::Seconds(1), [&] { inner_ran = env.Now(); });
  });
  env.AdvanceBy(absl::Seconds(3));
  EXPECT_EQ(inner_ran, t0 + absl::Seconds(2));
}

TEST(ManualEnvTest, AdvancingWithNoTimersJustMovesTheClock) {
  ManualEnv env;
  const absl::Time t0 = env.Now();
  env.AdvanceBy(absl::Hours(1));
  EXPECT_EQ(env.Now(), t0 + absl::Hours(1));
  env.AdvanceTo(absl::InfiniteFuture());
  EXPECT_EQ(env.Now(), absl::InfiniteFuture());
}

TEST(ManualEnvTest, CancelledTimerNeverRuns) {
  ManualEnv env;
  bool ran = false;
  TimerId id = env.Schedule(env.Now() + absl::Seconds(1), [&] { ran = true; });
  EXPECT_EQ(env.pending_timers(), 1u);
  EXPECT_TRUE(env.Cancel(id));
  EXPECT_FALSE(env.Cancel(id));
  env.AdvanceBy(absl::Seconds(2));
  EXPECT_FALSE(ran);
  EXPECT_EQ(env.pending_timers(), 0u);
}

}  // namespace
}  // namespace weft::engine
