// Retry: run an attempt until it succeeds, fails in a way that is not worth
// retrying, or runs out of attempts; wait with exponential backoff and
// jitter in between. Cancellation stops a backoff wait at once.
//
// Thread-safety: attempts may complete on any thread; `done` runs once.

#ifndef WEFT_SERVER_ENGINE_RETRY_H_
#define WEFT_SERVER_ENGINE_RETRY_H_

#include <functional>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"
#include "server/engine/env.h"

namespace weft::engine {

struct RetryPolicy {
  // Attempts in all, the first included (at least 1).
  int max_attempts = 1;
  // The wait before attempt n+1 is min(max_backoff,
  // initial_backoff * multiplier^(n-1)), scaled by a random factor in
  // [1 - jitter, 1 + jitter].
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  double multiplier = 2.0;
  double jitter = 0.2;
  // Whether a failed attempt (numbered from 1) is worth another.
  std::function<bool(const absl::Status&, int attempt)> retryable;
  // Uniform in [0, 1); a seeded generator by default. Tests pass their own.
  std::function<double()> random;
};

// The wait before the attempt after `attempt` (numbered from 1), given a
// uniform `u` in [0, 1).
absl::Duration Backoff(const RetryPolicy& policy, int attempt, double u);

// One attempt: given the attempt number (from 1), calls its Done once.
using Attempt =
    absl::AnyInvocable<void(const CancellationToken&, int attempt, Done)>;

// `done(status, attempts)`: the last attempt's status, or the cancellation
// reason if the token was cancelled during a backoff wait.
void Retry(Env& env, const CancellationToken& token, RetryPolicy policy,
           Attempt attempt,
           absl::AnyInvocable<void(absl::Status, int attempts) &&> done);

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_RETRY_H_
