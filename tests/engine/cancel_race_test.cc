// Cancellation racing completion on real threads, for every engine primitive.
//
// Each test runs one primitive round after round on a real EventLoop (of 1, 2,
// 4 and 8 threads) and, from another thread, cancels it at about the moment
// it completes: the two sides meet at a StartLine and each then waits its own
// short delay, different in every round, so that across the rounds each side
// wins often and they often act at the same instant. Every round checks the
// contract the primitive's header states, whichever side won; once the loop
// (and any pool) is gone, so that nothing can run any more, the test checks
// that every callback ran exactly once and nothing started after its `done`.
// Nothing here asserts a time: waits are for conditions, bounded by kWait.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/engine/async_lazy.h"
#include "server/engine/background_tasks.h"
#include "server/engine/cancellation.h"
#include "server/engine/deadline.h"
#include "server/engine/event_loop.h"
#include "server/engine/race.h"
#include "server/engine/retry.h"
#include "server/engine/sequence.h"
#include "server/engine/sleep.h"
#include "server/engine/sync.h"
#include "server/engine/task_group.h"
#include "server/engine/thread_pool.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::weft::testing::kWait;
using ::weft::testing::WaitFor;

// Rounds per test: kRounds, or fewer (never fewer than kMinRounds) once
// kBudget has passed, so that a test takes a couple of seconds at most even
// under ThreadSanitizer on a busy machine.
constexpr int kRounds = 300;
constexpr int kMinRounds = 50;
constexpr absl::Duration kBudget = absl::Seconds(2);

// The reason the racing thread cancels with.
absl::Status Reason() {
  return absl::CancelledError("cancelled by the racing thread");
}

void SpinFor(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (absl::Now() < until) {
  }
}

// A delay in [0, max_us) microseconds for one side of one round; it differs
// from round to round and between the sides of a round.
absl::Duration Jitter(int round, int side, int max_us) {
  const uint32_t h = static_cast<uint32_t>(round) * 2654435761u +
                     static_cast<uint32_t>(side) * 40503u;
  return absl::Microseconds((h >> 8) % static_cast<uint32_t>(max_us));
}

// Where the two sides of a round meet: Cross() returns once both have
// arrived and then the caller's own delay has passed.
class StartLine {
 public:
  void Cross(absl::Duration delay) {
    arrived_.fetch_add(1);
    // Spin a little before yielding: a thread that returns from a yield
    // would leave the line late.
    for (int spins = 0; arrived_.load() < 2; ++spins) {
      if (spins > 1000) std::this_thread::yield();
    }
    SpinFor(delay);
  }

 private:
  std::atomic<int> arrived_{0};
};

// Runs `round(i)` for i = 0, 1, ... (see kRounds); stops at the first
// failure. Returns how many rounds ran.
template <typename F>
int RunRounds(F round) {
  const absl::Time stop = absl::Now() + kBudget;
  int n = 0;
  while (n < kRounds && (n < kMinRounds || absl::Now() < stop)) {
    round(n++);
    if (::testing::Test::HasFailure()) break;
  }
  return n;
}

// Prints how the rounds went, so that a run shows each side winning.
void Report(int rounds,
            std::initializer_list<std::pair<const char*, int>> outcomes) {
  std::string line = absl::StrCat(rounds, " rounds:");
  for (const auto& [what, n] : outcomes)
    absl::StrAppend(&line, " ", what, " ", n);
  std::printf("[ outcomes ] %s\n", line.c_str());
}

// What a callback was called with (the first time), and how many times.
class Calls {
 public:
  void Record(absl::Status s) {
    {
      MutexLock lock(&mu_);
      if (count_++ == 0) first_ = std::move(s);
    }
    called_.Notify();
  }
  // Waits for the first call.
  bool Wait() const { return called_.WaitForNotificationWithTimeout(kWait); }
  int count() const {
    MutexLock lock(&mu_);
    return count_;
  }
  absl::Status first() const {
    MutexLock lock(&mu_);
    return first_;
  }

 private:
  mutable Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status first_ ABSL_GUARDED_BY(mu_);
  weft::testing::Notification called_;
};

class CancelRaceTest : public ::testing::TestWithParam<int> {
 protected:
  // The EventLoop's threads (and the ThreadPool's).
  int threads() const { return GetParam(); }
};

// Counts destructions of a closure's capture (moves do not count).
struct Tracker {
  explicit Tracker(std::atomic<int>* d) : destroyed(d) {}
  Tracker(Tracker&& o) noexcept
      : destroyed(std::exchange(o.destroyed, nullptr)) {}
  ~Tracker() {
    if (destroyed != nullptr) (*destroyed)++;
  }
  std::atomic<int>* destroyed;
};

