#include "server/engine/task_group.h"

#include <atomic>
#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/sleep.h"
#include "tests/engine/test_util.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::testing::HasSubstr;
using ::weft::engine::testing::ThreadCount;
using ::weft::testing::kWait;

TEST(TaskGroupTest, EmptyGroupJoinsAtOnce) {
  std::optional<absl::Status> result;
  TaskGroup group;
  std::move(group).Join([&](absl::Status s) { result = s; });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
}

TEST(TaskGroupTest, JoinWaitsForTheSlowestTask) {
  ManualEnv env;
  std::optional<absl::Status> result;
  TaskGroup group;
  for (int ms : {300, 100, 200}) {
    group.Spawn([&, ms](const CancellationToken& token, Done done) {
      SleepFor(env, token, absl::Milliseconds(ms), std::move(done));
    });
  }
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Milliseconds(299));
  EXPECT_FALSE(result.has_value());
  env.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
}

TEST(TaskGroupTest, FirstFailureCancelsTheSiblingsAtOnce) {
  ManualEnv env;
  std::vector<absl::Status> sibling_results(2);
  std::optional<absl::Status> result;
  TaskGroup group;
  for (int i = 0; i < 2; ++i) {
    group.Spawn([&, i](const CancellationToken& token, Done done) {
      SleepFor(env, token, absl::Hours(1),
               [&, i, done = std::move(done)](absl::Status s) mutable {
                 sibling_results[i] = s;
                 std::move(done)(s);
               });
    });
  }
  group.Spawn([&](const CancellationToken& token, Done done) {
    SleepFor(env, token, absl::Seconds(1),
             [done = std::move(done)](absl::Status) mutable {
               std::move(done)(absl::UnavailableError("backend down"));
             });
  });
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::UnavailableError("backend down"));
  for (const absl::Status& s : sibling_results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
    EXPECT_THAT(s.message(), HasSubstr("sibling failed: backend down"));
  }
  EXPECT_EQ(env.pending_timers(), 0u);
}

TEST(TaskGroupTest, OnlyTheFirstOfSeveralFailuresIsReported) {
  std::optional<absl::Status> result;
  int calls = 0;
  TaskGroup group;
  group.Spawn([](const CancellationToken&, Done done) {
    std::move(done)(absl::NotFoundError("first"));
  });
  group.Spawn([](const CancellationToken&, Done done) {
    std::move(done)(absl::InternalError("second"));
  });
  std::move(group).Join([&](absl::Status s) {
    ++calls;
    result = s;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*result, absl::NotFoundError("first"));
}

TEST(TaskGroupTest, TaskSpawnedAfterAFailureSeesItsTokenCancelled) {
  TaskGroup group;
  group.Spawn([](const CancellationToken&, Done done) {
    std::move(done)(absl::UnavailableError("x"));
  });
  bool saw_cancelled = false;
  group.Spawn([&](const CancellationToken& token, Done done) {
    saw_cancelled = token.cancelled();
    std::move(done)(token.reason());
  });
  std::move(group).Join([](absl::Status) {});
  EXPECT_TRUE(saw_cancelled);
}

TEST(TaskGroupTest, ParentCancellationReachesEveryTask) {
  ManualEnv env;
  CancellationSource parent;
  std::optional<absl::Status> result;
  std::atomic<int> cancelled{0};
  TaskGroup group(parent.token());
  for (int i = 0; i < 10; ++i) {
    group.Spawn([&](const CancellationToken& token, Done done) {
      SleepFor(env, token, absl::Hours(1),
               [&, done = std::move(done)](absl::Status s) mutable {
                 if (s.code() == absl::StatusCode::kCancelled) cancelled++;
                 std::move(done)(s);
               });
    });
  }
  std::move(group).Join([&](absl::Status s) { result = s; });
  parent.Cancel(absl::CancelledError("caller left"));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::CancelledError("caller left"));
  EXPECT_EQ(cancelled.load(), 10);
}

TEST(TaskGroupTest, TenThousandSleepingTasksOnAFixedSetOfThreads) {
  EventLoop loop(2);
  const int threads = ThreadCount();
  constexpr int kTasks = 10'000;
  std::atomic<int> ok{0};
  weft::testing::Notification joined;
  absl::Status result;
  TaskGroup group;
  for (int i = 0; i < kTasks; ++i) {
    group.Spawn([&](const CancellationToken& token, Done done) {
      SleepFor(loop, token, absl::Milliseconds(100),
               [&, done = std::move(done)](absl::Status s) mutable {
                 if (s.ok()) ok++;
                 std::move(done)(s);
               });
    });
  }
  EXPECT_EQ(ThreadCount(), threads);
  std::move(group).Join([&](absl::Status s) {
    result = s;
    joined.Notify();
  });
  ASSERT_TRUE(joined.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(ok.load(), kTasks);
  EXPECT_EQ(ThreadCount(), threads);
}

// A task that sleeps `d`, then ends with `result`; counts how it ended.
TaskGroup::Task After(Env& env, absl::Duration d, absl::Status result,
                      std::vector<absl::Status>* log = nullptr) {
  return [&env, d, result, log](const CancellationToken& token, Done done) {
    SleepFor(env, token, d,
             [result, log, done = std::move(done)](absl::Status s) mutable {
               absl::Status out = s.ok() ? result : s;
               if (log != nullptr) log->push_back(out);
               std::move(done)(out);
             });
  };
}

TEST(TaskGroupOptionsTest, AllSettledNeverCancelsAndSucceeds) {
  ManualEnv env;
  std::vector<absl::Status> log;
  std::optional<absl::Status> result;
  TaskGroup group({}, {.join = JoinPolicy::kAllSettled});
  group.Spawn(After(env, absl::Seconds(1), absl::UnavailableError("a"), &log));
  group.Spawn(After(env, absl::Seconds(2), absl::OkStatus(), &log));
  group.Spawn(After(env, absl::Seconds(3), absl::NotFoundError("c"), &log));
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Seconds(2));
  EXPECT_FALSE(result.has_value());
  env.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1], absl::OkStatus());  // Not cancelled by the first failure.
}

