// Env: where the engine gets time, threads and timers from.
//
// The engine never reads the system clock or starts threads of its own; its
// owner passes an Env. weftd passes an EventLoop (real time, a fixed set of
// threads); tests pass a ManualEnv, whose time moves only when the test says,
// so timeout and backoff tests are exact and never sleep (the idea of
// LevelDB's Env and folly's Timekeeper).
//
// Thread-safety: implementations are safe to call from any thread.

#ifndef WEFT_SERVER_ENGINE_ENV_H_
#define WEFT_SERVER_ENGINE_ENV_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace weft::engine {

// A function run once.
using Closure = absl::AnyInvocable<void() &&>;

// Names a scheduled timer, for Env::Cancel().
struct TimerId {
  absl::Time when;
  uint64_t seq = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual absl::Time Now() const = 0;

  // Runs `fn` soon on one of the engine's threads; never inline.
  virtual void Post(Closure fn) = 0;

  // Runs `fn` on one of the engine's threads once Now() >= `when`, unless
  // cancelled first. Holds no thread while waiting.
  virtual TimerId Schedule(absl::Time when, Closure fn) = 0;

  // Returns true if the timer had not started to run and never will (its
  // function is destroyed unrun); false if it ran, is running, or is about
  // to run.
  virtual bool Cancel(TimerId id) = 0;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_ENV_H_