// Env::Cancel racing the timer (env.h): true, and the function is destroyed
// unrun; or false, and the function runs, once.
TEST_P(CancelRaceTest, EventLoopTimerRunsOnceOrIsCancelledUnrun) {
  struct Round {
    std::atomic<int> ran{0};
    std::atomic<int> destroyed{0};
    bool cancelled = false;
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int cancelled = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      const TimerId id =
          loop.Schedule(absl::Now() + Jitter(i, 0, 200),
                        [r, t = Tracker(&r->destroyed)] { r->ran++; });
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 200));
        r->cancelled = loop.Cancel(id);
      });
      line.Cross(absl::ZeroDuration());
      canceller.join();
      if (r->cancelled) {
        ++cancelled;
        EXPECT_EQ(r->destroyed.load(), 1) << "Cancel returned true, but the "
                                             "function was not destroyed";
        EXPECT_EQ(r->ran.load(), 0);
      } else {
        ASSERT_TRUE(WaitFor([&] { return r->destroyed.load() == 1; }));
        EXPECT_EQ(r->ran.load(), 1);
      }
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = *rounds[i];
    EXPECT_EQ(r.ran.load() + (r.cancelled ? 1 : 0), 1) << "round " << i;
    EXPECT_EQ(r.destroyed.load(), 1) << "round " << i;
  }
  Report(n, {{"cancelled", cancelled}, {"fired", n - cancelled}});
}

// SleepFor (sleep.h): done(OK) or done(reason), exactly one of the two.
TEST_P(CancelRaceTest, SleepEndsOnceWithOkOrTheReason) {
  struct Round {
    Calls done;
    CancellationSource source;
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int slept = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      SleepFor(loop, r->source.token(), Jitter(i, 0, 200),
               [r](absl::Status s) { r->done.Record(std::move(s)); });
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 200));
        r->source.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      canceller.join();
      ASSERT_TRUE(r->done.Wait());
      const absl::Status s = r->done.first();
      if (s.ok()) {
        ++slept;
      } else {
        EXPECT_EQ(s, Reason());
      }
    });
    // Each timer fired or was cancelled by the cancellation.
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_EQ(rounds[i]->done.count(), 1) << "round " << i;
  }
  Report(n, {{"slept", slept}, {"cancelled", n - slept}});
}

// RunInThreadPool (thread_pool.h): work still queued when the token is
// cancelled never runs and `done` gets the reason at once; work a thread took
// runs and `done` gets what it returned. `done` runs once either way.
TEST_P(CancelRaceTest, ThreadPoolWorkIsWithdrawnOrRunsAndDoneRunsOnce) {
  struct Round {
    Calls done;
    CancellationSource source;
    std::atomic<bool> ran{false};
    // Whether the work had run when `done` was called.
    std::atomic<bool> ran_before_done{false};
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int withdrawn = 0, ran_ok = 0, ran_cancelled = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    ThreadPool pool("race", threads(), 64);
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      // In every other round each pool thread is kept busy for a moment, so
      // the work waits in the queue and a thread takes it about when the
      // cancellation comes; in the others a thread takes it at once. The
      // round waits for its blockers, so that they never pile up.
      auto blockers = std::make_shared<weft::testing::BlockingCounter>(
          i % 2 == 0 ? threads() : 0);
      if (i % 2 == 0) {
        for (int t = 0; t < threads(); ++t) {
          ASSERT_TRUE(pool.Submit([blockers, d = Jitter(i, 2 + t, 100)] {
                            SpinFor(d);
                            blockers->DecrementCount();
                          })
                          .ok());
        }
      }
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 400));
        r->source.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      RunInThreadPool(
          pool, loop, r->source.token(),
          [r](const CancellationToken& token) {
            r->ran = true;
            return token.cancelled() ? token.reason() : absl::OkStatus();
          },
          [r](absl::Status s) {
            r->ran_before_done = r->ran.load();
            r->done.Record(std::move(s));
          });
      canceller.join();
      ASSERT_TRUE(r->done.Wait());
      ASSERT_TRUE(blockers->Wait());
      const absl::Status s = r->done.first();
      if (s.ok()) {
        ++ran_ok;
        EXPECT_TRUE(r->ran_before_done.load()) << "OK, but the work never ran";
      } else {
        EXPECT_EQ(s, Reason());
        ++(r->ran_before_done.load() ? ran_cancelled : withdrawn);
      }
    });
  }  // The pool runs what it still holds, then the loop does.
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = *rounds[i];
    EXPECT_EQ(r.done.count(), 1) << "round " << i;
    if (!r.ran_before_done.load()) {
      EXPECT_FALSE(r.ran.load()) << "round " << i << ": withdrawn work ran";
    }
  }
  Report(n, {{"withdrawn", withdrawn},
             {"ran and succeeded", ran_ok},
             {"ran and saw the cancellation", ran_cancelled}});
}

