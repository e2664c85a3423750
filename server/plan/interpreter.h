// The plan interpreter: runs a CompiledPlan on the engine and reports its
// outcome tree.
//
// Each node kind maps onto an engine primitive: a call runs its handler's
// Call with the node's cancellation token (through RunInThreadPool when it
// is offloaded or blocks), a parallel is a TaskGroup with the node's join
// policy, a race is RunUntilFirstComplete, a sequence is RunInSequence, a
// retry policy is Retry, a node's timeout is a Deadline scope per attempt
// and its deadline one over all of them. A map is a TaskGroup whose tasks
// each run the map's child for one item, as an execution of their own over
// the same compiled nodes (sharing the run's budgets). Work that can finish
// at once (value calls) finishes inline on the
// caller's thread; waiting work (sleeps) holds no thread and finishes on the
// engine's threads.
//
// Thread-safety: Execute() may be called from any thread; `done` runs once,
// on whichever thread finishes the root (possibly inline).

#ifndef WEFT_SERVER_PLAN_INTERPRETER_H_
#define WEFT_SERVER_PLAN_INTERPRETER_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"
#include "server/engine/memory_budget.h"
#include "server/plan/compiler.h"
#include "weft/v1/outcome.pb.h"

namespace weft::plan {

// Sees nodes start and end, e.g. to count progress: once per run of a node
// (a subtree under a retry runs again on each attempt). Calls may come from
// any thread, concurrently; they must be quick and must not call back into
// the run.
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  virtual void OnNodeStarted(int32_t node) = 0;
  // Asked before each attempt of a leaf (a call or lazy node, in a map's
  // child too) starts: a status other than OK ends the attempt with it,
  // its handler not called. A task's run on a replica whose lease has ended
  // is refused so (TaskStore::MayStartWork).
  virtual absl::Status MayStartLeaf() { return absl::OkStatus(); }
  virtual void OnNodeFinished(int32_t node, weft::v1::NodeState state) = 0;
  // A leaf (call or lazy node) ended, as its outcome says (its value,
  // error, times and attempts; no children): called after OnNodeFinished
  // when wants_leaf_outcomes(), except for leaves taken from a Replay.
  virtual bool wants_leaf_outcomes() const { return false; }
  virtual void OnLeafOutcome(int32_t /*node*/,
                             const weft::v1::NodeOutcome& /*outcome*/) {}
  // A node inside a map's child, run for one of its items (`node` is the
  // child's node in the plan, the same for every item): by default seen like
  // any other. Leaves run for an item get no OnLeafOutcome.
  virtual void OnItemNodeStarted(int32_t node) { OnNodeStarted(node); }
  virtual void OnItemNodeFinished(int32_t node, weft::v1::NodeState state) {
    OnNodeFinished(node, state);
  }
  // A map started: its items add `leaves` leaves to the run (the plan's
  // leaves() counts those outside maps' children).
  virtual void OnLeavesAdded(int64_t /*leaves*/) {}
};

// What a run resumed after a restart knows of its earlier life (a task's
// journal): leaves that ended, by node index, whose recorded outcome is
// used instead of running them (once: a retry of a composite above runs them
// for real), and leaves that had started without ending, which run again
// and are marked so.
struct Replay {
  absl::flat_hash_map<int32_t, weft::v1::NodeOutcome> ended;
  absl::flat_hash_set<int32_t> started;
};

struct RunOptions {
  // Required; must outlive the run.
  engine::Env* env = nullptr;
  // Cancelling it cancels the run; its reason becomes the root's error.
  engine::CancellationToken token;
  // Optional: the source of `token`, when the caller made it for this run
  // alone; the run cancels it to stop itself (see max_outcome_bytes). Without
  // it the run makes a scope of its own under `token`, which costs a little
  // on every run.
  const engine::CancellationSource* source = nullptr;
  // The whole run must finish by then; the root then ends TIMED_OUT with
  // `deadline_message` (empty: "the run's deadline passed").
  absl::Time deadline = absl::InfiniteFuture();
  std::string deadline_message;
  // Whether to build the root's outcome alone, with its value built from its
  // children's, or every node's, each value at its leaf only (composites'
  // are built from them when read: common::AssembleValue).
  bool root_only = false;
  // Optional; must outlive the run.
  NodeObserver* observer = nullptr;
  // Optional: what an earlier run of the same plan did (see Replay).
  std::shared_ptr<const Replay> replay;
  // The most bytes (serialized) the values of the outcome may take, counted
  // as they are made. The moment a value would pass it, the run stops
  // (everything in it is cancelled) and its outcome is the root alone,
  // FAILED with RESOURCE_EXHAUSTED saying so.
  int64_t max_outcome_bytes = std::numeric_limits<int64_t>::max();
  // Optional; must outlive the run, and is meant to live as long as its
  // outcome: the memory the run holds (its nodes' records and values) is
  // added to it as the run goes, and what the outcome keeps stays in it when
  // the run ends. When its budget refuses more, the run stops as above.
  engine::MemoryCharge* memory = nullptr;
  // The caller's W3C traceparent (checked: common::TraceId accepts it), or
  // empty; its calls pass it on (the http handler, as a header).
  std::string traceparent;
};

using OutcomeDone = absl::AnyInvocable<void(weft::v1::NodeOutcome) &&>;

// `outcome`'s root alone (id, kind, times, attempts), FAILED with `error`
// (its code, message and reason): what is kept of an outcome that cannot be
// kept whole.
weft::v1::NodeOutcome RootFailed(const weft::v1::NodeOutcome& outcome,
                                 const absl::Status& error);

// Runs `plan`. `done` gets the root's outcome, with its children unless
// `options.root_only`.
void Execute(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
             OutcomeDone done);

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_INTERPRETER_H_
