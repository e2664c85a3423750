// AsyncLazy<T>: compute a value once, on first use, and share it with every
// caller, the one computation in flight included (Nexios's AsyncLazy), with
// expiry, refresh-ahead and optional negative caching.
//
// clang-format off
//   AsyncLazy<Stats> stats(
//       [](const CancellationToken& token, AsyncLazy<Stats>::Callback done) {
//         ComputeStats(token, std::move(done));
//       },
//       {.env = &loop, .ttl = absl::Hours(24), .refresh_after = absl::Hours(1)});
//   stats.Get(caller_token, [](absl::StatusOr<Stats> s) { Show(s); });
//   stats.Reset();  // the next Get computes again
// clang-format on
//
// Single flight: at most one computation per generation runs, and every Get
// that finds nothing cached joins it. A waiter whose token is cancelled
// leaves at once (its callback gets the reason); the computation goes on for
// the others and for the cache. A failed computation is reported to every
// waiter and not cached, unless `cache_failures_for` asks for it.
//
// Generations: Reset() moves the generation on and forgets the cache. A
// computation in flight still answers the waiters who joined it, but its
// result stays out of the cache; a Get after the reset starts a computation
// of the new generation (so for a moment two may run). A computation nobody
// waits for (a refresh) is cancelled by the reset instead.
//
// Time: a value is served until `ttl` after it was computed. Once it is
// older than `refresh_after`, a Get still answers with it at once and starts
// one background computation (a refresh) whose result replaces it; a refresh
// that fails leaves the old value in place.
//
// Close(reason) ends it: computations are cancelled, their waiters and every
// later Get get `reason`.
//
// Thread-safety: thread-safe. Callbacks run on the thread that completes the
// computation, or inline when the value is cached. The computation keeps
// what it needs alive, so an AsyncLazy may be destroyed while one runs
// (destruction closes it).

#ifndef WEFT_SERVER_ENGINE_ASYNC_LAZY_H_
#define WEFT_SERVER_ENGINE_ASYNC_LAZY_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/internal/ref_counted.h"
#include "server/engine/sync.h"

namespace weft::engine {

struct AsyncLazyOptions {
  // The clock for the durations below; nullptr: absl::Now().
  const Env* env = nullptr;
  // How long a computed value is served.
  absl::Duration ttl = absl::InfiniteDuration();
  // Once a value is older than this, a Get starts one refresh.
  absl::Duration refresh_after = absl::InfiniteDuration();
  // How long a failure is served instead of computing again; 0: never.
  absl::Duration cache_failures_for = absl::ZeroDuration();
};

enum class LazyState {
  kEmpty,      // Nothing cached, nothing computing.
  kComputing,  // Nothing cached; a computation runs.
  kReady,      // A value is cached (a refresh may run).
  kFailed,     // Nothing cached; the last computation failed.
};

struct LazyStats {
  // Gets answered from the cache (a value, or a cached failure).
  int64_t hits = 0;
  // Gets that found nothing cached and waited for a computation.
  int64_t misses = 0;
  // Computations started, refreshes included.
  int64_t loads = 0;
  // Computations of the current generation that failed.
  int64_t load_failures = 0;
  absl::Duration last_load_duration = absl::ZeroDuration();
};

template <typename T>
struct LazySnapshot {
  LazyState state = LazyState::kEmpty;
  // Set when kReady.
  std::optional<T> value;
  // The last computation's failure, when kFailed (or when a refresh failed).
  absl::Status error;
  // When the cached value (or failure) was computed.
  absl::Time computed_at = absl::InfinitePast();
  // When it stops being served; InfiniteFuture() when it never does.
  absl::Time expires_at = absl::InfiniteFuture();
  // A refresh of a cached value runs.
  bool refreshing = false;
  uint64_t generation = 0;
  LazyStats stats;
};

// How a Get was answered (GetAnswered).
struct LazyAnswer {
  // From the cache (a value, or a cached failure); false when the Get
  // waited for a computation, or left (cancelled, closed).
  bool from_cache = false;
  // The generation the answer was computed for.
  uint64_t generation = 0;
  // When the answer was computed; InfinitePast() when none was.
  absl::Time computed_at = absl::InfinitePast();
};

template <typename T>
class AsyncLazy {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
  using AnsweredCallback =
      absl::AnyInvocable<void(absl::StatusOr<T>, const LazyAnswer&) &&>;
  using Factory = absl::AnyInvocable<void(const CancellationToken&, Callback)>;

  explicit AsyncLazy(Factory factory, AsyncLazyOptions options = {})
      : state_(MakeRef<State>(std::move(factory), options)) {}
  ~AsyncLazy() { Close(absl::CancelledError("lazy value destroyed")); }
  AsyncLazy(const AsyncLazy&) = delete;
  AsyncLazy& operator=(const AsyncLazy&) = delete;