// Retry (retry.h): `done` runs once, with the last attempt's status or, if
// the token was cancelled during a backoff wait, its reason; no attempt
// starts after it.
TEST_P(CancelRaceTest, RetryEndsOnceAndStartsNoAttemptAfterItsDone) {
  static constexpr int kAttempts = 3;
  struct Round {
    Calls done;
    CancellationSource source;
    std::atomic<int> started{0};
    std::atomic<int> started_at_done{-1};
    std::atomic<int> attempts{-1};
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int succeeded = 0, cancelled = 0, last_failure = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      RetryPolicy policy;
      policy.max_attempts = kAttempts;
      policy.initial_backoff = Jitter(i, 2, 100);
      policy.multiplier = 1;
      policy.jitter = 0;
      policy.retryable = [](const absl::Status&, int) { return true; };
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 1000));
        r->source.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      // Each attempt ends on the loop: with the token's reason if it is
      // cancelled by then, else failing until the last one.
      Retry(
          loop, r->source.token(), std::move(policy),
          [r, l = &loop](const CancellationToken& token, int attempt,
                         Done done) {
            r->started++;
            l->Post([attempt, token, done = std::move(done)]() mutable {
              if (token.cancelled()) return std::move(done)(token.reason());
              std::move(done)(attempt < kAttempts
                                  ? absl::UnavailableError("try again")
                                  : absl::OkStatus());
            });
          },
          [r](absl::Status s, int attempts) {
            r->attempts = attempts;
            r->started_at_done = r->started.load();
            r->done.Record(std::move(s));
          });
      canceller.join();
      ASSERT_TRUE(r->done.Wait());
      const absl::Status s = r->done.first();
      const int attempts = r->attempts.load();
      EXPECT_EQ(attempts, r->started_at_done.load());
      if (s.ok()) {
        ++succeeded;
        EXPECT_EQ(attempts, kAttempts);
      } else if (s == Reason()) {
        ++cancelled;
        EXPECT_GE(attempts, 1);
        EXPECT_LE(attempts, kAttempts);
      } else {
        // An attempt failed and the token was cancelled before the retry.
        ++last_failure;
        EXPECT_EQ(s, absl::UnavailableError("try again"));
        EXPECT_LT(attempts, kAttempts);
      }
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = *rounds[i];
    EXPECT_EQ(r.done.count(), 1) << "round " << i;
    EXPECT_EQ(r.started.load(), r.started_at_done.load())
        << "round " << i << ": an attempt started after done";
  }
  Report(n, {{"succeeded", succeeded},
             {"cancelled", cancelled},
             {"cancelled after a failed attempt", last_failure}});
}

// RunInSequence (sequence.h): `done` runs once, with OK after every task or
// the token's reason; no task starts after it, and `ran` counts the tasks
// that started.
TEST_P(CancelRaceTest, SequenceEndsOnceAndStartsNoTaskAfterItsDone) {
  static constexpr int kTasks = 3;
  struct Round {
    Calls done;
    CancellationSource source;
    std::atomic<int> started{0};
    std::atomic<int> started_at_done{-1};
    std::atomic<int> ran{-1};
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int succeeded = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      std::vector<SequenceTask> tasks;
      for (int k = 0; k < kTasks; ++k) {
        tasks.push_back([r, l = &loop, d = Jitter(i, 2 + k, 100)](
                            const CancellationToken& token, Done done) {
          r->started++;
          SleepFor(*l, token, d, std::move(done));
        });
      }
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 1000));
        r->source.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      RunInSequence(r->source.token(), std::move(tasks),
                    [r](SequenceResult result) {
                      r->ran = result.ran;
                      r->started_at_done = r->started.load();
                      r->done.Record(std::move(result.status));
                    });
      canceller.join();
      ASSERT_TRUE(r->done.Wait());
      const absl::Status s = r->done.first();
      EXPECT_EQ(r->ran.load(), r->started_at_done.load());
      if (s.ok()) {
        ++succeeded;
        EXPECT_EQ(r->ran.load(), kTasks);
      } else {
        EXPECT_EQ(s, Reason());
        EXPECT_LE(r->ran.load(), kTasks);
      }
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = *rounds[i];
    EXPECT_EQ(r.done.count(), 1) << "round " << i;
    EXPECT_EQ(r.started.load(), r.ran.load())
        << "round " << i << ": a task started after done";
  }
  Report(n, {{"succeeded", succeeded}, {"cancelled", n - succeeded}});
}

