// EventLoop: the production Env. A fixed set of threads runs posted work and
// expired timers; one more thread keeps time. The number of threads never
// changes, however many timers or callbacks are in flight.
//
// Timers are handed to the threads in deadline order (timers with the same
// deadline in no promised order); with several threads, ones due at nearly
// the same moment may still run side by side.
//
// Thread-safety: every method is safe to call from any thread, including
// from work running on the loop.

#ifndef WEFT_SERVER_ENGINE_EVENT_LOOP_H_
#define WEFT_SERVER_ENGINE_EVENT_LOOP_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/engine/env.h"
#include "server/engine/internal/timer_queue.h"
#include "server/engine/sync.h"

namespace weft::engine {

class EventLoop final : public Env {
 public:
  // Starts `threads` worker threads (at least one) and a timer thread.
  explicit EventLoop(int threads);
  // Stops the threads. Work already posted runs first; timers that have not
  // fired are dropped. The owner must have drained its work before this.
  ~EventLoop() override;

  absl::Time Now() const override { return absl::Now(); }
  void Post(Closure fn) override;
  TimerId Schedule(absl::Time when, Closure fn) override;
  bool Cancel(TimerId id) override;

  int threads() const { return static_cast<int>(workers_.size()); }
  // Timers that have not fired yet.
  size_t pending_timers() const;

 private:
  void WorkerLoop();
  void TimerLoop();

  mutable Mutex mu_;
  CondVar work_ready_;
  std::deque<Closure> work_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex timer_mu_;
  CondVar timers_changed_;
  TimerQueue timers_ ABSL_GUARDED_BY(timer_mu_);
  // When the timer thread wakes by itself: never after the earliest timer
  // (Schedule wakes it for an earlier one). A cancelled timer leaves it as
  // it was, so a timer scheduled and cancelled within one call (a run's
  // deadline, mostly) wakes no thread: the thread sleeps on, wakes once at
  // the time it had, and looks again.
  absl::Time timer_wake_ ABSL_GUARDED_BY(timer_mu_) = absl::InfiniteFuture();
  bool timers_stopping_ ABSL_GUARDED_BY(timer_mu_) = false;

  std::vector<std::thread> workers_;
  std::thread timer_thread_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_EVENT_LOOP_H_
