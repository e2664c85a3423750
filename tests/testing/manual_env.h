// ManualEnv: an Env for tests, whose clock moves only when told to.
//
// Posted work and due timers run on the thread that calls RunPending() or
// AdvanceBy(), in order, so tests of timeouts and backoff are exact and
// deterministic. Other threads may Post, Schedule and Cancel at any time.
//
// Thread-safety: safe to call from any thread; work runs on the caller of
// RunPending()/AdvanceBy()/AdvanceTo().

#ifndef WEFT_TESTS_TESTING_MANUAL_ENV_H_
#define WEFT_TESTS_TESTING_MANUAL_ENV_H_

#include <deque>

#include "absl/base/thread_annotations.h"
#include "server/engine/env.h"
#include "server/engine/internal/timer_queue.h"
#include "server/engine/sync.h"

namespace weft::engine {

class ManualEnv final : public Env {
 public:
  explicit ManualEnv(absl::Time start = absl::FromUnixSeconds(1'700'000'000));

  absl::Time Now() const override;
  void Post(Closure fn) override;
  TimerId Schedule(absl::Time when, Closure fn) override;
  bool Cancel(TimerId id) override;

  // Runs posted work, including work posted while running, until none is
  // left. Returns how many closures ran.
  int RunPending();
  // Moves the clock forward to `t`, running each timer at its own time (the
  // clock reads the timer's time while it runs) and the work it posts.
  void AdvanceTo(absl::Time t);
  void AdvanceBy(absl::Duration d) { AdvanceTo(Now() + d); }

  size_t pending_timers() const;
  // The time of the earliest pending timer, or InfiniteFuture().
  absl::Time next_timer() const;

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::deque<Closure> work_ ABSL_GUARDED_BY(mu_);
  TimerQueue timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::engine

#endif  // WEFT_TESTS_TESTING_MANUAL_ENV_H_