// Deadline (deadline.h): its expiry racing its parent's cancellation. The
// scope is cancelled once, with the expiry reason (and expired()) or the
// parent's (and not expired()).
TEST_P(CancelRaceTest, DeadlineIsCancelledOnceByItsExpiryOrItsParent) {
  const absl::Status expiry = absl::DeadlineExceededError("expired");
  struct Round {
    Calls cancelled;
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int expired = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      CancellationSource parent;
      auto deadline = std::make_unique<Deadline>(
          loop, parent.token(), absl::Now() + Jitter(i, 0, 200), expiry);
      CancellationCallback watch(
          deadline->token(),
          [r](const absl::Status& reason) { r->cancelled.Record(reason); });
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 300));
        parent.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      canceller.join();
      ASSERT_TRUE(r->cancelled.Wait());
      const absl::Status s = r->cancelled.first();
      EXPECT_EQ(deadline->token().reason(), s);
      if (s == expiry) {
        ++expired;
        EXPECT_TRUE(deadline->expired());
      } else {
        EXPECT_EQ(s, Reason());
        EXPECT_FALSE(deadline->expired());
      }
      deadline.reset();
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_EQ(rounds[i]->cancelled.count(), 1) << "round " << i;
  }
  Report(n, {{"expired", expired}, {"cancelled by the parent", n - expired}});
}

// BackgroundTasks (background_tasks.h): Cancel (or CancelAll) racing the
// task's end. The task ends in exactly one final state, which never changes:
// kSucceeded with OK, or kCancelled with the reason; Cancel returns false
// only for a task already finished.
TEST_P(CancelRaceTest, BackgroundTaskEndsInExactlyOneFinalState) {
  using State = BackgroundTasks::State;
  struct Round {
    StartLine line;
    uint64_t id = 0;
    bool cancel_all = false;
    bool cancel_returned = false;
    std::atomic<int> ended{0};
    State final_state = State::kRunning;
  };
  std::vector<std::shared_ptr<Round>> rounds;
  int succeeded = 0, cancelled = 0;
  auto loop = std::make_unique<EventLoop>(threads());
  BackgroundTasks tasks(*loop);
  const int n = RunRounds([&](int i) {
    rounds.push_back(std::make_shared<Round>());
    std::shared_ptr<Round> r = rounds.back();
    r->cancel_all = i % 4 == 3;
    // The task ends on the loop, having met the canceller: with the reason if
    // its token is cancelled by then, else OK.
    r->id = tasks.Create([r, i, l = loop.get()](const CancellationToken& token,
                                                Done done) {
      l->Post([r, i, token, done = std::move(done)]() mutable {
        r->line.Cross(Jitter(i, 0, 100));
        r->ended++;
        std::move(done)(token.cancelled() ? token.reason() : absl::OkStatus());
      });
    });
    std::thread canceller([&] {
      r->line.Cross(Jitter(i, 1, 100));
      if (r->cancel_all) {
        tasks.CancelAll(Reason());
      } else {
        r->cancel_returned = tasks.Cancel(r->id, Reason());
      }
    });
    canceller.join();
    ASSERT_TRUE(tasks.WaitIdle(absl::Now() + kWait));
    EXPECT_EQ(tasks.active(), 0);
    const std::optional<BackgroundTasks::Info> info = tasks.Get(r->id);
    ASSERT_TRUE(info.has_value());
    r->final_state = info->state;
    EXPECT_GE(info->ended, info->created);
    switch (info->state) {
      case State::kSucceeded:
        ++succeeded;
        EXPECT_TRUE(info->status.ok()) << info->status;
        break;
      case State::kCancelled:
        ++cancelled;
        EXPECT_EQ(info->status, Reason());
        EXPECT_TRUE(r->cancel_all || r->cancel_returned)
            << "cancelled, but Cancel returned false";
        break;
      default:
        ADD_FAILURE() << "round " << i << " ended in state "
                      << static_cast<int>(info->state) << ": " << info->status;
    }
    if (!r->cancel_all && !r->cancel_returned) {
      // Cancel found it finished.
      EXPECT_EQ(info->state, State::kSucceeded);
    }
  });
  loop.reset();  // Nothing can run any more.
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = *rounds[i];
    EXPECT_EQ(r.ended.load(), 1) << "round " << i;
    const std::optional<BackgroundTasks::Info> info = tasks.Get(r.id);
    ASSERT_TRUE(info.has_value()) << "round " << i;
    EXPECT_EQ(info->state, r.final_state) << "round " << i;
  }
  EXPECT_EQ(tasks.active(), 0);
  Report(n, {{"succeeded", succeeded}, {"cancelled", cancelled}});
}

