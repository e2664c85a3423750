#include "server/engine/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/internal/ref_counted.h"

namespace weft::engine {

ThreadPool::ThreadPool(std::string name, int threads, int queue_capacity)
    : name_(std::move(name)), capacity_(std::max(queue_capacity, 0)) {
  threads = std::max(threads, 1);
  threads_.reserve(threads);
  // Thread names are at most 15 characters: "weft-pool-" and the name's
  // start.
  const std::string thread_name = ("weft-pool-" + name_).substr(0, 15);
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, thread_name] {
      pthread_setname_np(pthread_self(), thread_name.c_str());
      Worker();
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  ready_.SignalAll();
  for (std::thread& t : threads_) t.join();
}

absl::StatusOr<uint64_t> ThreadPool::Submit(Closure fn) {
  uint64_t ticket;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      return WithReason(absl::UnavailableError(absl::StrCat(
                            "thread pool \"", name_, "\" is stopping")),
                        "SHUTTING_DOWN");
    }
    // Room for one task per thread, plus the queue.
    if (static_cast<int>(queue_.size()) + running_ >=
        static_cast<int>(threads_.size()) + capacity_) {
      // Counted together: a call handed to a thread may not have started.
      ++rejected_;
      return WithReason(
          absl::ResourceExhaustedError(absl::StrCat(
              "thread pool \"", name_, "\" is full: it holds ",
              queue_.size() + running_, " calls, the most its ",
              threads_.size(), threads_.size() == 1 ? " thread" : " threads",
              " and queue of ", capacity_, " take (--pools)")),
          "POOL_FULL");
    }
    ticket = ++next_ticket_;
    queue_.push_back(Item{ticket, std::move(fn)});
    index_.emplace(ticket, std::prev(queue_.end()));
  }
  ready_.Signal();
  return ticket;
}

bool ThreadPool::Withdraw(uint64_t ticket) {
  Closure fn;  // Destroyed after the lock is released.
  MutexLock lock(&mu_);
  auto it = index_.find(ticket);
  if (it == index_.end()) return false;
  fn = std::move(it->second->fn);
  queue_.erase(it->second);
  index_.erase(it);
  return true;
}

int ThreadPool::queued() const {
  MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int ThreadPool::running() const {
  MutexLock lock(&mu_);
  return running_;
}

int64_t ThreadPool::rejected() const {
  MutexLock lock(&mu_);
  return rejected_;
}

void ThreadPool::Worker() {
  for (;;) {
    Closure fn;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) ready_.Wait(&mu_);
      if (queue_.empty()) return;
      fn = std::move(queue_.front().fn);
      index_.erase(queue_.front().ticket);
      queue_.pop_front();
      ++running_;
    }
    std::move(fn)();
    MutexLock lock(&mu_);
    --running_;
  }
}

namespace {

// One RunInThreadPool call. References: the starter's, the queued closure's
// (until it runs or is withdrawn), the task's Done, and the cancellation
// function's while it runs.
class PoolOp : public RefCounted<PoolOp> {
 public:
  using Task = AsyncTask;

  PoolOp(ThreadPool& pool, Env& env, Task task, Done done,
         CancellationToken token)
      : pool_(pool),
        env_(env),
        task_(std::move(task)),
        done_(std::move(done)),
        token_(std::move(token)) {}

  void Start() {
    absl::StatusOr<uint64_t> ticket;
    {
      MutexLock lock(&mu_);
      ticket = pool_.Submit(
          [self = RefPtr<PoolOp>(this)]() mutable { self->Run(); });
      if (ticket.ok()) ticket_ = *ticket;
    }
    if (!ticket.ok()) {
      Finish(ticket.status(), /*post=*/false);
      return;
    }
    // Registered after submitting: if the token is already cancelled, this
    // withdraws the work at once.
    on_cancel_.emplace(token_, [this](const absl::Status& reason) {
      // The op may be dying on another thread (its destructor then waits
      // for this function): never bring it back.
      if (!TryRef()) return;
      RefPtr<PoolOp> self = RefPtr<PoolOp>::Adopt(this);
      uint64_t ticket;
      {
        MutexLock lock(&mu_);
        ticket = ticket_;
      }
      if (pool_.Withdraw(ticket)) Finish(reason, /*post=*/false);
    });
  }

 private:
  // On a pool thread.
  void Run() {
    std::move(task_)(token_, [self = RefPtr<PoolOp>(this)](absl::Status s) {
      self->Finish(std::move(s), /*post=*/true);
    });
  }

  void Finish(absl::Status status, bool post) {
    Done done;
    {
      MutexLock lock(&mu_);
      done = std::move(done_);
      done_ = nullptr;
    }
    if (!done) return;
    if (post) {
      env_.Post([done = std::move(done), status = std::move(status)]() mutable {
        std::move(done)(std::move(status));
      });
    } else {
      std::move(done)(std::move(status));
    }
  }

  ThreadPool& pool_;
  Env& env_;
  Task task_;
  Mutex mu_;
  Done done_ ABSL_GUARDED_BY(mu_);
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  const CancellationToken token_;
  std::optional<CancellationCallback> on_cancel_;
};

}  // namespace

void RunInThreadPool(ThreadPool& pool, Env& env, const CancellationToken& token,
                     AsyncTask task, Done done) {
  if (token.cancelled()) {
    std::move(done)(token.reason());
    return;
  }
  RefPtr<PoolOp>::Adopt(
      new PoolOp(pool, env, std::move(task), std::move(done), token))
      ->Start();
}

void RunInThreadPool(
    ThreadPool& pool, Env& env, const CancellationToken& token,
    absl::AnyInvocable<absl::Status(const CancellationToken&) &&> fn,
    Done done) {
  RunInThreadPool(
      pool, env, token,
      [fn = std::move(fn)](const CancellationToken& t, Done d) mutable {
        std::move(d)(std::move(fn)(t));
      },
      std::move(done));
}

}  // namespace weft::engine