  // Calls `done` with the value: inline when it is cached, otherwise when
  // the computation (started now if none runs) ends, or with the token's
  // reason as soon as `token` is cancelled.
  void Get(const CancellationToken& token, Callback done) {
    GetAnswered(token, [done = std::move(done)](absl::StatusOr<T> result,
                                                const LazyAnswer&) mutable {
      std::move(done)(std::move(result));
    });
  }

  // Get, also saying how the answer came: from the cache or a computation,
  // for which generation, computed when (the times Snapshot() reports).
  void GetAnswered(const CancellationToken& token, AnsweredCallback done) {
    RefPtr<State> s = state_;
    RefPtr<Flight> start;
    std::optional<absl::StatusOr<T>> answer;
    LazyAnswer how;
    {
      MutexLock lock(&s->mu);
      answer = s->CachedLocked(s->Now(), &start, &how);
    }
    if (answer.has_value()) {
      if (start) Launch(s, std::move(start));
      std::move(done)(*std::move(answer), how);
      return;
    }
    // Not cached: wait. The waiter may leave; its callback then fires with
    // the reason, and its entry stays until the computation ends.
    auto waiter = std::make_unique<Waiter>(MakeRef<Once>(std::move(done)));
    RefPtr<Once> once = waiter->once;
    waiter->on_cancel.emplace(
        token, [once](const absl::Status& r) { once->Fire(r, LazyAnswer()); });
    {
      MutexLock lock(&s->mu);
      answer = s->CachedLocked(s->Now(), &start, &how);  // Filled meanwhile?
      if (!answer.has_value()) {
        ++s->stats.misses;
        if (!s->current) start = s->StartLocked(s->Now());
        s->current->waiters.push_back(std::move(waiter));
      }
    }
    if (start) Launch(s, std::move(start));
    if (answer.has_value()) once->Fire(*std::move(answer), how);
  }

  // Forgets the cached value and moves the generation on: a computation in
  // flight still answers its waiters but does not fill the cache.
  void Reset() {
    RefPtr<Flight> orphan;
    {
      MutexLock lock(&state_->mu);
      state_->ForgetLocked();
      if (state_->current) {
        if (state_->current->waiters.empty()) orphan = state_->current;
        state_->current = RefPtr<Flight>();
      }
    }
    // Nobody waits for it: its answer is seen by no one.
    if (orphan) orphan->source.Cancel(absl::CancelledError("reset"));
  }

  // Ends every computation and waiter with `reason` (not OK), and answers
  // every later Get with it. Idempotent.
  void Close(absl::Status reason) {
    std::vector<RefPtr<Flight>> flights;
    std::vector<std::unique_ptr<Waiter>> waiters;
    {
      MutexLock lock(&state_->mu);
      if (!state_->closed.ok()) return;
      state_->closed = reason;
      state_->ForgetLocked();
      state_->current = RefPtr<Flight>();
      flights.swap(state_->flights);
      for (const RefPtr<Flight>& f : flights) {
        for (auto& w : f->waiters) waiters.push_back(std::move(w));
        f->waiters.clear();
      }
    }
    for (auto& w : waiters) w->once->Fire(reason, LazyAnswer());
    for (const RefPtr<Flight>& f : flights) f->source.Cancel(reason);
  }

  // The cached value, if any and not expired; never computes.
  std::optional<T> Peek() const {
    MutexLock lock(&state_->mu);
    if (!state_->FreshLocked(state_->Now())) return std::nullopt;
    return state_->value;
  }

  // Moves on at every Reset().
  uint64_t generation() const {
    MutexLock lock(&state_->mu);
    return state_->generation;
  }

  // Computations started so far.
  int64_t loads() const {
    MutexLock lock(&state_->mu);
    return state_->stats.loads;
  }

  LazySnapshot<T> Snapshot() const {
    const State& s = *state_;
    MutexLock lock(&s.mu);
    const absl::Time now = s.Now();
    LazySnapshot<T> out;
    out.generation = s.generation;
    out.stats = s.stats;
    out.error = s.last_error;
    if (s.FreshLocked(now)) {
      out.state = LazyState::kReady;
      out.value = s.value;
      out.computed_at = s.value_time;
      out.expires_at = s.value_time + s.options.ttl;
      out.refreshing = static_cast<bool>(s.current);
    } else if (s.current) {
      out.state = LazyState::kComputing;
    } else if (!s.last_error.ok()) {
      out.state = LazyState::kFailed;
      out.computed_at = s.error_time;
      if (s.FailureCachedLocked(now)) {
        out.expires_at = s.error_time + s.options.cache_failures_for;
      } else {
        out.expires_at = s.error_time;  // A Get computes again.
      }
    }
    return out;
  }

 private:
  // A callback that runs at most once, from whichever path gets there first.
  struct Once : RefCounted<Once> {
    explicit Once(AnsweredCallback cb) : callback(std::move(cb)) {}
    void Fire(absl::StatusOr<T> result, const LazyAnswer& how) {
      AnsweredCallback cb;
      {
        MutexLock lock(&mu);
        cb = std::move(callback);
        callback = nullptr;
      }
      if (cb) std::move(cb)(std::move(result), how);
    }
    Mutex mu;
    AnsweredCallback callback ABSL_GUARDED_BY(mu);
  };

