// Notification and BlockingCounter for tests, built on the engine's
// std-based Mutex so ThreadSanitizer sees them (Debian's Abseil, and so
// absl::Notification, is not instrumented).

#ifndef WEFT_TESTS_TESTING_SYNC_H_
#define WEFT_TESTS_TESTING_SYNC_H_

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"

namespace weft::testing {

// A generous bound for waits on conditions in tests: the machine is shared
// and slow, so only a hang should ever reach it.
inline constexpr absl::Duration kWait = absl::Seconds(60);

class Notification {
 public:
  void Notify() {
    engine::MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  bool HasBeenNotified() const {
    engine::MutexLock lock(&mu_);
    return notified_;
  }
  // Returns false if `timeout` passed first.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    engine::MutexLock lock(&mu_);
    while (!notified_) {
      if (!cv_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) {
        return notified_;
      }
    }
    return true;
  }
  void WaitForNotification() const {
    WaitForNotificationWithTimeout(absl::InfiniteDuration());
  }

 private:
  mutable engine::Mutex mu_;
  mutable engine::CondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

class BlockingCounter {
 public:
  explicit BlockingCounter(int count) : count_(count) {}
  void DecrementCount() {
    engine::MutexLock lock(&mu_);
    if (--count_ == 0) cv_.SignalAll();
  }
  // Returns false if `timeout` passed before the count reached zero.
  bool Wait(absl::Duration timeout = kWait) {
    const absl::Time deadline = absl::Now() + timeout;
    engine::MutexLock lock(&mu_);
    while (count_ > 0) {
      if (!cv_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) {
        return count_ <= 0;
      }
    }
    return true;
  }

 private:
  engine::Mutex mu_;
  engine::CondVar cv_;
  int count_ ABSL_GUARDED_BY(mu_);
};

// Polls `condition` until it holds; false if it did not within `timeout`.
template <typename F>
bool WaitFor(F condition, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    Notification().WaitForNotificationWithTimeout(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_SYNC_H_
