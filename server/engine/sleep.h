// Sleep: wait for a point in time without holding a thread.
//
// Thread-safety: thread-safe; `done` runs on an engine thread, or inline when
// the token is already cancelled.

#ifndef WEFT_SERVER_ENGINE_SLEEP_H_
#define WEFT_SERVER_ENGINE_SLEEP_H_

#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"
#include "server/engine/env.h"

namespace weft::engine {

// Calls done(OK) once env.Now() >= `until`, or done(reason) as soon as
// `token` is cancelled, whichever comes first. Exactly one of the two.
void SleepUntil(Env& env, const CancellationToken& token, absl::Time until,
                Done done);

inline void SleepFor(Env& env, const CancellationToken& token, absl::Duration d,
                     Done done) {
  SleepUntil(env, token, env.Now() + d, std::move(done));
}

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_SLEEP_H_
