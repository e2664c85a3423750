#include "server/engine/race.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/sleep.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A task that sleeps `d`, then ends with `result`; records how it ended.
RaceTask After(Env& env, absl::Duration d, absl::Status result,
               std::optional<absl::Status>* ended = nullptr) {
  return [&env, d, result, ended](const CancellationToken& token, Done done) {
    SleepFor(env, token, d,
             [result, ended, done = std::move(done)](absl::Status s) mutable {
               absl::Status out = s.ok() ? result : s;
               if (ended != nullptr) *ended = out;
               std::move(done)(out);
             });
  };
}

class RaceTest : public ::testing::Test {
 protected:
  void Race(std::vector<RaceTask> tasks, RaceOptions options = {},
            const CancellationToken& token = {}) {
    RunUntilFirstComplete(env_, token, std::move(tasks), std::move(options),
                          [this](RaceResult r) { result_ = std::move(r); });
  }
  std::vector<RaceTask> Tasks(std::vector<RaceTask> t) { return t; }

  ManualEnv env_;
  std::optional<RaceResult> result_;
};

TEST_F(RaceTest, FirstSuccessWinsAndTheLosersAreCancelledAtOnce) {
  std::optional<absl::Status> slow;
  std::vector<RaceTask> tasks;
  tasks.push_back(After(env_, absl::Seconds(5), absl::OkStatus(), &slow));
  tasks.push_back(After(env_, absl::Seconds(1), absl::OkStatus()));
  Race(std::move(tasks));
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, 1);
  EXPECT_TRUE(result_->status.ok());
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(slow->message()),
              HasSubstr("lost the race to task 1"));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(RaceTest, SlowWinnerBeatsAFastFailureInFirstSuccessMode) {
  std::vector<RaceTask> tasks;
  tasks.push_back(
      After(env_, absl::Milliseconds(10), absl::UnavailableError("down")));
  tasks.push_back(After(env_, absl::Seconds(1), absl::OkStatus()));
  Race(std::move(tasks));
  env_.AdvanceBy(absl::Milliseconds(10));
  EXPECT_FALSE(result_.has_value());
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, 1);
  EXPECT_TRUE(result_->status.ok());
}

TEST_F(RaceTest, EveryFailureFailsTheRaceWithTheLastCodeAndEachMessage) {
  std::vector<RaceTask> tasks;
  tasks.push_back(After(env_, absl::Seconds(1), absl::NotFoundError("a gone")));
  tasks.push_back(
      After(env_, absl::Seconds(2), absl::UnavailableError("b down")));
  Race(std::move(tasks));
  env_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, -1);
  EXPECT_EQ(result_->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result_->status.message(),
            "all 2 alternatives failed: a gone; b down");
}

TEST_F(RaceTest, FirstCompleteIsDecidedByAFailureToo) {
  std::optional<absl::Status> slow;
  std::vector<RaceTask> tasks;
  tasks.push_back(After(env_, absl::Seconds(5), absl::OkStatus(), &slow));
  tasks.push_back(
      After(env_, absl::Seconds(1), absl::UnavailableError("down")));
  Race(std::move(tasks), {.mode = RaceMode::kFirstComplete});
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, 1);
  EXPECT_EQ(result_->status, absl::UnavailableError("down"));
  EXPECT_EQ(slow->code(), absl::StatusCode::kCancelled);
}

TEST_F(RaceTest, HedgedTasksStartOneDelayApart) {
  std::vector<absl::Time> starts;
  auto recording = [&](absl::Duration d) -> RaceTask {
    return [&, d](const CancellationToken& token, Done done) {
      starts.push_back(env_.Now());
      SleepFor(env_, token, d, std::move(done));
    };
  };
  const absl::Time t0 = env_.Now();
  std::vector<RaceTask> tasks;
  tasks.push_back(recording(absl::Seconds(10)));
  tasks.push_back(recording(absl::Seconds(10)));
  tasks.push_back(recording(absl::Milliseconds(10)));
  Race(std::move(tasks), {.hedge_delay = absl::Milliseconds(50)});
  env_.AdvanceBy(absl::Milliseconds(200));
  ASSERT_TRUE(result_.has_value());
  EXPECT_THAT(starts, ElementsAre(t0, t0 + absl::Milliseconds(50),
                                  t0 + absl::Milliseconds(100)));
  EXPECT_EQ(result_->winner, 2);
}

TEST_F(RaceTest, HedgeStartsTheNextAtOnceWhenEveryStartedOneFailed) {
  std::vector<absl::Time> starts;
  auto recording = [&](absl::Duration d, absl::Status s) -> RaceTask {
    return [&, d, s](const CancellationToken& token, Done done) {
      starts.push_back(env_.Now());
      SleepFor(env_, token, d,
               [s, done = std::move(done)](absl::Status r) mutable {
                 std::move(done)(r.ok() ? s : r);
               });
    };
  };
  const absl::Time t0 = env_.Now();
  std::vector<RaceTask> tasks;
  tasks.push_back(
      recording(absl::Milliseconds(10), absl::UnavailableError("x")));
  tasks.push_back(recording(absl::Milliseconds(10), absl::OkStatus()));
  tasks.push_back(recording(absl::Milliseconds(10), absl::OkStatus()));
  Race(std::move(tasks), {.hedge_delay = absl::Seconds(1)});
  env_.AdvanceBy(absl::Milliseconds(20));
  ASSERT_TRUE(result_.has_value());
  EXPECT_THAT(starts, ElementsAre(t0, t0 + absl::Milliseconds(10)));
  EXPECT_EQ(result_->winner, 1);
  EXPECT_THAT(result_->started, ElementsAre(true, true, false));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(RaceTest, InlineFailuresStartEachHedgeWithoutRecursion) {
  std::vector<RaceTask> tasks;
  for (int i = 0; i < 10'000; ++i) {
    tasks.push_back([](const CancellationToken&, Done done) {
      std::move(done)(absl::UnavailableError("no"));
    });
  }
  Race(std::move(tasks), {.hedge_delay = absl::Seconds(1)});
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, -1);
  EXPECT_EQ(result_->status.code(), absl::StatusCode::kUnavailable);
}

