// The engine as a C++ library, without gRPC or plans: each of the async
// utilities weft is modelled on, in a few lines. Built and run by the tests
// (ctest -R engine_example), so it keeps working.
//
//   build/examples/engine_example
//
// It exits 1, naming what went wrong, if any utility did not do what the
// comments say.

#include <atomic>
#include <iostream>
#include <string>
#include <vector>

#include "server/engine/async_lazy.h"
#include "server/engine/background_tasks.h"
#include "server/engine/event_loop.h"
#include "server/engine/race.h"
#include "server/engine/sleep.h"
#include "server/engine/sync.h"
#include "server/engine/task_group.h"
#include "server/engine/thread_pool.h"

using namespace weft::engine;  // An example; real code names things.

namespace {

int failures = 0;

// Notes a result that is not what the example promises.
void Expect(bool ok, const char* what) {
  if (!ok) {
    std::cerr << "engine_example: expected " << what << "\n";
    ++failures;
  }
}

// Blocks until Signal(); the example's way to wait for callbacks.
class Latch {
 public:
  void Signal() {
    MutexLock lock(&mu_);
    done_ = true;
    cv_.SignalAll();
  }
  void Wait() {
    MutexLock lock(&mu_);
    while (!done_) cv_.Wait(&mu_);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool done_ = false;
};

// A stand-in for a remote call: waits `d` on the loop's timers, then gives
// `result`; stops at once when cancelled.
void FakeFetch(Env& env, const CancellationToken& token, absl::Duration d,
               absl::Status result, Done done) {
  SleepFor(env, token, d,
           [result, done = std::move(done)](absl::Status s) mutable {
             std::move(done)(s.ok() ? result : s);
           });
}

}  // namespace

int main() {
  EventLoop loop(2);  // Timers and completions; no thread per task.

  // TaskGroup: fan out, fail fast, cancel the siblings.
  {
    Latch latch;
    TaskGroup group;
    for (int ms : {300, 200, 100}) {
      group.Spawn([&loop, ms](const CancellationToken& token, Done done) {
        FakeFetch(loop, token, absl::Milliseconds(ms), absl::OkStatus(),
                  std::move(done));
      });
    }
    std::move(group).Join([&](absl::Status s) {
      std::cout << "TaskGroup: "
                << (s.ok() ? "all three fetched" : s.ToString()) << "\n";
      Expect(s.ok(), "the task group to succeed");
      latch.Signal();
    });
    latch.Wait();
  }

  // RunInThreadPool: CPU work on a bounded pool; the loop stays free.
  {
    Latch latch;
    ThreadPool pool("cpu", 1, 16);
    RunInThreadPool(
        pool, loop, {},
        [](const CancellationToken& token) {
          volatile uint64_t x = 0;
          for (int i = 0; i < 10'000'000 && !token.cancelled(); ++i) x = x + i;
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          std::cout << "RunInThreadPool: "
                    << (s.ok() ? "done off the loop" : s.ToString()) << "\n";
          Expect(s.ok(), "the pool's work to succeed");
          latch.Signal();
        });
    latch.Wait();
  }

  // RunUntilFirstComplete: failover with a hedge; the losers are cancelled.
  {
    Latch latch;
    std::vector<RaceTask> mirrors;
    mirrors.push_back([&loop](const CancellationToken& t, Done d) {
      FakeFetch(loop, t, absl::Milliseconds(10),
                absl::UnavailableError("mirror a down"), std::move(d));
    });
    mirrors.push_back([&loop](const CancellationToken& t, Done d) {
      FakeFetch(loop, t, absl::Milliseconds(100), absl::OkStatus(),
                std::move(d));
    });
    mirrors.push_back([&loop](const CancellationToken& t, Done d) {
      FakeFetch(loop, t, absl::Seconds(5), absl::OkStatus(), std::move(d));
    });
    RunUntilFirstComplete(
        loop, {}, std::move(mirrors), {.hedge_delay = absl::Milliseconds(20)},
        [&](RaceResult r) {
          std::cout << "RunUntilFirstComplete: mirror " << r.winner << " won\n";
          // Mirror 0 fails first; mirror 1, hedged in 20 ms later, answers
          // long before mirror 2.
          Expect(r.winner == 1 && r.status.ok(), "mirror 1 to win");
          latch.Signal();
        });
    latch.Wait();
  }

  // BackgroundTasks: start now, read the status later.
  {
    BackgroundTasks tasks(loop);
    Latch latch;
    const uint64_t id =
        tasks.Create([&](const CancellationToken& token, Done done) {
          FakeFetch(loop, token, absl::Milliseconds(50), absl::OkStatus(),
                    [&, done = std::move(done)](absl::Status s) mutable {
                      std::move(done)(s);
                      latch.Signal();
                    });
        });
    std::cout << "BackgroundTasks: " << tasks.active() << " active\n";
    latch.Wait();
    tasks.WaitIdle(absl::InfiniteFuture());
    const bool succeeded =
        tasks.Get(id)->state == BackgroundTasks::State::kSucceeded;
    std::cout << "BackgroundTasks: task " << id << " "
              << (succeeded ? "succeeded" : "did not succeed") << "\n";
    Expect(succeeded, "the background task to succeed");
  }

  // AsyncLazy: computed once, shared by concurrent callers, then cached.
  {
    std::atomic<int> computations{0};
    AsyncLazy<std::string> stats([&](const CancellationToken& token,
                                     AsyncLazy<std::string>::Callback done) {
      ++computations;
      SleepFor(loop, token, absl::Milliseconds(50),
               [done = std::move(done)](absl::Status) mutable {
                 std::move(done)(std::string("daily stats"));
               });
    });
    Latch latch;
    std::atomic<int> answers{0};
    for (int i = 0; i < 3; ++i) {
      stats.Get({}, [&](absl::StatusOr<std::string> v) {
        Expect(v.ok() && *v == "daily stats", "every caller to get the value");
        if (++answers == 3) latch.Signal();
      });
    }
    latch.Wait();
    std::cout << "AsyncLazy: 3 callers, " << computations.load()
              << " computation; cached: " << *stats.Peek() << "\n";
    Expect(computations.load() == 1, "one computation for three callers");
  }
  return failures == 0 ? 0 : 1;
}
