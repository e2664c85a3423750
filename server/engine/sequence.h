// RunInSequence: run tasks one after another; the first failure stops the
// sequence and the tasks after it never start.
//
// Thread-safety: tasks may complete on any thread; `done` runs once, on the
// thread that finishes the last task run (possibly inline). Tasks that
// finish inline do not grow the stack.

#ifndef WEFT_SERVER_ENGINE_SEQUENCE_H_
#define WEFT_SERVER_ENGINE_SEQUENCE_H_

#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"

namespace weft::engine {

struct SequenceResult {
  // OK, or the failure that stopped the sequence.
  absl::Status status;
  // How many tasks ran (the failed one included).
  int ran = 0;
};

using SequenceTask = AsyncTask;

// A cancelled token stops the sequence too: the running task sees it, and
// no task starts after it (the result is then the token's reason).
void RunInSequence(const CancellationToken& token,
                   std::vector<SequenceTask> tasks,
                   absl::AnyInvocable<void(SequenceResult) &&> done);

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_SEQUENCE_H_