// An AsyncLazy<int> answer as a status: OK for 42, the error otherwise.
absl::Status Is42(const absl::StatusOr<int>& v) {
  if (!v.ok()) return v.status();
  if (*v != 42) return absl::InternalError(absl::StrCat("got ", *v));
  return absl::OkStatus();
}

// One AsyncLazy<int> per round whose computation ends on the loop with 42
// after meeting the racing thread at `line`; records the computations'
// tokens.
struct LazyRound {
  AsyncLazy<int>::Factory Factory(EventLoop& loop, int i) {
    return [this, l = &loop, i](const CancellationToken& token,
                                AsyncLazy<int>::Callback done) {
      {
        MutexLock lock(&mu);
        computations.push_back(token);
      }
      l->Post([this, i, done = std::move(done)]() mutable {
        line.Cross(Jitter(i, 0, 100));
        std::move(done)(42);
      });
    };
  }
  std::vector<CancellationToken> Computations() {
    MutexLock lock(&mu);
    return computations;
  }

  StartLine line;
  Calls waiters[3];
  Mutex mu;
  std::vector<CancellationToken> computations ABSL_GUARDED_BY(mu);
};

// AsyncLazy (async_lazy.h): waiters leaving while the computation ends. Each
// waiter gets exactly one answer (the value, or its token's reason); one that
// stays gets the value; the computation goes on and fills the cache.
TEST_P(CancelRaceTest, AsyncLazyWaitersWhoLeaveAsItEndsGetOneAnswerEach) {
  std::vector<std::unique_ptr<LazyRound>> rounds;
  int left = 0, answered = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<LazyRound>());
      LazyRound* r = rounds.back().get();
      AsyncLazy<int> lazy(r->Factory(loop, i));
      CancellationSource leaving;
      // Waiters 0 and 1 leave; waiter 2 stays.
      for (int w = 0; w < 3; ++w) {
        lazy.Get(
            w < 2 ? leaving.token() : CancellationToken(),
            [r, w](absl::StatusOr<int> v) { r->waiters[w].Record(Is42(v)); });
      }
      std::thread canceller([&] {
        r->line.Cross(Jitter(i, 1, 100));
        leaving.Cancel(Reason());
      });
      canceller.join();
      for (int w = 0; w < 3; ++w) ASSERT_TRUE(r->waiters[w].Wait());
      EXPECT_TRUE(r->waiters[2].first().ok()) << r->waiters[2].first();
      for (int w = 0; w < 2; ++w) {
        const absl::Status s = r->waiters[w].first();
        if (s.ok()) {
          ++answered;
        } else {
          ++left;
          EXPECT_EQ(s, Reason());
        }
      }
      // The computation was not stopped, and its value is cached.
      EXPECT_EQ(lazy.Peek().value_or(-1), 42);
      const LazySnapshot<int> snap = lazy.Snapshot();
      EXPECT_EQ(snap.state, LazyState::kReady);
      EXPECT_EQ(snap.stats.loads, 1);
      const std::vector<CancellationToken> computations = r->Computations();
      ASSERT_EQ(computations.size(), 1u);
      EXPECT_FALSE(computations[0].cancelled());
    });
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    for (int w = 0; w < 3; ++w) {
      EXPECT_EQ(rounds[i]->waiters[w].count(), 1)
          << "round " << i << ", waiter " << w;
    }
  }
  Report(n, {{"waiters who left", left}, {"waiters answered", answered}});
}