TEST(TaskGroupOptionsTest, QuorumSucceedsAtKAndCancelsTheRest) {
  ManualEnv env;
  std::vector<absl::Status> log;
  std::optional<absl::Status> result;
  TaskGroup group({}, {.join = JoinPolicy::kQuorum, .quorum = 2});
  group.Spawn(After(env, absl::Seconds(1), absl::OkStatus(), &log));
  group.Spawn(After(env, absl::Seconds(2), absl::OkStatus(), &log));
  group.Spawn(After(env, absl::Seconds(9), absl::OkStatus(), &log));
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[2].code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(log[2].message()),
              HasSubstr("quorum of 2 was reached"));
}

TEST(TaskGroupOptionsTest, QuorumFailsAsSoonAsItIsImpossible) {
  ManualEnv env;
  std::vector<absl::Status> log;
  std::optional<absl::Status> result;
  TaskGroup group({}, {.join = JoinPolicy::kQuorum, .quorum = 2});
  group.Spawn(
      After(env, absl::Seconds(1), absl::UnavailableError("a down"), &log));
  group.Spawn(
      After(env, absl::Seconds(2), absl::NotFoundError("b gone"), &log));
  group.Spawn(After(env, absl::Seconds(9), absl::OkStatus(), &log));
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Seconds(2));  // Two of three failed: 2 can't succeed.
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result->message(),
            "the quorum of 2 can no longer be reached: 2 of 3 failed: a down; "
            "b gone");
  EXPECT_EQ(log[2].code(), absl::StatusCode::kCancelled);
}

TEST(TaskGroupOptionsTest, MaxConcurrencyBoundsTheRunningTasks) {
  ManualEnv env;
  int running = 0;
  int peak = 0;
  std::optional<absl::Status> result;
  TaskGroup group({}, {.max_concurrency = 2});
  for (int i = 0; i < 5; ++i) {
    group.Spawn([&](const CancellationToken& token, Done done) {
      peak = std::max(peak, ++running);
      SleepFor(env, token, absl::Seconds(1),
               [&, done = std::move(done)](absl::Status s) mutable {
                 --running;
                 std::move(done)(s);
               });
    });
  }
  std::move(group).Join([&](absl::Status s) { result = s; });
  EXPECT_EQ(running, 2);
  env.AdvanceBy(absl::Seconds(2));
  EXPECT_FALSE(result.has_value());
  env.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(peak, 2);
}

TEST(TaskGroupOptionsTest, WaitingTasksStartCancelledAfterAFailure) {
  ManualEnv env;
  std::vector<absl::Status> log;
  std::optional<absl::Status> result;
  TaskGroup group({}, {.max_concurrency = 1});
  group.Spawn(After(env, absl::Seconds(1), absl::InternalError("boom"), &log));
  for (int i = 0; i < 3; ++i)
    group.Spawn(After(env, absl::Seconds(1), absl::OkStatus(), &log));
  std::move(group).Join([&](absl::Status s) { result = s; });
  env.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::InternalError("boom"));
  ASSERT_EQ(log.size(), 4u);
  for (int i = 1; i < 4; ++i)
    EXPECT_EQ(log[i].code(), absl::StatusCode::kCancelled);
}

TEST(TaskGroupOptionsTest, InlineTasksUnderConcurrencyOneDoNotGrowTheStack) {
  std::optional<absl::Status> result;
  int ran = 0;
  TaskGroup group({}, {.max_concurrency = 1});
  for (int i = 0; i < 100'000; ++i) {
    group.Spawn([&](const CancellationToken&, Done done) {
      ++ran;
      std::move(done)(absl::OkStatus());
    });
  }
  std::move(group).Join([&](absl::Status s) { result = s; });
  EXPECT_EQ(ran, 100'000);
  EXPECT_TRUE(result->ok());
}

class TaskGroupRaceTest : public ::testing::TestWithParam<int> {};

// Failures and completions on several loop threads at once: Join runs exactly
// once, after every task.
TEST_P(TaskGroupRaceTest, JoinRunsOnceAfterEveryTaskWhenFailuresRace) {
  EventLoop loop(GetParam());
  for (int round = 0; round < 50; ++round) {
    constexpr int kTasks = 64;
    std::atomic<int> finished{0};
    std::atomic<int> joins{0};
    std::atomic<int> finished_at_join{-1};
    weft::testing::Notification joined;
    TaskGroup group;
    for (int i = 0; i < kTasks; ++i) {
      group.Spawn([&, i](const CancellationToken& token, Done done) {
        loop.Post([&, i, done = std::move(done)]() mutable {
          finished++;
          std::move(done)(i % 3 == 0 ? absl::UnavailableError("boom")
                                     : absl::OkStatus());
        });
      });
    }
    std::move(group).Join([&](absl::Status s) {
      finished_at_join = finished.load();
      joins++;
      EXPECT_EQ(s, absl::UnavailableError("boom"));
      joined.Notify();
    });
    ASSERT_TRUE(joined.WaitForNotificationWithTimeout(kWait));
    EXPECT_EQ(joins.load(), 1);
    EXPECT_EQ(finished_at_join.load(), kTasks);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, TaskGroupRaceTest,
                         ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace weft::engine
