// AsyncLazy<T>: compute a value once, on first use, and share it with every
// caller, the one computation in flight included (Nexios's AsyncLazy).
//
//   AsyncLazy<Stats> stats([](const CancellationToken& token, auto done) {
//     ComputeStats(token, std::move(done));
//   });
//   stats.Get(caller_token, [](absl::StatusOr<Stats> s) { ... });
//   stats.Reset();  // the next Get computes again
//
// Single flight: at most one computation runs at a time, and every Get that
// arrives while it runs waits for it. A waiter whose token is cancelled
// leaves at once (its callback gets the reason); the computation goes on for
// the others and for the cache. A failed computation is reported to every
// waiter and not cached. Reset() during a computation keeps that result out
// of the cache (the generation moves on), while the waiters who joined before
// the reset still get it (so do callers who join it after the reset: one
// computation runs at a time).
//
// Thread-safety: thread-safe. Callbacks run on the thread that completes the
// computation, or inline when the value is cached. The computation keeps
// what it needs alive, so an AsyncLazy may be destroyed while one runs (its
// result then goes to the waiters only).

#ifndef WEFT_SERVER_ENGINE_ASYNC_LAZY_H_
#define WEFT_SERVER_ENGINE_ASYNC_LAZY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "server/engine/cancellation.h"
#include "server/engine/ref_counted.h"
#include "server/engine/sync.h"

namespace weft::engine {

template <typename T>
class AsyncLazy {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
  using Factory = absl::AnyInvocable<void(const CancellationToken&, Callback)>;

  explicit AsyncLazy(Factory factory)
      : state_(MakeRef<State>(std::move(factory))) {}
  // Cancels a computation in flight; its waiters get its result (normally
  // the cancellation).
  ~AsyncLazy() {
    state_->source.Cancel(absl::CancelledError("lazy value destroyed"));
  }
  AsyncLazy(const AsyncLazy&) = delete;
  AsyncLazy& operator=(const AsyncLazy&) = delete;

  // Calls `done` with the value: inline when it is cached, otherwise when
  // the computation (started now if none runs) ends, or with the token's
  // reason as soon as `token` is cancelled.
  void Get(const CancellationToken& token, Callback done) {
    GetImpl(token, std::make_unique<Waiter>(MakeRef<Once>(std::move(done))));
  }

  // Forgets the cached value; a computation in flight still answers its
  // waiters but does not fill the cache.
  void Reset() {
    MutexLock lock(&state_->mu);
    state_->value.reset();
    ++state_->generation;
  }

  // The cached value, if any; never computes.
  std::optional<T> Peek() const {
    MutexLock lock(&state_->mu);
    return state_->value;
  }

  // Moves on at every Reset().
  uint64_t generation() const {
    MutexLock lock(&state_->mu);
    return state_->generation;
  }

  // Computations started so far.
  int loads() const {
    MutexLock lock(&state_->mu);
    return state_->loads;
  }

 private:
  // A callback that runs at most once, from whichever path gets there first.
  struct Once : RefCounted<Once> {
    explicit Once(Callback cb) : callback(std::move(cb)) {}
    void Fire(absl::StatusOr<T> result) {
      Callback cb;
      {
        MutexLock lock(&mu);
        cb = std::move(callback);
        callback = nullptr;
      }
      if (cb) std::move(cb)(std::move(result));
    }
    Mutex mu;
    Callback callback ABSL_GUARDED_BY(mu);
  };

  struct Waiter {
    explicit Waiter(RefPtr<Once> o) : once(std::move(o)) {}
    RefPtr<Once> once;
    std::optional<CancellationCallback> on_cancel;
  };

  struct State : RefCounted<State> {
    explicit State(Factory f) : factory(std::move(f)) {}
    Factory factory;
    CancellationSource source;
    Mutex mu;
    std::optional<T> value ABSL_GUARDED_BY(mu);
    bool computing ABSL_GUARDED_BY(mu) = false;
    uint64_t generation ABSL_GUARDED_BY(mu) = 0;
    int loads ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::unique_ptr<Waiter>> waiters ABSL_GUARDED_BY(mu);
  };

  void GetImpl(const CancellationToken& token, std::unique_ptr<Waiter> waiter) {
    RefPtr<State> s = state_;
    std::optional<T> cached;
    {
      MutexLock lock(&s->mu);
      cached = s->value;
    }
    if (cached.has_value()) {
      waiter->once->Fire(*std::move(cached));
      return;
    }
    // The waiter may leave: its callback fires with the reason, and the
    // entry stays until the computation ends (its Fire is then a no-op).
    waiter->on_cancel.emplace(
        token, [once = waiter->once](const absl::Status& r) { once->Fire(r); });
    bool start = false;
    uint64_t generation;
    {
      MutexLock lock(&s->mu);
      if (s->value.has_value()) {
        cached = s->value;  // Filled meanwhile.
      } else {
        s->waiters.push_back(std::move(waiter));
        if (!s->computing) {
          s->computing = true;
          ++s->loads;
          start = true;
        }
      }
      generation = s->generation;
    }
    if (cached.has_value()) {
      waiter->once->Fire(*std::move(cached));
      return;
    }
    if (!start) return;
    s->factory(s->source.token(), [s, generation](absl::StatusOr<T> result) {
      std::vector<std::unique_ptr<Waiter>> waiters;
      {
        MutexLock lock(&s->mu);
        s->computing = false;
        if (result.ok() && s->generation == generation) s->value = *result;
        waiters.swap(s->waiters);
      }
      for (auto& w : waiters) w->once->Fire(result);
    });
  }

  RefPtr<State> state_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_ASYNC_LAZY_H_
