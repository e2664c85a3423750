// Done: the completion callback of asynchronous engine work.

#ifndef WEFT_SERVER_ENGINE_DONE_H_
#define WEFT_SERVER_ENGINE_DONE_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace weft::engine {

// Called exactly once, with OK or why the work did not succeed. It may be
// called inline, before the function that started the work returns.
using Done = absl::AnyInvocable<void(absl::Status) &&>;

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_DONE_H_
