#include "server/engine/thread_pool.h"

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/sleep.h"
#include "tests/engine/test_util.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::kWait;
using ::weft::testing::Notification;

TEST(ThreadPoolTest, RunsWorkOnItsOwnThreadsAndCompletesOnTheLoop) {
  EventLoop loop(1);
  Notification done;
  ThreadPool pool("default", 2, 10);
  std::thread::id worker, completion;
  absl::Status result;
  RunInThreadPool(
      pool, loop, {},
      [&](const CancellationToken&) {
        worker = std::this_thread::get_id();
        return absl::OkStatus();
      },
      [&](absl::Status s) {
        completion = std::this_thread::get_id();
        result = s;
        done.Notify();
      });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(result.ok());
  EXPECT_NE(worker, std::this_thread::get_id());
  EXPECT_NE(worker, completion);  // Completion posted to the loop.
}

TEST(ThreadPoolTest, FullQueueIsResourceExhaustedNamingThePool) {
  EventLoop loop(1);
  Notification release, started;
  ThreadPool pool("images", 1, 1);
  // Occupy the thread, then the one queue slot.
  ASSERT_TRUE(pool.Submit([&] {
                    started.Notify();
                    release.WaitForNotification();
                  })
                  .ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(pool.Submit([] {}).ok());
  std::optional<absl::Status> result;
  RunInThreadPool(
      pool, loop, {}, [](const CancellationToken&) { return absl::OkStatus(); },
      [&](absl::Status s) { result = s; });
  ASSERT_TRUE(result.has_value());  // Refused inline.
  EXPECT_EQ(result->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(result->message(),
            "thread pool \"images\" is full: it holds 2 calls, the most its 1 "
            "thread and queue of 1 take (--pools)");
  release.Notify();
}

TEST(ThreadPoolTest, CancelledQueuedWorkIsDroppedAtOnceAndNeverRuns) {
  EventLoop loop(1);
  Notification release, started;
  ThreadPool pool("default", 1, 10);
  ASSERT_TRUE(pool.Submit([&] {
                    started.Notify();
                    release.WaitForNotification();
                  })
                  .ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
  CancellationSource source;
  std::atomic<bool> ran{false};
  std::optional<absl::Status> result;
  RunInThreadPool(
      pool, loop, source.token(),
      [&](const CancellationToken&) {
        ran = true;
        return absl::OkStatus();
      },
      [&](absl::Status s) { result = s; });
  EXPECT_EQ(pool.queued(), 1);
  source.Cancel(absl::CancelledError("lost the race"));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, absl::CancelledError("lost the race"));
  EXPECT_EQ(pool.queued(), 0);
  release.Notify();
  EXPECT_FALSE(ran.load());
}

TEST(ThreadPoolTest, RunningWorkSeesItsTokenCancelled) {
  EventLoop loop(1);
  Notification started, done;
  ThreadPool pool("default", 1, 10);
  CancellationSource source;
  absl::Status result;
  RunInThreadPool(
      pool, loop, source.token(),
      [&](const CancellationToken& token) {
        started.Notify();
        while (!token.cancelled()) {
          Notification().WaitForNotificationWithTimeout(absl::Milliseconds(1));
        }
        return token.reason();
      },
      [&](absl::Status s) {
        result = s;
        done.Notify();
      });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
  source.Cancel(absl::CancelledError("stop"));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(result, absl::CancelledError("stop"));
}

TEST(ThreadPoolTest, ASaturatedPoolDoesNotDelayTimers) {
  EventLoop loop(1);
  Notification release;
  ThreadPool pool("cpu", 1, 100);
  for (int i = 0; i < 50; ++i) {
    RunInThreadPool(
        pool, loop, {},
        [&](const CancellationToken&) {
          release.WaitForNotificationWithTimeout(kWait);
          return absl::OkStatus();
        },
        [](absl::Status) {});
  }
  // The pool is stuck; a sleep on the loop still ends.
  Notification slept;
  SleepFor(loop, {}, absl::Milliseconds(10),
           [&](absl::Status) { slept.Notify(); });
  EXPECT_TRUE(slept.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(pool.running(), 1);
  release.Notify();
}

TEST(ThreadPoolTest, WorkQueuedBeforeDestructionStillRuns) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool("default", 2, 100);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.Submit([&] { ran++; }).ok());
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace weft::engine
