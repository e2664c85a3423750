#include "server/engine/event_loop.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace weft::engine {

EventLoop::EventLoop(int threads) {
  threads = std::max(threads, 1);
  workers_.reserve(threads);
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "weft-loop");
      WorkerLoop();
    });
  }
  timer_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "weft-timer");
    TimerLoop();
  });
}

EventLoop::~EventLoop() {
  {
    MutexLock lock(&timer_mu_);
    timers_stopping_ = true;
  }
  timers_changed_.SignalAll();
  timer_thread_.join();
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_ready_.SignalAll();
  for (std::thread& t : workers_) t.join();
}

void EventLoop::Post(Closure fn) {
  {
    MutexLock lock(&mu_);
    work_.push_back(std::move(fn));
  }
  work_ready_.Signal();
}

TimerId EventLoop::Schedule(absl::Time when, Closure fn) {
  bool earliest;
  TimerId id;
  {
    MutexLock lock(&timer_mu_);
    earliest = when < timer_wake_;
    if (earliest) timer_wake_ = when;
    id = timers_.Add(when, std::move(fn));
  }
  if (earliest) timers_changed_.Signal();
  return id;
}

bool EventLoop::Cancel(TimerId id) {
  Closure fn;  // Destroyed after the lock is released.
  MutexLock lock(&timer_mu_);
  return timers_.Remove(id, &fn);
}

size_t EventLoop::pending_timers() const {
  MutexLock lock(&timer_mu_);
  return timers_.size();
}

void EventLoop::WorkerLoop() {
  for (;;) {
    Closure fn;
    {
      MutexLock lock(&mu_);
      while (work_.empty() && !stopping_) work_ready_.Wait(&mu_);
      if (work_.empty()) return;  // Stopping, and everything posted has run.
      fn = std::move(work_.front());
      work_.pop_front();
    }
    std::move(fn)();
  }
}

void EventLoop::TimerLoop() {
  std::vector<Closure> due;
  for (;;) {
    {
      MutexLock lock(&timer_mu_);
      for (;;) {
        if (timers_stopping_) return;
        const absl::Time now = absl::Now();
        if (timers_.earliest() <= now) {
          timers_.PopDue(now, &due);
          break;
        }
        timer_wake_ = timers_.earliest();  // InfiniteFuture when empty.
        if (timers_.empty()) {
          timers_changed_.Wait(&timer_mu_);
        } else {
          timers_changed_.WaitUntil(&timer_mu_, timer_wake_);
        }
      }
    }
    // Hand every due timer to the workers in one batch.
    {
      MutexLock lock(&mu_);
      for (Closure& fn : due) work_.push_back(std::move(fn));
    }
    if (due.size() == 1) {
      work_ready_.Signal();
    } else {
      work_ready_.SignalAll();
    }
    due.clear();
  }
}

}  // namespace weft::engine
