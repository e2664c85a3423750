// ThreadPool and RunInThreadPool: move blocking or CPU-heavy work off the
// event loop, onto a named pool with a fixed number of threads and a bounded
// queue (Starlette's and Nexios's run_in_threadpool, with a bound).
//
// clang-format off
//   ThreadPool pool("images", /*threads=*/2, /*queue=*/64);
//   RunInThreadPool(pool, env, token,
//                   [](const CancellationToken& token) { return Resize(token); },
//                   [](absl::Status s) { Show(s); });
// clang-format on
//
// A pool holds one task per thread plus `queue_capacity` waiting ones; a full
// pool refuses work at once with RESOURCE_EXHAUSTED. Work still
// queued when its token is cancelled is dropped from the queue and completes
// with the token's reason at once; running work sees its token and should
// poll it. Completions are posted to the Env (the event loop), so a pool
// thread never runs the caller's continuation and a saturated pool never
// delays timers or IO.
//
// Thread-safety: thread-safe. The destructor stops the threads after the
// work already queued has run.

#ifndef WEFT_SERVER_ENGINE_THREAD_POOL_H_
#define WEFT_SERVER_ENGINE_THREAD_POOL_H_

#include <cstdint>
#include <list>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"
#include "server/engine/env.h"
#include "server/engine/sync.h"

namespace weft::engine {

class ThreadPool {
 public:
  ThreadPool(std::string name, int threads, int queue_capacity);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `fn` and returns a ticket for Withdraw(); RESOURCE_EXHAUSTED
  // (naming the pool and its queue length) when the queue is full, and
  // UNAVAILABLE once the pool is stopping.
  absl::StatusOr<uint64_t> Submit(Closure fn);

  // Takes queued work back: true if it had not started (its function is
  // destroyed unrun), false if a thread has taken it.
  bool Withdraw(uint64_t ticket);

  const std::string& name() const { return name_; }
  int threads() const { return static_cast<int>(threads_.size()); }
  int queue_capacity() const { return capacity_; }
  // Work waiting, and work running now.
  int queued() const;
  int running() const;
  // Work refused because the pool was full, since it started.
  int64_t rejected() const;

 private:
  struct Item {
    uint64_t ticket;
    Closure fn;
  };

  void Worker();

  const std::string name_;
  const int capacity_;
  mutable Mutex mu_;
  CondVar ready_;
  std::list<Item> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::list<Item>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Runs `task` on `pool` and `done` on `env` when the task's own Done is
// called (from the pool thread, or later from any thread for a task that
// goes asynchronous). If the queue is full, `done` gets RESOURCE_EXHAUSTED at
// once (inline). If `token` is cancelled while the task waits in the queue,
// the task never runs and `done` gets the reason at once.
void RunInThreadPool(ThreadPool& pool, Env& env, const CancellationToken& token,
                     AsyncTask task, Done done);

// The same for a function that blocks and returns its status.
void RunInThreadPool(
    ThreadPool& pool, Env& env, const CancellationToken& token,
    absl::AnyInvocable<absl::Status(const CancellationToken&) &&> fn,
    Done done);

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_THREAD_POOL_H_
