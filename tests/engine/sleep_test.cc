#include "server/engine/sleep.h"

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "tests/engine/test_util.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

TEST(SleepTest, CompletesAtItsTimeAndNotBefore) {
  ManualEnv env;
  std::optional<absl::Status> result;
  SleepFor(env, {}, absl::Seconds(1), [&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Milliseconds(999));
  EXPECT_FALSE(result.has_value());
  env.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
}

TEST(SleepTest, CancelEndsItAtOnceWithTheReasonAndDropsTheTimer) {
  ManualEnv env;
  CancellationSource source;
  std::optional<absl::Status> result;
  SleepFor(env, source.token(), absl::Hours(1),
           [&](absl::Status s) { result = s; });
  EXPECT_EQ(env.pending_timers(), 1u);
  source.Cancel(absl::CancelledError("lost the race"));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::CancelledError("lost the race"));
  EXPECT_EQ(env.pending_timers(), 0u);
}

TEST(SleepTest, AlreadyCancelledTokenCompletesInline) {
  ManualEnv env;
  CancellationSource source;
  source.Cancel(absl::CancelledError("gone"));
  std::optional<absl::Status> result;
  SleepFor(env, source.token(), absl::Seconds(1),
           [&](absl::Status s) { result = s; });
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::CancelledError("gone"));
  EXPECT_EQ(env.pending_timers(), 0u);
}

TEST(SleepTest, CancelAfterItEndedChangesNothing) {
  ManualEnv env;
  CancellationSource source;
  int calls = 0;
  absl::Status last;
  SleepFor(env, source.token(), absl::Seconds(1), [&](absl::Status s) {
    ++calls;
    last = s;
  });
  env.AdvanceBy(absl::Seconds(1));
  source.Cancel(absl::CancelledError("late"));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(last.ok());
}

class SleepStressTest : public ::testing::TestWithParam<int> {};

// Sleeps racing with cancellation on real threads: each completes exactly
// once, whichever side wins.
TEST_P(SleepStressTest, EachSleepCompletesExactlyOnceUnderRacingCancels) {
  constexpr int kSleeps = 2000;
  std::vector<std::unique_ptr<CancellationSource>> sources;
  std::vector<std::atomic<int>> calls(kSleeps);
  {
    EventLoop loop(GetParam());
    weft::testing::BlockingCounter left(kSleeps);
    for (int i = 0; i < kSleeps; ++i) {
      sources.push_back(std::make_unique<CancellationSource>());
      SleepFor(loop, sources.back()->token(), absl::Microseconds(i % 50),
               [&, i](absl::Status) {
                 calls[i]++;
                 left.DecrementCount();
               });
    }
    for (int i = 0; i < kSleeps; i += 2) {
      loop.Post([&, i] { sources[i]->Cancel(absl::CancelledError("race")); });
    }
    ASSERT_TRUE(left.Wait());
  }  // The loop's destructor runs every cancel still queued.
  for (int i = 0; i < kSleeps; ++i) ASSERT_EQ(calls[i].load(), 1) << i;
}

INSTANTIATE_TEST_SUITE_P(Threads, SleepStressTest, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace weft::engine