  struct Waiter {
    explicit Waiter(RefPtr<Once> o) : once(std::move(o)) {}
    RefPtr<Once> once;
    std::optional<CancellationCallback> on_cancel;
  };

  // One computation. Its fields are guarded by State::mu.
  struct Flight : RefCounted<Flight> {
    CancellationSource source;
    uint64_t generation = 0;
    absl::Time started;
    std::vector<std::unique_ptr<Waiter>> waiters;
  };

  struct State : RefCounted<State> {
    State(Factory f, AsyncLazyOptions o) : factory(std::move(f)), options(o) {}

    absl::Time Now() const {
      return options.env != nullptr ? options.env->Now() : absl::Now();
    }

    bool FreshLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return value.has_value() && now < value_time + options.ttl;
    }
    bool FailureCachedLocked(absl::Time now) const
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return failure_cached && now < error_time + options.cache_failures_for;
    }

    // The answer from the cache, counted as a hit, or nullopt. Starts a
    // refresh (into *start) when the value is old enough.
    std::optional<absl::StatusOr<T>> CachedLocked(absl::Time now,
                                                  RefPtr<Flight>* start,
                                                  LazyAnswer* how)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (!closed.ok()) return absl::StatusOr<T>(closed);
      if (FreshLocked(now)) {
        ++stats.hits;
        *how = {true, generation, value_time};
        if (!current && now - value_time >= options.refresh_after) {
          *start = StartLocked(now);  // A refresh.
        }
        return absl::StatusOr<T>(*value);
      }
      if (FailureCachedLocked(now)) {
        ++stats.hits;
        *how = {true, generation, error_time};
        return absl::StatusOr<T>(last_error);
      }
      value.reset();
      failure_cached = false;
      return std::nullopt;
    }

    RefPtr<Flight> StartLocked(absl::Time now)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      RefPtr<Flight> f = MakeRef<Flight>();
      f->generation = generation;
      f->started = now;
      current = f;
      flights.push_back(f);
      ++stats.loads;
      return f;
    }

    void ForgetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      ++generation;
      value.reset();
      failure_cached = false;
      last_error = absl::OkStatus();
    }

    Factory factory;
    const AsyncLazyOptions options;
    mutable Mutex mu;
    std::optional<T> value ABSL_GUARDED_BY(mu);
    absl::Time value_time ABSL_GUARDED_BY(mu);
    absl::Status last_error ABSL_GUARDED_BY(mu);
    absl::Time error_time ABSL_GUARDED_BY(mu);
    bool failure_cached ABSL_GUARDED_BY(mu) = false;
    // The computation of this generation, if one runs.
    RefPtr<Flight> current ABSL_GUARDED_BY(mu);
    // Every computation not yet ended, older generations' included.
    std::vector<RefPtr<Flight>> flights ABSL_GUARDED_BY(mu);
    uint64_t generation ABSL_GUARDED_BY(mu) = 0;
    LazyStats stats ABSL_GUARDED_BY(mu);
    absl::Status closed ABSL_GUARDED_BY(mu);
  };

  static void Launch(RefPtr<State> s, RefPtr<Flight> flight) {
    CancellationToken token = flight->source.token();
    s->factory(token, [s, flight](absl::StatusOr<T> result) mutable {
      Finish(std::move(s), std::move(flight), std::move(result));
    });
  }

  static void Finish(RefPtr<State> s, RefPtr<Flight> flight,
                     absl::StatusOr<T> result) {
    std::vector<std::unique_ptr<Waiter>> waiters;
    LazyAnswer how;
    {
      MutexLock lock(&s->mu);
      const absl::Time now = s->Now();
      how = {false, flight->generation, now};
      if (s->current.get() == flight.get()) s->current = RefPtr<Flight>();
      s->flights.erase(std::remove_if(s->flights.begin(), s->flights.end(),
                                      [&](const RefPtr<Flight>& f) {
                                        return f.get() == flight.get();
                                      }),
                       s->flights.end());
      s->stats.last_load_duration = now - flight->started;
      if (flight->generation == s->generation && s->closed.ok()) {
        if (result.ok()) {
          s->value = *result;
          s->value_time = now;
          s->last_error = absl::OkStatus();
          s->failure_cached = false;
        } else {
          ++s->stats.load_failures;
          s->last_error = result.status();
          s->error_time = now;
          // A failed refresh leaves the value it was refreshing in place.
          s->failure_cached =
              !s->FreshLocked(now) &&
              s->options.cache_failures_for > absl::ZeroDuration();
        }
      }
      waiters.swap(flight->waiters);
    }
    for (auto& w : waiters) w->once->Fire(result, how);
  }

  RefPtr<State> state_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_ASYNC_LAZY_H_
