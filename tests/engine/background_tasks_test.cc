#include "server/engine/background_tasks.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/sleep.h"
#include "tests/testing/manual_env.h"

namespace weft::engine {
namespace {

using State = BackgroundTasks::State;

TEST(BackgroundTasksTest, TaskRunsInTheBackgroundAndItsStatusCanBeRead) {
  ManualEnv env;
  BackgroundTasks tasks(env);
  const uint64_t id =
      tasks.Create([&](const CancellationToken& token, Done done) {
        SleepFor(env, token, absl::Seconds(1), std::move(done));
      });
  EXPECT_NE(id, 0u);
  EXPECT_EQ(tasks.Get(id)->state, State::kRunning);
  EXPECT_EQ(tasks.active(), 1);
  env.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(tasks.Get(id)->state, State::kSucceeded);
  EXPECT_EQ(tasks.Get(id)->ended - tasks.Get(id)->created, absl::Seconds(1));
  EXPECT_EQ(tasks.active(), 0);
}

TEST(BackgroundTasksTest, FailureAndCancellationAreTold) {
  ManualEnv env;
  BackgroundTasks tasks(env);
  const uint64_t failing =
      tasks.Create([](const CancellationToken&, Done done) {
        std::move(done)(absl::InternalError("broken"));
      });
  const uint64_t long_one =
      tasks.Create([&](const CancellationToken& token, Done done) {
        SleepFor(env, token, absl::Hours(1), std::move(done));
      });
  EXPECT_EQ(tasks.Get(failing)->state, State::kFailed);
  EXPECT_EQ(tasks.Get(failing)->status, absl::InternalError("broken"));
  EXPECT_TRUE(tasks.Cancel(long_one, absl::CancelledError("by the operator")));
  EXPECT_EQ(tasks.Get(long_one)->state, State::kCancelled);
  EXPECT_FALSE(tasks.Cancel(long_one, absl::CancelledError("again")));
  EXPECT_FALSE(tasks.Cancel(12345, absl::CancelledError("unknown")));
}

TEST(BackgroundTasksTest, ForgetDropsOnlyFinishedTasks) {
  ManualEnv env;
  BackgroundTasks tasks(env);
  const uint64_t id =
      tasks.Create([&](const CancellationToken& token, Done done) {
        SleepFor(env, token, absl::Seconds(1), std::move(done));
      });
  EXPECT_FALSE(tasks.Forget(id));
  env.AdvanceBy(absl::Seconds(1));
  EXPECT_TRUE(tasks.Forget(id));
  EXPECT_FALSE(tasks.Get(id).has_value());
}

TEST(BackgroundTasksTest, CancelAllDrainsEverything) {
  ManualEnv env;
  BackgroundTasks tasks(env);
  for (int i = 0; i < 100; ++i) {
    tasks.Create([&](const CancellationToken& token, Done done) {
      SleepFor(env, token, absl::Hours(1), std::move(done));
    });
  }
  EXPECT_EQ(tasks.active(), 100);
  tasks.CancelAll(absl::CancelledError("server shutting down"));
  EXPECT_TRUE(tasks.WaitIdle(absl::Now()));
  EXPECT_EQ(env.pending_timers(), 0u);
}

}  // namespace
}  // namespace weft::engine
