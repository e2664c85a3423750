// Pump: starts queued work without recursion, for the primitives that start
// more work as earlier work finishes (TaskGroup with max_concurrency, a
// hedged race). Work that finishes inline would otherwise start the next
// from inside its own Done, and a long chain of inline completions would
// grow the stack without bound; here a nested call only asks the loop that
// is already running to look again.
//
// Thread-safety: the state is guarded by the owner's mutex, which Pump
// takes and releases itself; `next` runs with it held, `start` without.

#ifndef WEFT_SERVER_ENGINE_INTERNAL_PUMP_H_
#define WEFT_SERVER_ENGINE_INTERNAL_PUMP_H_

#include <optional>
#include <utility>

#include "server/engine/sync.h"

namespace weft::engine::internal {

// Guarded by the owner's mutex. Not annotated ABSL_GUARDED_BY: it is passed
// to Pump by reference, which the analysis cannot follow.
struct PumpState {
  // A loop is running; the owner must not count its work as settled.
  bool pumping = false;
  // A nested call asked the running loop to look again.
  bool again = false;
};

// Calls `next()` under `mu` for the next piece of work to start (an
// optional, empty when nothing may start now) and `start(work)` outside it,
// until `next` gives nothing and no nested call asked to look again. A call
// made while another loop runs (from inside `start`, or another thread)
// returns false at once; that loop will look again. Returns true when this
// call ran the loop.
template <typename Next, typename Start>
bool Pump(Mutex& mu, PumpState& state, Next next, Start start) {
  {
    MutexLock lock(&mu);
    if (state.pumping) {
      state.again = true;
      return false;
    }
    state.pumping = true;
  }
  for (;;) {
    decltype(next()) work;
    {
      MutexLock lock(&mu);
      work = next();
      if (!work.has_value()) {
        if (state.again) {
          state.again = false;
          continue;
        }
        state.pumping = false;
        return true;
      }
    }
    start(*std::move(work));
  }
}

}  // namespace weft::engine::internal

#endif  // WEFT_SERVER_ENGINE_INTERNAL_PUMP_H_
