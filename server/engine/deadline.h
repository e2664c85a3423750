// Deadline: a cancellation scope that cancels itself when a time passes.
//
// A node with a timeout runs under a Deadline; the work under it sees its
// token cancelled when the time passes (with the expiry reason), or when the
// parent scope is cancelled (with the parent's reason). expired() tells the
// two apart.
//
// Thread-safety: thread-safe. The timer runs on an engine thread.

#ifndef WEFT_SERVER_ENGINE_DEADLINE_H_
#define WEFT_SERVER_ENGINE_DEADLINE_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/internal/ref_counted.h"

namespace weft::engine {

class Deadline {
 public:
  // `expiry_reason` is the reason the token carries when `when` passes. An
  // infinite `when` never expires and schedules nothing.
  Deadline(Env& env, const CancellationToken& parent, absl::Time when,
           absl::Status expiry_reason);
  // Cancels the timer. Does not cancel the scope.
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  CancellationToken token() const { return state_->source.token(); }
  // True once the time has passed and the scope was cancelled because of it
  // (false if it was cancelled for another reason first).
  bool expired() const { return state_->source.cancelled_here(); }

 private:
  struct State : RefCounted<State> {
    explicit State(const CancellationToken& parent) : source(parent) {}
    CancellationSource source;
  };

  Env& env_;
  RefPtr<State> state_;
  bool has_timer_ = false;
  TimerId timer_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_DEADLINE_H_