// AsyncLazy: Close racing the computation's end. The waiters all get one
// answer, the same one: the value if the computation ended first (and then
// it was not cancelled), else the close reason (and it was cancelled with
// it). Nothing stays cached, and later Gets get the reason.
TEST_P(CancelRaceTest, AsyncLazyCloseRacingTheEndAnswersEachWaiterOnce) {
  const absl::Status closed = absl::AbortedError("closed by the racing thread");
  std::vector<std::unique_ptr<LazyRound>> rounds;
  int computed = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<LazyRound>());
      LazyRound* r = rounds.back().get();
      AsyncLazy<int> lazy(r->Factory(loop, i));
      for (int w = 0; w < 3; ++w) {
        lazy.Get({}, [r, w](absl::StatusOr<int> v) {
          r->waiters[w].Record(Is42(v));
        });
      }
      std::thread canceller([&] {
        r->line.Cross(Jitter(i, 1, 100));
        lazy.Close(closed);
      });
      canceller.join();
      for (int w = 0; w < 3; ++w) ASSERT_TRUE(r->waiters[w].Wait());
      const absl::Status s = r->waiters[0].first();
      if (s.ok()) {
        ++computed;
      } else {
        EXPECT_EQ(s, closed);
      }
      for (int w = 1; w < 3; ++w) EXPECT_EQ(r->waiters[w].first(), s);
      const std::vector<CancellationToken> computations = r->Computations();
      ASSERT_EQ(computations.size(), 1u);
      EXPECT_EQ(computations[0].reason(), s.ok() ? absl::OkStatus() : closed);
      EXPECT_FALSE(lazy.Peek().has_value());
      std::optional<absl::Status> later;
      lazy.Get({}, [&](absl::StatusOr<int> v) { later = v.status(); });
      ASSERT_TRUE(later.has_value());
      EXPECT_EQ(*later, closed);
    });
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    for (int w = 0; w < 3; ++w) {
      EXPECT_EQ(rounds[i]->waiters[w].count(), 1)
          << "round " << i << ", waiter " << w;
    }
  }
  Report(n, {{"computed first", computed}, {"closed first", n - computed}});
}

// AsyncLazy: Reset racing the computation's end. The waiters, who joined
// before the reset, get the value; the computation is not cancelled (it has
// waiters); and nothing is cached, whichever came first: a value cached
// before the reset is forgotten, one computed after it is not cached.
TEST_P(CancelRaceTest, AsyncLazyResetRacingTheEndLeavesNothingCached) {
  std::vector<std::unique_ptr<LazyRound>> rounds;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<LazyRound>());
      LazyRound* r = rounds.back().get();
      AsyncLazy<int> lazy(r->Factory(loop, i));
      for (int w = 0; w < 3; ++w) {
        lazy.Get({}, [r, w](absl::StatusOr<int> v) {
          r->waiters[w].Record(Is42(v));
        });
      }
      std::thread canceller([&] {
        r->line.Cross(Jitter(i, 1, 100));
        lazy.Reset();
      });
      canceller.join();
      for (int w = 0; w < 3; ++w) {
        ASSERT_TRUE(r->waiters[w].Wait());
        EXPECT_TRUE(r->waiters[w].first().ok()) << r->waiters[w].first();
      }
      const LazySnapshot<int> snap = lazy.Snapshot();
      EXPECT_EQ(snap.state, LazyState::kEmpty);
      EXPECT_FALSE(snap.value.has_value());
      EXPECT_EQ(snap.generation, 1u);
      EXPECT_EQ(snap.stats.loads, 1);
      const std::vector<CancellationToken> computations = r->Computations();
      ASSERT_EQ(computations.size(), 1u);
      EXPECT_FALSE(computations[0].cancelled());
    });
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    for (int w = 0; w < 3; ++w) {
      EXPECT_EQ(rounds[i]->waiters[w].count(), 1)
          << "round " << i << ", waiter " << w;
    }
  }
  Report(n, {});
}

