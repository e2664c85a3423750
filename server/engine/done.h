// Done and AsyncTask: the completion callback of asynchronous engine work,
// and the work itself, as every primitive (TaskGroup, race, sequence,
// BackgroundTasks, RunInThreadPool) takes it.

#ifndef WEFT_SERVER_ENGINE_DONE_H_
#define WEFT_SERVER_ENGINE_DONE_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace weft::engine {

// Called exactly once, with OK or why the work did not succeed. It may be
// called inline, before the function that started the work returns.
using Done = absl::AnyInvocable<void(absl::Status) &&>;

class CancellationToken;

// Work that runs at most once: it watches the token and calls Done exactly
// once, with OK or why it did not succeed.
using AsyncTask = absl::AnyInvocable<void(const CancellationToken&, Done) &&>;

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_DONE_H_
