#include "server/engine/deadline.h"

#include <utility>

namespace weft::engine {

Deadline::Deadline(Env& env, const CancellationToken& parent, absl::Time when,
                   absl::Status expiry_reason)
    : env_(env), state_(MakeRef<State>(parent)) {
  if (when == absl::InfiniteFuture() || state_->source.cancelled()) return;
  has_timer_ = true;
  timer_ = env_.Schedule(
      when, [state = state_, reason = std::move(expiry_reason)]() mutable {
        // If the scope was cancelled from above first, the parent's reason
        // stands and this is not an expiry.
        state->source.Cancel(std::move(reason));
      });
}

Deadline::~Deadline() {
  if (has_timer_) env_.Cancel(timer_);
}

}  // namespace weft::engine