// RunUntilFirstComplete (race.h): the parent cancelled while the race is
// being decided. `done` runs once, after every started task has ended: with
// a winner and OK, or with winner -1 and the parent's reason. The losers are
// cancelled: task 0 sleeps an hour and so can only end cancelled, with
// "lost the race to task <winner>" or the parent's reason. No task starts
// after `done`. Every third round hedges.
TEST_P(CancelRaceTest, RaceCancelledFromAboveEndsOnceAndCancelsItsLosers) {
  static constexpr int kTasks = 3;
  struct Round {
    Calls done;
    CancellationSource parent;
    std::atomic<bool> ran[kTasks] = {};
    std::atomic<bool> ended[kTasks] = {};
    Mutex mu;
    absl::Status ended_with[kTasks] ABSL_GUARDED_BY(mu);
    std::vector<bool> ended_at_done ABSL_GUARDED_BY(mu);
    std::optional<RaceResult> result ABSL_GUARDED_BY(mu);
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int won = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      std::vector<RaceTask> tasks;
      for (int k = 0; k < kTasks; ++k) {
        const absl::Duration d =
            k == 0 ? absl::Hours(1) : Jitter(i, 2 + k, 100);
        tasks.push_back(
            [r, k, d, l = &loop](const CancellationToken& token, Done done) {
              r->ran[k] = true;
              SleepFor(*l, token, d,
                       [r, k, done = std::move(done)](absl::Status s) mutable {
                         {
                           MutexLock lock(&r->mu);
                           r->ended_with[k] = s;
                         }
                         r->ended[k] = true;
                         std::move(done)(std::move(s));
                       });
            });
      }
      RaceOptions options;
      if (i % 3 == 0) options.hedge_delay = Jitter(i, 5, 50);
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 500));
        r->parent.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      RunUntilFirstComplete(loop, r->parent.token(), std::move(tasks),
                            std::move(options), [r](RaceResult result) {
                              const absl::Status s = result.status;
                              {
                                MutexLock lock(&r->mu);
                                for (int k = 0; k < kTasks; ++k) {
                                  r->ended_at_done.push_back(r->ended[k]);
                                }
                                r->result = std::move(result);
                              }
                              r->done.Record(s);
                            });
      canceller.join();
      ASSERT_TRUE(r->done.Wait());
      MutexLock lock(&r->mu);
      const RaceResult& result = *r->result;
      ASSERT_EQ(result.started.size(), static_cast<size_t>(kTasks));
      absl::Status lost;  // How a loser is cancelled, if there is a winner.
      if (result.winner == -1) {
        EXPECT_EQ(result.status, Reason());
      } else {
        ++won;
        EXPECT_GT(result.winner, 0);  // Task 0 cannot win.
        EXPECT_TRUE(result.status.ok()) << result.status;
        EXPECT_TRUE(result.started[result.winner]);
        lost =
            WithReason(absl::CancelledError(absl::StrCat(
                           "cancelled: lost the race to task ", result.winner)),
                       "RACE_LOST");
      }
      for (int k = 0; k < kTasks; ++k) {
        EXPECT_EQ(result.started[k], r->ran[k].load()) << "task " << k;
        if (!result.started[k]) continue;
        EXPECT_TRUE(r->ended_at_done[k])
            << "done ran before task " << k << " ended";
        const absl::Status& e = r->ended_with[k];
        if (k == result.winner) continue;
        if (k == 0 || !e.ok()) {
          // A loser cancelled: by the parent, or because it lost.
          EXPECT_TRUE(e == Reason() || (result.winner != -1 && e == lost))
              << "task " << k << " ended with " << e << "; winner "
              << result.winner;
        }
      }
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    Round& r = *rounds[i];
    EXPECT_EQ(r.done.count(), 1) << "round " << i;
    MutexLock lock(&r.mu);
    for (int k = 0; k < kTasks; ++k) {
      EXPECT_EQ(r.ran[k].load(), r.result->started[k])
          << "round " << i << ": task " << k << " started after done";
    }
  }
  Report(n, {{"won", won}, {"cancelled", n - won}});
}

// TaskGroup (task_group.h): the parent cancelled while the tasks end (with
// and without a bound on concurrency). Join's callback runs once, after
// every task's Done, with OK if every task succeeded, else the first failure:
// the parent's reason, the only one a task here can fail with.
TEST_P(CancelRaceTest, TaskGroupCancelledFromAboveJoinsOnceAfterEveryTask) {
  static constexpr int kTasks = 4;
  struct Round {
    Calls joined;
    CancellationSource parent;
    std::atomic<int> ended{0};
    std::atomic<int> ended_at_join{-1};
    Mutex mu;
    std::vector<absl::Status> results ABSL_GUARDED_BY(mu);
  };
  std::vector<std::unique_ptr<Round>> rounds;
  int succeeded = 0;
  int n = 0;
  {
    EventLoop loop(threads());
    n = RunRounds([&](int i) {
      rounds.push_back(std::make_unique<Round>());
      Round* r = rounds.back().get();
      TaskGroup group(r->parent.token(),
                      {.max_concurrency = i % 2 == 0 ? 0 : 2});
      StartLine line;
      std::thread canceller([&] {
        line.Cross(Jitter(i, 1, 600));
        r->parent.Cancel(Reason());
      });
      line.Cross(absl::ZeroDuration());
      for (int k = 0; k < kTasks; ++k) {
        group.Spawn([r, d = Jitter(i, 2 + k, 100), l = &loop](
                        const CancellationToken& token, Done done) {
          SleepFor(*l, token, d,
                   [r, done = std::move(done)](absl::Status s) mutable {
                     {
                       MutexLock lock(&r->mu);
                       r->results.push_back(s);
                     }
                     r->ended++;
                     std::move(done)(std::move(s));
                   });
        });
      }
      std::move(group).Join([r](absl::Status s) {
        r->ended_at_join = r->ended.load();
        r->joined.Record(std::move(s));
      });
      canceller.join();
      ASSERT_TRUE(r->joined.Wait());
      EXPECT_EQ(r->ended_at_join.load(), kTasks);
      const absl::Status s = r->joined.first();
      MutexLock lock(&r->mu);
      bool all_ok = true;
      for (const absl::Status& t : r->results) {
        if (!t.ok()) {
          all_ok = false;
          EXPECT_EQ(t, Reason());
        }
      }
      if (all_ok) {
        ++succeeded;
        EXPECT_TRUE(s.ok()) << s;
      } else {
        EXPECT_EQ(s, Reason());
      }
    });
    EXPECT_EQ(loop.pending_timers(), 0u);
  }
  for (size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_EQ(rounds[i]->joined.count(), 1) << "round " << i;
  }
  Report(n, {{"succeeded", succeeded}, {"cancelled", n - succeeded}});
}

