#include "server/engine/retry.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "server/engine/sleep.h"
#include "server/engine/sync.h"

namespace weft::engine {
namespace {

double DefaultRandom() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
}

// Deletes itself once `done` has been called and no attempt is still
// running: an attempt may call its Done (from another thread, even) before
// it returns, and then still use its token and captures.
class RetryState {
 public:
  RetryState(Env& env, const CancellationToken& token, RetryPolicy policy,
             Attempt attempt,
             absl::AnyInvocable<void(absl::Status, int) &&> done)
      : env_(env),
        token_(token),
        policy_(std::move(policy)),
        attempt_(std::move(attempt)),
        done_(std::move(done)) {
    if (!policy_.random) policy_.random = DefaultRandom;
  }

  void Next() {
    const int n = ++attempts_;
    refs_.fetch_add(1, std::memory_order_relaxed);  // The running attempt.
    attempt_(token_, n,
             [this, n](absl::Status s) { AttemptDone(n, std::move(s)); });
    Release();
  }

 private:
  void AttemptDone(int n, absl::Status status) {
    const bool again = !status.ok() && n < policy_.max_attempts &&
                       !token_.cancelled() && policy_.retryable &&
                       policy_.retryable(status, n);
    if (!again) {
      Finish(std::move(status));
      return;
    }
    // The backoff wait goes through the timer, so attempts that fail inline
    // never recurse.
    SleepFor(env_, token_, Backoff(policy_, n, policy_.random()),
             [this](absl::Status slept) {
               if (!slept.ok()) {
                 Finish(std::move(slept));
               } else {
                 Next();
               }
             });
  }

  void Finish(absl::Status status) {
    auto done = std::move(done_);
    const int attempts = attempts_;
    Release();
    std::move(done)(std::move(status), attempts);
  }

  void Release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Env& env_;
  const CancellationToken token_;
  RetryPolicy policy_;
  Attempt attempt_;
  absl::AnyInvocable<void(absl::Status, int) &&> done_;
  int attempts_ = 0;  // Touched by one attempt or wait at a time.
  // One for the chain of attempts and waits (dropped by Finish), one while
  // an attempt's function runs.
  std::atomic<int> refs_{1};
};

}  // namespace

absl::Duration Backoff(const RetryPolicy& policy, int attempt, double u) {
  const double base = absl::ToDoubleSeconds(policy.initial_backoff) *
                      std::pow(std::max(policy.multiplier, 1.0), attempt - 1);
  const double capped =
      std::min(base, absl::ToDoubleSeconds(policy.max_backoff));
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double scaled = capped * (1.0 + jitter * (2.0 * u - 1.0));
  return absl::Seconds(std::max(scaled, 0.0));
}

void Retry(Env& env, const CancellationToken& token, RetryPolicy policy,
           Attempt attempt,
           absl::AnyInvocable<void(absl::Status, int attempts) &&> done) {
  (new RetryState(env, token, std::move(policy), std::move(attempt),
                  std::move(done)))
      ->Next();
}

}  // namespace weft::engine
