#include "tests/testing/manual_env.h"

#include <utility>

namespace weft::engine {

ManualEnv::ManualEnv(absl::Time start) : now_(start) {}

absl::Time ManualEnv::Now() const {
  MutexLock lock(&mu_);
  return now_;
}

void ManualEnv::Post(Closure fn) {
  MutexLock lock(&mu_);
  work_.push_back(std::move(fn));
}

TimerId ManualEnv::Schedule(absl::Time when, Closure fn) {
  MutexLock lock(&mu_);
  return timers_.Add(when, std::move(fn));
}

bool ManualEnv::Cancel(TimerId id) {
  Closure fn;  // Destroyed after the lock is released.
  MutexLock lock(&mu_);
  return timers_.Remove(id, &fn);
}

int ManualEnv::RunPending() {
  int ran = 0;
  for (;;) {
    Closure fn;
    {
      MutexLock lock(&mu_);
      if (work_.empty()) return ran;
      fn = std::move(work_.front());
      work_.pop_front();
    }
    std::move(fn)();
    ++ran;
  }
}

void ManualEnv::AdvanceTo(absl::Time t) {
  RunPending();
  for (;;) {
    Closure fn;
    {
      MutexLock lock(&mu_);
      if (timers_.earliest() > t) {
        if (now_ < t) now_ = t;
        break;
      }
      if (timers_.empty()) {
        if (now_ < t) now_ = t;
        break;
      }
      if (timers_.earliest() > now_) now_ = timers_.earliest();
      timers_.PopOne(now_, &fn);
    }
    std::move(fn)();
    RunPending();
  }
  RunPending();
}

size_t ManualEnv::pending_timers() const {
  MutexLock lock(&mu_);
  return timers_.size();
}

absl::Time ManualEnv::next_timer() const {
  MutexLock lock(&mu_);
  return timers_.earliest();
}

}  // namespace weft::engine