// A task that hands its Done to the loop and then, a moment later, watches
// its token and reads its own capture: the usual shape of "start the work,
// then watch for cancellation". Done may run before the task returns
// (done.h), on another thread, and end the primitive; the primitive must
// still keep the task, and the token it was given, alive until it returns.
constexpr char kCapture[] = "a capture too long for the small-string buffer";

void HandOffThenWatch(EventLoop& loop, const std::string& capture,
                      const CancellationToken& token, Done done) {
  loop.Post([done = std::move(done)]() mutable {
    std::move(done)(absl::OkStatus());
  });
  SpinFor(absl::Microseconds(20));
  CancellationCallback watch(token, [](const absl::Status&) {});
  EXPECT_EQ(capture, kCapture);
}

TEST_P(CancelRaceTest, TasksStayAliveUntilTheyReturnThoughTheirDoneRanFirst) {
  EventLoop loop(threads());
  ThreadPool pool("late", threads(), 4);
  BackgroundTasks background(loop);
  auto task = [&loop, capture = std::string(kCapture)](
                  const CancellationToken& token, Done done) {
    HandOffThenWatch(loop, capture, token, std::move(done));
  };
  const int n = RunRounds([&](int i) {
    Calls sequence, race, group, pool_done;
    std::vector<SequenceTask> steps;
    steps.push_back(task);
    RunInSequence({}, std::move(steps),
                  [&](SequenceResult r) { sequence.Record(r.status); });
    std::vector<RaceTask> alternatives;
    alternatives.push_back(task);
    RunUntilFirstComplete(loop, {}, std::move(alternatives), {},
                          [&](RaceResult r) { race.Record(r.status); });
    TaskGroup tasks;
    tasks.Spawn(task);
    std::move(tasks).Join([&](absl::Status s) { group.Record(s); });
    const uint64_t id = background.Create(task);
    RunInThreadPool(pool, loop, {}, task,
                    [&](absl::Status s) { pool_done.Record(s); });
    for (Calls* c : {&sequence, &race, &group, &pool_done}) {
      ASSERT_TRUE(c->Wait());
      EXPECT_TRUE(c->first().ok()) << c->first();
    }
    ASSERT_TRUE(background.WaitIdle(absl::Now() + kWait));
    EXPECT_EQ(background.Get(id)->state, BackgroundTasks::State::kSucceeded);
  });
  Report(n, {});
}

// An attempt may call its Done before it returns (done.h), and then still use
// its token and captures: Retry must keep them alive until it returns. (It
// did not: RetryState deleted itself in Finish while the last attempt still
// ran, which ThreadSanitizer saw as a heap-use-after-free.)
TEST_P(CancelRaceTest,
       RetryKeepsAnAttemptAliveUntilItReturnsThoughItsDoneRanFirst) {
  EventLoop loop(threads());
  const int n = RunRounds([&](int i) {
    Calls done;
    RetryPolicy policy;
    policy.max_attempts = 1;
    Retry(
        loop, {}, std::move(policy),
        [&loop, capture = std::string(kCapture)](const CancellationToken& token,
                                                 int, Done d) {
          HandOffThenWatch(loop, capture, token, std::move(d));
        },
        [&](absl::Status s, int) { done.Record(s); });
    ASSERT_TRUE(done.Wait());
    EXPECT_TRUE(done.first().ok()) << done.first();
  });
  Report(n, {});
}

INSTANTIATE_TEST_SUITE_P(Threads, CancelRaceTest, ::testing::Values(1, 2, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param);
                         });

}  // namespace
}  // namespace weft::engine
