#include "server/engine/event_loop.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::weft::engine::testing::ThreadCount;
using ::weft::testing::kWait;

TEST(EventLoopTest, PostRunsOnALoopThread) {
  EventLoop loop(2);
  weft::testing::Notification done;
  std::thread::id ran_on;
  loop.Post([&] {
    ran_on = std::this_thread::get_id();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, TimersNeverFireEarly) {
  EventLoop loop(2);
  constexpr int kTimers = 50;
  weft::testing::BlockingCounter left(kTimers);
  std::atomic<int> early{0};
  const absl::Time start = absl::Now();
  for (int i = kTimers - 1; i >= 0; --i) {
    const absl::Time when = start + absl::Milliseconds(i);
    loop.Schedule(when, [&, when] {
      if (absl::Now() < when) early++;
      left.DecrementCount();
    });
  }
  ASSERT_TRUE(left.Wait());
  EXPECT_EQ(early.load(), 0);
}

// Timers at distinct deadlines fire in deadline order. With one worker
// thread the order they run in is the order they fire in (with more, two
// timers due together may run at once). The headers (env.h, event_loop.h)
// promise no order among timers with the same deadline, so here each
// deadline is shared by two timers, which may fire in either order.
TEST(EventLoopTest, TimersFireInDeadlineOrder) {
  EventLoop loop(1);
  constexpr int kTimers = 50;
  // The order only holds for timers scheduled before the first is due: one
  // scheduled late (its deadline already past) fires when it is scheduled.
  // The first deadline is far enough ahead for that; a machine that stalls
  // longer than that while scheduling tries again.
  for (int attempt = 0;; ++attempt) {
    ASSERT_LT(attempt, 5) << "could not schedule " << kTimers
                          << " timers within 200 ms";
    engine::Mutex mu;
    std::vector<absl::Time> fired;  // Each timer's deadline, as it fires.
    weft::testing::BlockingCounter left(kTimers);
    const absl::Time first = absl::Now() + absl::Milliseconds(200);
    // Scheduled in a scrambled order: timer i is due 1 ms after timer i - 2.
    for (int k = 0; k < kTimers; ++k) {
      const int i = (k * 7) % kTimers;
      const absl::Time when = first + absl::Milliseconds(i / 2);
      loop.Schedule(when, [&, when] {
        EXPECT_GE(absl::Now(), when);
        {
          engine::MutexLock lock(&mu);
          fired.push_back(when);
        }
        left.DecrementCount();
      });
    }
    const bool in_time = absl::Now() < first;
    ASSERT_TRUE(left.Wait());
    if (!in_time) continue;
    engine::MutexLock lock(&mu);
    ASSERT_EQ(fired.size(), static_cast<size_t>(kTimers));
    for (int i = 1; i < kTimers; ++i) {
      EXPECT_LE(fired[i - 1], fired[i])
          << "timer " << i << " (due at +" << (fired[i] - first)
          << ") fired after one due at +" << (fired[i - 1] - first);
    }
    break;
  }
}

// Counts destructions of a closure's capture, to prove a cancelled timer's
// function is destroyed without running.
struct Tracker {
  explicit Tracker(std::atomic<int>* d) : destroyed(d) {}
  Tracker(Tracker&& o) noexcept
      : destroyed(std::exchange(o.destroyed, nullptr)) {}
  ~Tracker() {
    if (destroyed != nullptr) (*destroyed)++;
  }
  std::atomic<int>* destroyed;
};

TEST(EventLoopTest, CancelledTimerIsDestroyedUnrun) {
  EventLoop loop(1);
  std::atomic<int> destroyed{0};
  bool ran = false;
  TimerId id = loop.Schedule(absl::Now() + absl::Hours(1),
                             [&, t = Tracker(&destroyed)] { ran = true; });
  EXPECT_EQ(loop.pending_timers(), 1u);
  EXPECT_TRUE(loop.Cancel(id));
  EXPECT_FALSE(loop.Cancel(id));
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_EQ(loop.pending_timers(), 0u);
  EXPECT_FALSE(ran);
}

// A timer cancelled before it is due wakes no thread (the timer thread
// sleeps on to the time it had): one due after it must still fire, and one
// due before it must wake the thread at once.
TEST(EventLoopTest, TimersAroundACancelledOneFireOnTime) {
  EventLoop loop(1);
  // Later than the cancelled one: fires when the thread wakes at the
  // cancelled one's time and looks again.
  {
    const absl::Time start = absl::Now();
    loop.Cancel(loop.Schedule(start + absl::Milliseconds(100), [] {}));
    weft::testing::Notification fired;
    absl::Time fired_at;
    const absl::Time when = start + absl::Milliseconds(200);
    loop.Schedule(when, [&] {
      fired_at = absl::Now();
      fired.Notify();
    });
    ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
    EXPECT_GE(fired_at, when);
  }
  // Earlier than the cancelled one, which was an hour away: the thread is
  // woken for it rather than sleeping out the hour.
  {
    loop.Cancel(loop.Schedule(absl::Now() + absl::Hours(1), [] {}));
    weft::testing::Notification fired;
    loop.Schedule(absl::Now() + absl::Milliseconds(10),
                  [&] { fired.Notify(); });
    ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  }
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TEST(EventLoopTest, TenThousandTimersRunOnAFixedSetOfThreads) {
  EventLoop loop(2);
  EXPECT_EQ(loop.threads(), 2);
  const int with_loop = ThreadCount();
  constexpr int kTimers = 10'000;
  weft::testing::BlockingCounter left(kTimers);
  weft::testing::Notification release;
  const absl::Time when = absl::Now() + absl::Milliseconds(200);
  for (int i = 0; i < kTimers; ++i) {
    loop.Schedule(when, [&] { left.DecrementCount(); });
  }
  EXPECT_EQ(ThreadCount(), with_loop);
  ASSERT_TRUE(left.Wait());
  EXPECT_EQ(ThreadCount(), with_loop);
}

TEST(EventLoopTest, DestructorRunsWorkAlreadyPosted) {
  std::atomic<int> ran{0};
  {
    EventLoop loop(1);
    for (int i = 0; i < 100; ++i) loop.Post([&] { ran++; });
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(EventLoopTest, WorkMayPostAndScheduleMoreWork) {
  EventLoop loop(2);
  weft::testing::Notification done;
  loop.Post([&] {
    loop.Schedule(absl::Now() + absl::Milliseconds(1),
                  [&] { loop.Post([&] { done.Notify(); }); });
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
}

}  // namespace
}  // namespace weft::engine