TEST_F(RaceTest, ParentCancellationEndsTheRaceAndItsHedges) {
  CancellationSource parent;
  std::optional<absl::Status> first;
  std::vector<RaceTask> tasks;
  tasks.push_back(After(env_, absl::Hours(1), absl::OkStatus(), &first));
  tasks.push_back(After(env_, absl::Hours(1), absl::OkStatus()));
  Race(std::move(tasks), {.hedge_delay = absl::Seconds(1)}, parent.token());
  parent.Cancel(absl::CancelledError("caller left"));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, -1);
  EXPECT_EQ(result_->status, absl::CancelledError("caller left"));
  EXPECT_THAT(result_->started, ElementsAre(true, false));
  EXPECT_EQ(*first, absl::CancelledError("caller left"));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(RaceTest, ATaskThatFailsWhileTheRaceIsCancellingIsStillReportedOnce) {
  // Task 1 wins; task 0 ignores its cancellation and fails on its own later.
  Done* late = nullptr;
  Done keep;
  std::vector<RaceTask> tasks;
  tasks.push_back([&](const CancellationToken&, Done done) {
    keep = std::move(done);
    late = &keep;
  });
  tasks.push_back([](const CancellationToken&, Done done) {
    std::move(done)(absl::OkStatus());
  });
  Race(std::move(tasks));
  EXPECT_FALSE(result_.has_value());  // Waits for the loser to finish.
  std::move (*late)(absl::InternalError("failed while cancelling"));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->winner, 1);
  EXPECT_TRUE(result_->status.ok());
}

TEST_F(RaceTest, TaskNamesAppearInTheLosersReason) {
  std::optional<absl::Status> loser;
  std::vector<RaceTask> tasks;
  tasks.push_back(After(env_, absl::Seconds(5), absl::OkStatus(), &loser));
  tasks.push_back(After(env_, absl::Seconds(1), absl::OkStatus()));
  Race(std::move(tasks), {.task_name = [](int i) {
         return i == 1 ? std::string("\"backup\"") : std::string();
       }});
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(loser->message(), "cancelled: lost the race to \"backup\"");
}

// The race's done may free what task_name reads (the interpreter's names
// come from its run, which the done ends), so the winner is named before a
// loser finishing on another thread can end the race. A regression test:
// the winner was named after its lock was released, and under load the last
// loser ended the race in between (a use after free in the interpreter).
TEST(RaceNamingTest, TheWinnerIsNamedBeforeALoserCanEndTheRace) {
  ManualEnv env;
  std::vector<Done> dones(2);
  std::vector<RaceTask> tasks;
  for (int i = 0; i < 2; ++i) {
    tasks.push_back([&dones, i](const CancellationToken&, Done d) {
      dones[i] = std::move(d);
    });
  }
  weft::testing::Notification naming;
  weft::testing::Notification finished;
  std::atomic<bool> finished_while_naming{false};
  RaceOptions options;
  options.task_name = [&](int) {
    naming.Notify();
    // The loser is finishing meanwhile; it must wait for the name. (A
    // bounded wait for what must not happen: it passes after 200 ms.)
    if (finished.WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
      finished_while_naming = true;
    }
    return std::string("\"winner\"");
  };
  std::optional<RaceResult> result;
  RunUntilFirstComplete(env, {}, std::move(tasks), options, [&](RaceResult r) {
    result = std::move(r);
    finished.Notify();
  });
  std::thread winner([&] { std::move(dones[0])(absl::OkStatus()); });
  ASSERT_TRUE(naming.WaitForNotificationWithTimeout(weft::testing::kWait));
  std::thread loser(
      [&] { std::move(dones[1])(absl::UnavailableError("lost anyway")); });
  winner.join();
  loser.join();
  ASSERT_TRUE(finished.HasBeenNotified());
  EXPECT_FALSE(finished_while_naming.load());
  EXPECT_EQ(result->winner, 0);
  EXPECT_TRUE(result->status.ok());
}

class RaceThreadsTest : public ::testing::TestWithParam<int> {};

TEST_P(RaceThreadsTest, DoneRunsOnceAfterEveryStartedTaskUnderRealThreads) {
  EventLoop loop(GetParam());
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> finished{0};
    std::atomic<int> calls{0};
    weft::testing::Notification done;
    std::vector<RaceTask> tasks;
    for (int i = 0; i < 8; ++i) {
      tasks.push_back([&, i](const CancellationToken& token, Done d) {
        SleepFor(loop, token, absl::Microseconds(i * 10),
                 [&, i, d = std::move(d)](absl::Status s) mutable {
                   finished++;
                   std::move(d)(s.ok() && i % 2 ? absl::OkStatus()
                                                : absl::UnavailableError("x"));
                 });
      });
    }
    RunUntilFirstComplete(loop, {}, std::move(tasks), {}, [&](RaceResult r) {
      // Every task that started has finished (a quick winner may decide the
      // race before the last ones start).
      EXPECT_EQ(finished.load(),
                std::count(r.started.begin(), r.started.end(), true));
      EXPECT_EQ(r.winner % 2, 1);
      calls++;
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
    EXPECT_EQ(calls.load(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, RaceThreadsTest, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace weft::engine
