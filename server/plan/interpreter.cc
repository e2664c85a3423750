#include "server/plan/interpreter.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "server/common/proto_time.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"
#include "server/engine/deadline.h"
#include "server/engine/race.h"
#include "server/engine/retry.h"
#include "server/engine/sequence.h"
#include "server/engine/task_group.h"
#include "server/engine/thread_pool.h"
#include "server/handlers/value_size.h"
#include "server/plan/refs.h"
#include "server/plan/secrets.h"

namespace weft::plan {
namespace {

using google::protobuf::Value;
using handlers::ValueSize;
using weft::v1::NodeOutcome;
using weft::v1::NodeState;

// What a node costs in memory besides its value: its record while the run
// lasts, its outcome (id, times, an error message of at most
// common::kMaxMessageBytes) after.
constexpr int64_t kNodeMemory = 2048;

// One node of a run: what happened to it (in its last attempt, for the
// state, value and error), and while it runs, where it reports and the scope
// it runs in. Continuations live here rather than in closures, so the
// closures the engine holds capture only (this, index) and need no heap.
struct NodeRecord {
  NodeState state = weft::v1::NODE_STATE_UNSPECIFIED;
  absl::Status error;
  Value value;
  // The value's size, as charged to the run.
  ValueSize size;
  absl::Time start;
  absl::Time end;
  int attempts = 0;
  bool started = false;
  // Taken from the run's Replay rather than run.
  bool recovered = false;
  // Whether the current attempt's deadline is the run's (root only).
  bool run_deadline = false;
  std::string winner;

  // For a node a reference reads: a copy of its value once it succeeded,
  // and the memory that copy was charged.
  std::shared_ptr<const Value> ref_value;
  int64_t ref_memory = 0;
  // For a call whose args hold references: the args filled in, and the call
  // prepared with them (kept across its attempts).
  struct Filled {
    google::protobuf::Struct args;
    std::unique_ptr<handlers::Call> call;
    // The secrets in `args`: the call's value and error are redacted.
    UsedSecrets secrets;
  };
  // Shared with the call while it starts, which may outlast a reset. Held
  // until the node ends, its memory charged to the run.
  std::shared_ptr<const Filled> filled;
  int64_t filled_memory = 0;

  // For a map: its items and how each item's run ended.
  struct MapRun {
    // The list it runs over: the plan's, a value the run holds (a
    // reference's), or `owned`.
    const Value* items = nullptr;
    Value owned;
    // One per item: with a full outcome, the item's outcome (the map's
    // children); root-only, no more than the map's value needs.
    std::vector<NodeOutcome> outcomes;
    struct End {
      weft::v1::NodeState state = weft::v1::NODE_STATE_UNSPECIFIED;
      Value value;
      absl::Status error;
    };
    std::vector<End> ends;
    // The nodes its children add to the run (counted against
    // --max_plan_nodes).
    int64_t nodes_added = 0;
  };
  std::shared_ptr<MapRun> map;

  // While running.
  engine::Done done;                // To the parent.
  engine::CancellationToken token;  // The scope the node runs in.
  std::unique_ptr<engine::Deadline> node_deadline;  // Its `deadline`'s.
  engine::CancellationToken inner;             // The current attempt's scope.
  std::unique_ptr<engine::Deadline> deadline;  // The current attempt's.
  engine::Done attempt_done;                   // To Retry, for retried nodes.
};

// The status an outcome's error stands for.
absl::Status ErrorStatus(const weft::v1::Error& e) {
  absl::StatusOr<absl::StatusCode> code = common::ParseCodeName(e.code());
  absl::Status s(code.ok() ? *code : absl::StatusCode::kUnknown, e.message());
  if (!e.reason().empty() && e.reason() != e.code()) {
    s = common::WithReason(std::move(s), e.reason());
  }
  return s;
}

// The error a parent passes on for a failed child, naming the child.
absl::Status ChildError(const CompiledNode& child, int index,
                        const absl::Status& s) {
  return common::WithMessage(
      s, absl::StrCat(common::ChildLabel(child.source->id(), index), ": ",
                      s.message()));
}

weft::v1::NodeKind ToProto(NodeKind kind) {
  switch (kind) {
    case NodeKind::kCall:
      return weft::v1::NODE_KIND_CALL;
    case NodeKind::kParallel:
      return weft::v1::NODE_KIND_PARALLEL;
    case NodeKind::kRace:
      return weft::v1::NODE_KIND_RACE;
    case NodeKind::kOffload:
      return weft::v1::NODE_KIND_OFFLOAD;
    case NodeKind::kSequence:
      return weft::v1::NODE_KIND_SEQUENCE;
    case NodeKind::kLazy:
      return weft::v1::NODE_KIND_LAZY;
    case NodeKind::kMap:
      return weft::v1::NODE_KIND_MAP;
  }
  return weft::v1::NODE_KIND_UNSPECIFIED;
}

weft::v1::Join JoinToProto(engine::JoinPolicy join) {
  switch (join) {
    case engine::JoinPolicy::kAll:
      return weft::v1::JOIN_ALL;
    case engine::JoinPolicy::kAllSettled:
      return weft::v1::JOIN_ALL_SETTLED;
    case engine::JoinPolicy::kQuorum:
      return weft::v1::JOIN_QUORUM;
  }
  return weft::v1::JOIN_UNSPECIFIED;
}

bool DefaultRetryable(const absl::Status& s, NodeState attempt_state) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return true;
    case absl::StatusCode::kDeadlineExceeded:
      // Only the attempt's own timeout, not a deadline inside it.
      return attempt_state == weft::v1::NODE_STATE_TIMED_OUT;
    default:
      return false;
  }
}

// What every Execution of one run shares (the run's own and one per map
// item): the outcome's budget, and the overflow that stops the whole run.
struct RunShared {
  explicit RunShared(const RunOptions& options)
      : scope(options.source != nullptr
                  ? std::nullopt
                  : std::make_optional<engine::CancellationSource>(
                        options.token)),
        stop(options.source != nullptr ? options.source : &*scope) {}

  // What an overflow cancels: the caller's source, or without one a scope of
  // the run's own under the caller's token.
  std::optional<engine::CancellationSource> scope;
  const engine::CancellationSource* stop;
  // The serialized bytes of the values the records hold.
  std::atomic<int64_t> held_wire{0};
  std::atomic<bool> overflowed{false};
  mutable engine::Mutex mu;
  absl::Status overflow ABSL_GUARDED_BY(mu);
  // The nodes the run's outcome holds, maps' children included.
  std::atomic<int64_t> nodes{0};
};

// One run of a plan, or of a map's child for one item. Owns itself: deleted
// after `done` has run.
class Execution {
 public:
  // The run of the whole plan.
  Execution(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
            OutcomeDone done)
      : plan_(std::move(plan)),
        options_(std::move(options)),
        done_(std::move(done)),
        records_(plan_->nodes().size()),
        owned_shared_(std::make_unique<RunShared>(options_)),
        shared_(owned_shared_.get()) {
    if (options_.replay != nullptr) {
      replay_used_ = std::make_unique<char[]>(records_.size());
    }
    shared_->nodes.store(static_cast<int64_t>(records_.size()),
                         std::memory_order_relaxed);
  }

  // The run of map `map`'s child for item `index` of `parent`'s run.
  // It ends by writing its outcome (or, root-only, its state and value)
  // into the map's run and passing its status to `done`.
  Execution(Execution* parent, int32_t map, const Value* item, int64_t index,
            const engine::CancellationToken& token, engine::Done done)
      : root_(parent->node(map).children[0]),
        plan_(parent->plan_),
        options_(ItemOptions(parent->options_, token)),
        item_done_(std::move(done)),
        records_(parent->node(root_).subtree_size),
        shared_(parent->shared_),
        parent_(parent),
        map_(map),
        item_(item),
        item_index_(index) {
    index_.set_number_value(static_cast<double>(index));
  }

  void Start() {
    // The records, and the outcome's nodes, before anything runs.
    const int64_t nodes = static_cast<int64_t>(records_.size()) * kNodeMemory;
    if (options_.memory != nullptr && !options_.memory->TryAdd(nodes)) {
      Overflow(MemoryRefusal(nodes)).IgnoreError();
    } else {
      node_memory_ = nodes;
    }
    StartNode(root_,
              parent_ == nullptr ? shared_->stop->token() : options_.token,
              [this](absl::Status) { Finish(); });
  }

 private:
  // An item's run: the run's options, under the map's token, without a
  // replay (map children are not journaled).
  static RunOptions ItemOptions(const RunOptions& run,
                                const engine::CancellationToken& token) {
    RunOptions out;
    out.env = run.env;
    out.token = token;
    out.root_only = run.root_only;
    out.observer = run.observer;
    out.max_outcome_bytes = run.max_outcome_bytes;
    out.memory = run.memory;
    return out;
  }

  NodeRecord& R(int32_t index) { return records_[index - root_]; }
  const NodeRecord& R(int32_t index) const { return records_[index - root_]; }

  void Started(int32_t index) {
    if (options_.observer == nullptr) return;
    if (parent_ == nullptr) {
      options_.observer->OnNodeStarted(index);
    } else {
      options_.observer->OnItemNodeStarted(index);
    }
  }

  const CompiledNode& node(int32_t index) const {
    return plan_->nodes()[index];
  }

  // Runs node `index` to its end, with its retry policy if it has one;
  // `done` gets its status, naming the node for its parent.
  void StartNode(int32_t index, const engine::CancellationToken& token,
                 engine::Done done) {
    NodeRecord& rec = R(index);
    rec.start = options_.env->Now();
    rec.started = true;
    rec.done = std::move(done);
    rec.token = token;
    Started(index);

    const CompiledNode& n = node(index);
    if (n.deadline != absl::InfiniteDuration()) {
      rec.node_deadline = std::make_unique<engine::Deadline>(
          *options_.env, token, rec.start + n.deadline,
          common::WithReason(absl::CancelledError(absl::StrCat(
                                 "cancelled: ", DeadlineMessage(index))),
                             common::kNodeDeadline));
      rec.token = rec.node_deadline->token();
    }
    if (replay_used_ != nullptr && IsLeaf(n.kind) && !replay_used_[index] &&
        !token.cancelled()) {
      auto it = options_.replay->ended.find(index);
      if (it != options_.replay->ended.end()) {
        replay_used_[index] = 1;
        ReplayLeaf(index, it->second);
        return;
      }
    }
    if (n.retry == nullptr) {
      RunAttempt(index, 1);
      return;
    }
    engine::RetryPolicy policy = n.retry->policy;
    policy.retryable = [this, index](const absl::Status& s, int) {
      if (handlers::IsPermanent(s) || DeadlinePassed(index)) return false;
      const CompiledRetry& r = *node(index).retry;
      if (r.retryable_codes.empty()) {
        return DefaultRetryable(s, R(index).state);
      }
      return r.retryable_codes.contains(s.code());
    };
    engine::Retry(
        *options_.env, rec.token, std::move(policy),
        [this, index](const engine::CancellationToken&, int attempt,
                      engine::Done d) {
          R(index).attempt_done = std::move(d);
          RunAttempt(index, attempt);
        },
        [this, index](absl::Status s, int) { Finalize(index, std::move(s)); });
  }

  // One attempt of node `index`; AttemptEnded records how it went.
  void RunAttempt(int32_t index, int attempt) {
    const CompiledNode& n = node(index);
    if (attempt > 1) ResetSubtree(index);
    NodeRecord& rec = R(index);
    rec.attempts = attempt;
    rec.inner = rec.token;
    rec.run_deadline = false;

    // A call whose scope is already cancelled does not start. (Composite
    // nodes go on, so that each of their children also ends.)
    if (IsLeaf(n.kind) && rec.token.cancelled()) {
      AttemptEnded(index, rec.token.reason());
      return;
    }
    if (IsLeaf(n.kind) && options_.observer != nullptr) {
      absl::Status may = options_.observer->MayStartLeaf();
      if (!may.ok()) {
        AttemptEnded(index, std::move(may));
        return;
      }
    }

    // The attempt's deadline: the node's timeout, and for the root the run's.
    absl::Time deadline = absl::InfiniteFuture();
    if (n.timeout != absl::InfiniteDuration()) {
      deadline = options_.env->Now() + n.timeout;
    }
    if (index == 0 && parent_ == nullptr && options_.deadline < deadline) {
      deadline = options_.deadline;
      rec.run_deadline = true;
    }
    if (deadline != absl::InfiniteFuture()) {
      rec.deadline = std::make_unique<engine::Deadline>(
          *options_.env, rec.token, deadline,
          WithTimeoutReason(index, absl::CancelledError(absl::StrCat(
                                       "cancelled: ", TimeoutMessage(index)))));
      rec.inner = rec.deadline->token();
    }

    engine::Done ended = [this, index](absl::Status s) {
      AttemptEnded(index, std::move(s));
    };
    switch (n.kind) {
      case NodeKind::kCall:
      case NodeKind::kLazy:
        StartCall(index, rec.inner, std::move(ended));
        return;
      case NodeKind::kParallel:
        StartParallel(index, rec.inner, std::move(ended));
        return;
      case NodeKind::kRace:
        StartRace(index, rec.inner, std::move(ended));
        return;
      case NodeKind::kOffload:
        StartOffload(index, rec.inner, std::move(ended));
        return;
      case NodeKind::kSequence:
        StartSequence(index, rec.inner, std::move(ended));
        return;
      case NodeKind::kMap:
        StartMap(index, rec.inner, std::move(ended));
        return;
    }
  }

  absl::Status WithTimeoutReason(int32_t index, absl::Status s) const {
    return common::WithReason(std::move(s), R(index).run_deadline
                                                ? common::kRunDeadline
                                                : common::kNodeTimeout);
  }

  // Whether node `index`'s own deadline has passed (and stopped it).
  bool DeadlinePassed(int32_t index) const {
    const NodeRecord& rec = R(index);
    return rec.node_deadline != nullptr && rec.node_deadline->expired();
  }

  std::string DeadlineMessage(int32_t index) const {
    return absl::StrCat("the node's deadline of ",
                        common::FormatJsonDuration(node(index).deadline),
                        " passed");
  }

  std::string TimeoutMessage(int32_t index) const {
    return R(index).run_deadline
               ? (options_.deadline_message.empty()
                      ? std::string("the run's deadline passed")
                      : options_.deadline_message)
               : absl::StrCat("timed out after ",
                              common::FormatJsonDuration(node(index).timeout));
  }

  // Fills in the args of call `index` from the values the run holds and
  // prepares the call with them, once per run of the node.
  absl::Status Fill(int32_t index) {
    NodeRecord& rec = R(index);
    if (rec.filled != nullptr) return absl::OkStatus();
    const CompiledNode& n = node(index);
    // The secrets as they stand when the call starts, held while filling.
    std::shared_ptr<const SecretTable> secrets;
    UsedSecrets used;
    absl::StatusOr<google::protobuf::Struct> args =
        FillArgs(*n.arg_template, [&](const Ref& ref) {
          if (ref.source != Ref::Source::kSecret) return Lookup(ref);
          if (secrets == nullptr && plan_->secrets() != nullptr) {
            secrets = plan_->secrets()->Get();
          }
          RefTarget out;
          out.value = secrets == nullptr ? nullptr : secrets->Find(ref.id);
          if (out.value != nullptr) {
            used.emplace_back(ref.id, out.value->string_value());
          }
          return out;
        });
    if (!args.ok()) return args.status();
    auto filled = std::make_shared<NodeRecord::Filled>();
    filled->args = *std::move(args);
    filled->secrets = std::move(used);
    absl::Status s = handlers::CheckArgs(n.handler->info(), filled->args);
    if (s.ok()) {
      absl::StatusOr<std::unique_ptr<handlers::Call>> call =
          n.handler->Prepare(filled->args);
      if (call.ok()) {
        filled->call = *std::move(call);
      } else {
        s = call.status();
      }
    }
    if (!s.ok()) {
      // "args.url: must be ...", from the values the references brought
      // (which may quote a secret).
      return handlers::Permanent(
          common::WithReason(absl::InvalidArgumentError(absl::StrCat(
                                 Redact(filled->secrets, s.message()),
                                 " (filled in from references)")),
                             common::kRefBadValue));
    }
    int64_t memory = 0;
    for (const std::string& name : n.arg_template->dynamic_args) {
      auto it = filled->args.fields().find(name);
      if (it != filled->args.fields().end()) {
        memory += handlers::Measure(it->second).memory;
      }
    }
    if (options_.memory != nullptr && !options_.memory->TryAdd(memory)) {
      return Overflow(MemoryRefusal(memory));
    }
    rec.filled_memory = memory;
    rec.filled = std::move(filled);
    return absl::OkStatus();
  }

  // Drops the args a call was prepared with (its values can be large).
  void ReleaseFilled(NodeRecord& rec) {
    if (rec.filled_memory != 0 && options_.memory != nullptr) {
      options_.memory->Remove(rec.filled_memory);
    }
    rec.filled_memory = 0;
    rec.filled.reset();
  }

  // What `ref` finds: an item of a map around this run, or a node's value,
  // in this run or the one around it.
  RefTarget Lookup(const Ref& ref) const {
    if (ref.source != Ref::Source::kNode) {
      for (const Execution* e = this; e != nullptr; e = e->parent_) {
        if (e->map_ != ref.node) continue;
        RefTarget out;
        out.value = ref.source == Ref::Source::kItem ? e->item_ : &e->index_;
        return out;
      }
      RefTarget none;
      none.why_not = "its map is not running";
      return none;
    }
    if (ref.node >= root_ &&
        ref.node < root_ + static_cast<int32_t>(records_.size())) {
      return Target(ref.node);
    }
    return parent_->Lookup(ref);
  }

  // What a reference to node `target` finds.
  RefTarget Target(int32_t target) const {
    const NodeRecord& rec = R(target);
    RefTarget out;
    if (rec.ref_value != nullptr) {
      out.value = rec.ref_value.get();
      return out;
    }
    if (rec.state == weft::v1::NODE_STATE_UNSPECIFIED) {
      out.why_not = "it did not run";
    } else {
      out.why_not = absl::StrCat(
          "it ended ",
          weft::v1::NodeState_Name(rec.state).substr(sizeof("NODE_STATE_") - 1),
          rec.error.ok() ? std::string()
                         : absl::StrCat(" (", rec.error.message(), ")"));
    }
    return out;
  }

  // Keeps a copy of node `index`'s value for the references that read it.
  void KeepForReferences(int32_t index) {
    NodeRecord& rec = R(index);
    auto value = std::make_shared<Value>(ValueForReference(index));
    const int64_t memory = handlers::Measure(*value).memory;
    if (options_.memory != nullptr && !options_.memory->TryAdd(memory)) {
      Overflow(MemoryRefusal(memory)).IgnoreError();
      return;
    }
    rec.ref_memory = memory;
    rec.ref_value = std::move(value);
  }

  // Node `index`'s value, as its outcome would show it.
  Value ValueForReference(int32_t index) {
    const CompiledNode& n = node(index);
    if (options_.root_only || IsLeaf(n.kind)) return R(index).value;
    // A full outcome's composites carry no value: build it as a reader of
    // the outcome would, from a copy of the subtree's.
    NodeOutcome subtree;
    BuildOutcome(index, false, &subtree, /*copy=*/true);
    return common::AssembleValue(subtree);
  }

  void ReleaseReference(NodeRecord& rec) {
    if (rec.ref_memory != 0 && options_.memory != nullptr) {
      options_.memory->Remove(rec.ref_memory);
    }
    rec.ref_memory = 0;
    rec.ref_value.reset();
  }

  void StartCall(int32_t index, const engine::CancellationToken& token,
                 engine::Done done) {
    const CompiledNode& n = node(index);
    if (n.arg_template != nullptr) {
      if (absl::Status s = Fill(index); !s.ok()) {
        AttemptEnded(index, std::move(s));
        return;
      }
    }
    if (n.call == nullptr) {
      StartFilledCall(index, token, std::move(done));
      return;
    }
    if (n.pool == nullptr) {
      // On this thread; the callback ends the attempt directly.
      n.call->Start(
          handlers::CallContext{*options_.env, token, options_.traceparent},
          [this, index](handlers::CallResult result) {
            AttemptEnded(index, Record(index, std::move(result)));
          });
      return;
    }
    engine::RunInThreadPool(
        *n.pool, *options_.env, token,
        [this, index](const engine::CancellationToken& t, engine::Done d) {
          node(index).call->Start(
              handlers::CallContext{*options_.env, t, options_.traceparent},
              [this, index,
               d = std::move(d)](handlers::CallResult result) mutable {
                std::move(d)(Record(index, std::move(result)));
              });
        },
        std::move(done));
  }

  // StartCall for a call prepared when it started (Fill): the same, holding
  // the call while it starts.
  void StartFilledCall(int32_t index, const engine::CancellationToken& token,
                       engine::Done done) {
    std::shared_ptr<const NodeRecord::Filled> filled = R(index).filled;
    engine::ThreadPool* pool = node(index).pool;
    // The callbacks keep their own copy of the secrets (usually none): the
    // call may hold its callback, and the call is `filled`'s.
    if (pool == nullptr) {
      filled->call->Start(
          handlers::CallContext{*options_.env, token, options_.traceparent},
          [this, index,
           secrets = filled->secrets](handlers::CallResult result) {
            AttemptEnded(index, Record(index, std::move(result), &secrets));
          });
      return;
    }
    engine::RunInThreadPool(
        *pool, *options_.env, token,
        [this, index, filled = std::move(filled)](
            const engine::CancellationToken& t, engine::Done d) {
          filled->call->Start(
              handlers::CallContext{*options_.env, t, options_.traceparent},
              [this, index, secrets = filled->secrets,
               d = std::move(d)](handlers::CallResult result) mutable {
                std::move(d)(Record(index, std::move(result), &secrets));
              });
        },
        std::move(done));
  }

  // Ends leaf `index` as an earlier run recorded it.
  void ReplayLeaf(int32_t index, const NodeOutcome& recorded) {
    NodeRecord& rec = R(index);
    rec.recovered = true;
    rec.attempts = recorded.attempts();
    if (recorded.has_start_time()) {
      rec.start = common::FromProto(recorded.start_time());
    }
    absl::Status s;
    if (recorded.state() == weft::v1::NODE_STATE_SUCCEEDED) {
      s = Record(index, recorded.value());
      rec.state =
          s.ok() ? weft::v1::NODE_STATE_SUCCEEDED : weft::v1::NODE_STATE_FAILED;
    } else {
      s = ErrorStatus(recorded.error());
      rec.state = recorded.state();
    }
    rec.error = s;
    Finalize(index, std::move(s),
             recorded.has_end_time()
                 ? std::make_optional(common::FromProto(recorded.end_time()))
                 : std::nullopt);
  }

  // A leaf's outcome as it ended, its value copied (its parent takes it
  // later).
  NodeOutcome LeafOutcome(int32_t index) const {
    const NodeRecord& rec = R(index);
    NodeOutcome out;
    out.set_id(node(index).source->id());
    out.set_kind(ToProto(node(index).kind));
    out.set_state(rec.state);
    if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
      *out.mutable_value() = rec.value;
    } else {
      out.mutable_error()->set_code(common::CodeName(rec.error.code()));
      out.mutable_error()->set_message(std::string(rec.error.message()));
      out.mutable_error()->set_reason(common::Reason(rec.error));
    }
    common::SetTimestamp(rec.start, out.mutable_start_time());
    common::SetTimestamp(rec.end, out.mutable_end_time());
    out.set_attempts(rec.attempts);
    return out;
  }

  // Keeps a call's value, if the run's budgets can take it; returns its
  // status.
  // `secrets`: those the call was given, redacted from its value or error
  // (an echo of a header, a URL quoted in an error).
  absl::Status Record(int32_t index, handlers::CallResult result,
                      const UsedSecrets* secrets = nullptr) {
    if (secrets != nullptr && !secrets->empty()) {
      if (!result.ok()) {
        return common::WithMessage(result.status(),
                                   Redact(*secrets, result.status().message()));
      }
      Redact(*secrets, &*result);
    }
    if (!result.ok()) return std::move(result).status();
    const ValueSize size = handlers::Measure(*result);
    const int room = node(index).max_value_depth;
    if (size.depth > room) {
      // The same value would be as deep next time.
      return handlers::Permanent(common::WithLimit(
          absl::OutOfRangeError(absl::StrCat(
              "the value nests ", size.depth, " levels of lists and objects; ",
              ValueDepthRoom(room, plan_->max_value_depth()))),
          common::kValueTooDeep, "--max_value_depth",
          plan_->max_value_depth()));
    }
    if (absl::Status s = Charge(size); !s.ok()) return s;
    R(index).value = *std::move(result);
    R(index).size = size;
    return absl::OkStatus();
  }

  // Adds `size` to what the run holds, or stops the run (Overflow) and
  // returns why not.
  absl::Status Charge(const ValueSize& size) {
    if (shared_->overflowed.load(std::memory_order_acquire)) {
      return OverflowStatus();
    }
    const int64_t wire =
        shared_->held_wire.fetch_add(size.wire, std::memory_order_relaxed) +
        size.wire;
    if (wire > options_.max_outcome_bytes) {
      shared_->held_wire.fetch_sub(size.wire, std::memory_order_relaxed);
      return Overflow(common::WithLimit(
          absl::ResourceExhaustedError(absl::StrCat(
              "the outcome's values passed ", options_.max_outcome_bytes,
              " bytes, the most an answer may carry (--max_outcome_bytes); "
              "return smaller values, or run the plan in parts")),
          common::kAnswerTooLarge, "--max_outcome_bytes",
          options_.max_outcome_bytes));
    }
    if (options_.memory != nullptr && !options_.memory->TryAdd(size.memory)) {
      shared_->held_wire.fetch_sub(size.wire, std::memory_order_relaxed);
      return Overflow(MemoryRefusal(size.memory));
    }
    return absl::OkStatus();
  }

  // Gives back what a value no longer held took.
  void Uncharge(ValueSize& size) {
    shared_->held_wire.fetch_sub(size.wire, std::memory_order_relaxed);
    if (options_.memory != nullptr) options_.memory->Remove(size.memory);
    size = ValueSize();
  }

  absl::Status MemoryRefusal(int64_t bytes) const {
    return options_.memory->Refusal(bytes, "this run");
  }

  // Stops the whole run: the first overflow cancels every node with
  // `reason`, and the outcome becomes the root alone with that error.
  absl::Status Overflow(absl::Status reason) {
    bool expected = false;
    if (shared_->overflowed.compare_exchange_strong(
            expected, true, std::memory_order_acq_rel)) {
      {
        engine::MutexLock lock(&shared_->mu);
        shared_->overflow = reason;
      }
      shared_->stop->Cancel(reason);
      return reason;
    }
    return OverflowStatus();
  }

  absl::Status OverflowStatus() const {
    engine::MutexLock lock(&shared_->mu);
    return shared_->overflow;
  }

  // Starts child `i` of node `index`; its failure reaches `done` named.
  void StartChild(int32_t index, int32_t i,
                  const engine::CancellationToken& token, engine::Done done) {
    StartNode(node(index).children[i], token, std::move(done));
  }

  void StartParallel(int32_t index, const engine::CancellationToken& token,
                     engine::Done done) {
    const CompiledNode& n = node(index);
    engine::TaskGroup group(token, n.join);
    for (size_t i = 0; i < n.children.size(); ++i) {
      group.Spawn(
          [this, index, i](const engine::CancellationToken& t, engine::Done d) {
            StartChild(index, i, t, std::move(d));
          });
    }
    std::move(group).Join(
        [this, index, done = std::move(done)](absl::Status s) mutable {
          if (s.ok()) s = BuildParallelValue(index);
          std::move(done)(std::move(s));
        });
  }

  void StartRace(int32_t index, const engine::CancellationToken& token,
                 engine::Done done) {
    const CompiledNode& n = node(index);
    std::vector<engine::RaceTask> tasks;
    tasks.reserve(n.children.size());
    for (size_t i = 0; i < n.children.size(); ++i) {
      tasks.push_back(
          [this, index, i](const engine::CancellationToken& t, engine::Done d) {
            StartChild(index, i, t, std::move(d));
          });
    }
    engine::RaceOptions race;
    race.mode = n.race_mode;
    race.hedge_delay = n.hedge_delay;
    race.task_name = [this, index](int i) {
      return common::ChildLabel(node(node(index).children[i]).source->id(), i);
    };
    engine::RunUntilFirstComplete(
        *options_.env, token, std::move(tasks), std::move(race),
        [this, index, done = std::move(done)](engine::RaceResult r) mutable {
          const CompiledNode& n = node(index);
          for (size_t i = 0; i < n.children.size(); ++i) {
            if (!r.started[i]) {
              SkipSubtree(
                  n.children[i],
                  common::WithReason(
                      absl::CancelledError(
                          "not started: the race ended before its turn"),
                      common::kNotStarted));
            }
          }
          if (r.winner >= 0) {
            const int32_t winner = n.children[r.winner];
            R(index).winner =
                common::ChildName(node(winner).source->id(), r.winner);
            if (r.status.ok()) r.status = PassOn(winner, index);
          }
          std::move(done)(std::move(r.status));
        });
  }

  void StartOffload(int32_t index, const engine::CancellationToken& token,
                    engine::Done done) {
    // The pool applies to the calls below (resolved by the compiler); the
    // offload itself passes its child's result on as its own.
    const int32_t child = node(index).children[0];
    StartNode(
        child, token,
        [this, index, child, done = std::move(done)](absl::Status s) mutable {
          if (s.ok()) s = PassOn(child, index);
          std::move(done)(std::move(s));
        });
  }

  // A map: its items from the plan or the values the run holds, then its
  // child run once per item (an Execution of its own each), joined like a
  // parallel's children.
  void StartMap(int32_t index, const engine::CancellationToken& token,
                engine::Done done) {
    const CompiledNode& n = node(index);
    auto run = std::make_shared<NodeRecord::MapRun>();
    absl::StatusOr<const Value*> items = ResolveItems(
        *n.items, [this](const Ref& ref) { return Lookup(ref); }, &run->owned);
    if (!items.ok()) {
      std::move(done)(items.status());
      return;
    }
    run->items = *items;
    if (!run->items->has_list_value()) {
      std::move(done)(handlers::Permanent(common::WithReason(
          absl::InvalidArgumentError(absl::StrCat(
              "items: ", DescribeShape(*run->items), "; a map needs a list")),
          common::kRefBadValue)));
      return;
    }
    const Limits& limits = plan_->limits();
    const int64_t count = run->items->list_value().values_size();
    if (count > limits.max_map_items) {
      std::move(done)(handlers::Permanent(common::WithLimit(
          absl::InvalidArgumentError(absl::StrCat(
              "the map has ", count, " items, more than ", limits.max_map_items,
              ", the limit (--max_map_items)")),
          common::kPlanTooLarge, "--max_map_items", limits.max_map_items)));
      return;
    }
    // The child's nodes are counted once in the plan; each item adds them.
    const int64_t added = (count - 1) * node(n.children[0]).subtree_size;
    const int64_t total =
        shared_->nodes.fetch_add(added, std::memory_order_relaxed) + added;
    if (total > limits.max_plan_nodes) {
      shared_->nodes.fetch_sub(added, std::memory_order_relaxed);
      std::move(done)(handlers::Permanent(common::WithLimit(
          absl::InvalidArgumentError(
              absl::StrCat("the map's ", count, " items would make the run ",
                           total, " nodes, more than ", limits.max_plan_nodes,
                           ", the limit (--max_plan_nodes)")),
          common::kPlanTooLarge, "--max_plan_nodes", limits.max_plan_nodes)));
      return;
    }
    run->nodes_added = added;
    if (n.join.join == engine::JoinPolicy::kQuorum && n.join.quorum > count) {
      std::move(done)(handlers::Permanent(common::WithReason(
          absl::FailedPreconditionError(
              absl::StrCat("the quorum is ", n.join.quorum, " but the map has ",
                           count, count == 1 ? " item" : " items")),
          common::kQuorumUnreachable)));
      return;
    }
    if (options_.root_only) {
      run->ends.resize(static_cast<size_t>(count));
    } else {
      run->outcomes.resize(static_cast<size_t>(count));
    }
    R(index).map = run;
    if (options_.observer != nullptr && n.item_leaves > 0) {
      options_.observer->OnLeavesAdded(count * n.item_leaves);
    }
    engine::TaskGroup group(token, n.join);
    for (int64_t i = 0; i < count; ++i) {
      group.Spawn(
          [this, index, i](const engine::CancellationToken& t, engine::Done d) {
            StartItem(index, i, t, std::move(d));
          });
    }
    std::move(group).Join(
        [this, index, done = std::move(done)](absl::Status s) mutable {
          if (s.ok()) s = BuildMapValue(index);
          std::move(done)(std::move(s));
        });
  }

  // Runs map `index`'s child for item `i`.
  void StartItem(int32_t index, int64_t i,
                 const engine::CancellationToken& token, engine::Done done) {
    NodeRecord::MapRun& run = *R(index).map;
    if (token.cancelled()) {
      // Waiting its turn when the map was decided or cancelled: it never
      // starts (no Execution is made for it).
      const absl::Status not_started = common::WithReason(
          absl::CancelledError("not started: the map ended before its turn"),
          common::kNotStarted);
      if (options_.root_only) {
        NodeRecord::MapRun::End& end = run.ends[static_cast<size_t>(i)];
        end.state = weft::v1::NODE_STATE_SKIPPED;
        end.error = not_started;
      } else {
        const CompiledNode& child = node(node(index).children[0]);
        NodeOutcome& o = run.outcomes[static_cast<size_t>(i)];
        o.set_id(child.source->id());
        o.set_kind(ToProto(child.kind));
        o.set_state(weft::v1::NODE_STATE_SKIPPED);
        SetError(not_started, o.mutable_error());
      }
      std::move(done)(token.reason());
      return;
    }
    // It writes its end into `run` (ItemEnded) and tells the map.
    auto* item = new Execution(
        this, index, &run.items->list_value().values(static_cast<int>(i)), i,
        token, std::move(done));
    item->Start();
  }

  // A map's value, for a root-only run: the list of its children's values
  // (entries with JOIN_ALL_SETTLED; those that succeeded with JOIN_QUORUM).
  absl::Status BuildMapValue(int32_t index) {
    if (!options_.root_only) return absl::OkStatus();
    const CompiledNode& n = node(index);
    NodeRecord& rec = R(index);
    Value out;
    auto* list = out.mutable_list_value();
    ValueSize moved;
    list->mutable_values()->Reserve(static_cast<int>(rec.map->ends.size()));
    for (NodeRecord::MapRun::End& end : rec.map->ends) {
      const bool ok = end.state == weft::v1::NODE_STATE_SUCCEEDED;
      if (ok) moved += handlers::Measure(end.value);
      switch (n.join.join) {
        case engine::JoinPolicy::kAll:
          *list->add_values() = std::move(end.value);
          break;
        case engine::JoinPolicy::kQuorum:
          if (ok) *list->add_values() = std::move(end.value);
          break;
        case engine::JoinPolicy::kAllSettled: {
          auto* f =
              list->add_values()->mutable_struct_value()->mutable_fields();
          (*f)["state"].set_string_value(weft::v1::NodeState_Name(end.state));
          if (ok) {
            (*f)["value"] = std::move(end.value);
          } else {
            auto* e = (*f)["error"].mutable_struct_value()->mutable_fields();
            (*e)["code"].set_string_value(common::CodeName(end.error.code()));
            (*e)["message"].set_string_value(std::string(end.error.message()));
          }
          break;
        }
      }
      end.value.Clear();
    }
    const ValueSize size = handlers::Measure(out);
    if (absl::Status s = ChargeComposite(size, moved); !s.ok()) return s;
    rec.value = std::move(out);
    rec.size = size;
    return absl::OkStatus();
  }

  // Gives back the nodes a map's children added.
  void ReleaseMap(NodeRecord& rec) {
    if (rec.map == nullptr) return;
    shared_->nodes.fetch_sub(rec.map->nodes_added, std::memory_order_relaxed);
    rec.map.reset();
  }

  void StartSequence(int32_t index, const engine::CancellationToken& token,
                     engine::Done done) {
    const CompiledNode& n = node(index);
    std::vector<engine::SequenceTask> steps;
    steps.reserve(n.children.size());
    for (size_t i = 0; i < n.children.size(); ++i) {
      steps.push_back(
          [this, index, i](const engine::CancellationToken& t, engine::Done d) {
            StartChild(index, i, t, std::move(d));
          });
    }
    engine::RunInSequence(
        token, std::move(steps),
        [this, index, token,
         done = std::move(done)](engine::SequenceResult r) mutable {
          const CompiledNode& n = node(index);
          for (size_t i = r.ran; i < n.children.size(); ++i) {
            SkipSubtree(n.children[i],
                        common::WithReason(
                            absl::CancelledError(
                                token.cancelled()
                                    ? "not started: the sequence was cancelled"
                                    : "not started: an earlier step failed"),
                            common::kNotStarted));
          }
          if (r.status.ok()) r.status = BuildSequenceValue(index);
          std::move(done)(std::move(r.status));
        });
  }

  // A child's value for its parent, moved (its size goes with it). Only
  // root-only runs build composite values: a full outcome carries each value
  // once, at its leaf, and composites' are built from those when read.
  Value Take(int32_t child) {
    NodeRecord& rec = R(child);
    rec.size = ValueSize();
    return std::move(rec.value);
  }

  // Charges a composite value of `size` holding children's values of
  // `moved` in all: only what it adds, since their values move into it.
  absl::Status ChargeComposite(ValueSize size, const ValueSize& moved) {
    size.wire -= moved.wire;
    size.memory -= moved.memory;
    return Charge(size);
  }

  // A race's or an offload's value: its child's.
  absl::Status PassOn(int32_t child, int32_t index) {
    if (!options_.root_only) return absl::OkStatus();
    const ValueSize size = R(child).size;
    if (absl::Status s = ChargeComposite(size, size); !s.ok()) return s;
    R(index).value = Take(child);
    R(index).size = size;
    return absl::OkStatus();
  }

  // A sequence's value: the list of its steps' values.
  absl::Status BuildSequenceValue(int32_t index) {
    if (!options_.root_only) return absl::OkStatus();
    const CompiledNode& n = node(index);
    handlers::CompositeSize composite;
    ValueSize moved;
    for (int32_t child : n.children) {
      composite.AddItem(R(child).size);
      moved += R(child).size;
    }
    const ValueSize size = composite.AsList();
    if (absl::Status s = ChargeComposite(size, moved); !s.ok()) return s;
    auto* list = R(index).value.mutable_list_value();
    list->mutable_values()->Reserve(static_cast<int>(n.children.size()));
    for (int32_t child : n.children) *list->add_values() = Take(child);
    R(index).size = size;
    return absl::OkStatus();
  }

  // What a JOIN_ALL_SETTLED entry adds around a child's value (or error).
  ValueSize SettledEntrySize(const NodeRecord& rec) const {
    handlers::CompositeSize entry;
    entry.AddField(
        sizeof("state") - 1,
        handlers::StringSize(weft::v1::NodeState_Name(rec.state).size()));
    if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
      entry.AddField(sizeof("value") - 1, rec.size);
    } else {
      handlers::CompositeSize error;
      error.AddField(
          sizeof("code") - 1,
          handlers::StringSize(common::CodeName(rec.error.code()).size()));
      error.AddField(sizeof("message") - 1,
                     handlers::StringSize(rec.error.message().size()));
      entry.AddField(sizeof("error") - 1, error.AsObject());
    }
    return entry.AsObject();
  }

  // A parallel's value: an object by child id when every child has one,
  // else a list in child order. JOIN_ALL_SETTLED gives each child's state
  // with its value or error; JOIN_QUORUM only the children that succeeded.
  absl::Status BuildParallelValue(int32_t index) {
    if (!options_.root_only) return absl::OkStatus();
    const CompiledNode& n = node(index);
    // Sized from the children first: a value too large is refused before
    // it is copied.
    handlers::CompositeSize composite;
    ValueSize moved;  // The values that move into it (root only).
    for (int32_t child : n.children) {
      const NodeRecord& rec = R(child);
      ValueSize v;
      switch (n.join.join) {
        case engine::JoinPolicy::kAll:
          v = rec.size;
          break;
        case engine::JoinPolicy::kQuorum:
          if (rec.state != weft::v1::NODE_STATE_SUCCEEDED) continue;
          v = rec.size;
          break;
        case engine::JoinPolicy::kAllSettled:
          v = SettledEntrySize(rec);
          break;
      }
      if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) moved += rec.size;
      if (n.keyed_by_id) {
        composite.AddField(node(child).source->id().size(), v);
      } else {
        composite.AddItem(v);
      }
    }
    const ValueSize size =
        n.keyed_by_id ? composite.AsObject() : composite.AsList();
    if (absl::Status s = ChargeComposite(size, moved); !s.ok()) return s;
    R(index).size = size;

    Value& out = R(index).value;
    auto* fields =
        n.keyed_by_id ? out.mutable_struct_value()->mutable_fields() : nullptr;
    auto* list = n.keyed_by_id ? nullptr : out.mutable_list_value();
    for (int32_t child : n.children) {
      const NodeRecord& rec = R(child);
      Value v;
      switch (n.join.join) {
        case engine::JoinPolicy::kAll:
          v = Take(child);
          break;
        case engine::JoinPolicy::kQuorum:
          if (rec.state != weft::v1::NODE_STATE_SUCCEEDED) continue;
          v = Take(child);
          break;
        case engine::JoinPolicy::kAllSettled: {
          auto* f = v.mutable_struct_value()->mutable_fields();
          (*f)["state"].set_string_value(weft::v1::NodeState_Name(rec.state));
          if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
            (*f)["value"] = Take(child);
          } else {
            auto* e = (*f)["error"].mutable_struct_value()->mutable_fields();
            (*e)["code"].set_string_value(common::CodeName(rec.error.code()));
            (*e)["message"].set_string_value(std::string(rec.error.message()));
          }
          break;
        }
      }
      if (fields != nullptr) {
        (*fields)[node(child).source->id()] = std::move(v);
      } else {
        *list->add_values() = std::move(v);
      }
    }
    return absl::OkStatus();
  }

  // Records how an attempt of node `index` ended:
  //   - OK: SUCCEEDED.
  //   - Its deadline expired and it stopped for that: TIMED_OUT, with
  //     DEADLINE_EXCEEDED.
  //   - Cancelled from outside (its incoming token): CANCELLED, with the
  //     reason.
  //   - Otherwise FAILED with its own (or its failing child's) error.
  // Then hands the status to Retry, or ends the node.
  void AttemptEnded(int32_t index, absl::Status s) {
    // Messages are kept short: each enclosing node repeats its child's.
    s = common::Abbreviate(s);
    NodeRecord& rec = R(index);
    assert(rec.state == weft::v1::NODE_STATE_UNSPECIFIED &&
           "attempt ended twice");
    // A composite that ended OK although its scope was cancelled (its
    // children absorbed the cancellation, as JOIN_ALL_SETTLED does) was
    // stopped, not finished.
    if (s.ok() && !IsLeaf(node(index).kind) && rec.inner.cancelled()) {
      s = rec.inner.reason();
    }
    if (s.ok()) {
      rec.state = weft::v1::NODE_STATE_SUCCEEDED;
    } else if (rec.deadline != nullptr && rec.deadline->expired() &&
               (s.code() == absl::StatusCode::kCancelled ||
                s.code() == absl::StatusCode::kDeadlineExceeded)) {
      rec.state = weft::v1::NODE_STATE_TIMED_OUT;
      s = WithTimeoutReason(index,
                            absl::DeadlineExceededError(TimeoutMessage(index)));
    } else if (s.code() == absl::StatusCode::kCancelled &&
               rec.token.cancelled()) {
      rec.state = weft::v1::NODE_STATE_CANCELLED;
      s = rec.token.reason();
    } else {
      rec.state = weft::v1::NODE_STATE_FAILED;
    }
    rec.error = s;
    rec.deadline.reset();
    if (node(index).retry == nullptr) {
      Finalize(index, std::move(s));
    } else {
      engine::Done next = std::move(rec.attempt_done);
      std::move(next)(std::move(s));
    }
  }

  // The node's end, after its last attempt (or a cancelled backoff wait):
  // reports to the parent, naming the node in a failure. `end`: when a
  // replayed leaf ended, else now.
  void Finalize(int32_t index, absl::Status s,
                std::optional<absl::Time> end = std::nullopt) {
    NodeRecord& rec = R(index);
    rec.end = end.value_or(options_.env->Now());
    if (!s.ok() && DeadlinePassed(index) &&
        (s.code() == absl::StatusCode::kCancelled ||
         s.code() == absl::StatusCode::kDeadlineExceeded)) {
      // Its deadline stopped it, mid-attempt or waiting to retry.
      rec.state = weft::v1::NODE_STATE_TIMED_OUT;
      s = common::WithReason(
          absl::DeadlineExceededError(
              absl::StrCat(DeadlineMessage(index), " (", rec.attempts,
                           rec.attempts == 1 ? " attempt)" : " attempts)")),
          common::kNodeDeadline);
      rec.error = s;
    } else if (!s.ok() && rec.state == weft::v1::NODE_STATE_FAILED &&
               s.code() == absl::StatusCode::kCancelled &&
               rec.token.cancelled() && s == rec.token.reason()) {
      // Cancelled while waiting to retry.
      rec.state = weft::v1::NODE_STATE_CANCELLED;
      rec.error = s;
    }
    rec.node_deadline.reset();
    ReleaseFilled(rec);
    const CompiledNode& n = node(index);
    if (n.referenced && rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
      KeepForReferences(index);
    }
    if (options_.observer != nullptr && parent_ != nullptr) {
      options_.observer->OnItemNodeFinished(index, rec.state);
    } else if (options_.observer != nullptr) {
      options_.observer->OnNodeFinished(index, rec.state);
      if (IsLeaf(n.kind) && !rec.recovered &&
          options_.observer->wants_leaf_outcomes()) {
        options_.observer->OnLeafOutcome(index, LeafOutcome(index));
      }
    }
    // A map names its children itself.
    if (!s.ok() && index != root_ && !n.parent_is_offload) {
      s = ChildError(n, n.position, s);
    }
    engine::Done done = std::move(rec.done);
    rec.token = engine::CancellationToken();
    rec.inner = engine::CancellationToken();
    std::move(done)(std::move(s));
  }

  // Marks a node that never started, and everything below it, SKIPPED.
  void SkipSubtree(int32_t index, const absl::Status& reason) {
    const int32_t end = index + node(index).subtree_size;
    for (int32_t i = index; i < end; ++i) {
      Uncharge(R(i).size);
      ReleaseReference(R(i));
      ReleaseMap(R(i));
      R(i) = NodeRecord();
      R(i).state = weft::v1::NODE_STATE_SKIPPED;
      R(i).error = reason;
    }
  }

  // Before another attempt: forget the last one, below and at the node.
  void ResetSubtree(int32_t index) {
    const int32_t end = index + node(index).subtree_size;
    R(index).state = weft::v1::NODE_STATE_UNSPECIFIED;
    R(index).value.Clear();
    Uncharge(R(index).size);
    R(index).winner.clear();
    ReleaseMap(R(index));
    for (int32_t i = index + 1; i < end; ++i) {
      Uncharge(R(i).size);
      ReleaseReference(R(i));
      ReleaseMap(R(i));
      R(i) = NodeRecord();
    }
  }

  void Finish() {
    NodeOutcome outcome;
    const bool overflowed = parent_ == nullptr &&
                            shared_->overflowed.load(std::memory_order_acquire);
    if (overflowed) {
      // The root alone, failed: what the run made is dropped.
      NodeRecord& root = R(root_);
      root.state = weft::v1::NODE_STATE_FAILED;
      root.error = OverflowStatus();
      Uncharge(root.size);
      root.value.Clear();
    }
    const bool root_only = options_.root_only || overflowed;
    for (NodeRecord& rec : records_) ReleaseReference(rec);
    absl::Status item_status;
    if (parent_ != nullptr) {
      // An item's run: its end goes into the map's run.
      NodeRecord::MapRun& run = *parent_->R(map_).map;
      NodeRecord& root = R(root_);
      const auto at = static_cast<size_t>(item_index_);
      if (root.state != weft::v1::NODE_STATE_SUCCEEDED) {
        item_status = common::WithMessage(
            root.error, absl::StrCat("children[", item_index_,
                                     "]: ", root.error.message()));
      }
      if (options_.root_only) {
        NodeRecord::MapRun::End& end = run.ends[at];
        end.state = root.state;
        end.value = std::move(root.value);
        end.error = root.error;
      } else {
        BuildOutcome(root_, false, &run.outcomes[at]);
      }
    } else {
      BuildOutcome(root_, root_only, &outcome);
    }
    // What the outcome does not keep is freed with the records.
    for (size_t i = root_only ? 1 : records_.size(); i < records_.size(); ++i) {
      Uncharge(records_[i].size);
    }
    if (options_.memory != nullptr) {
      const int64_t kept =
          (root_only ? 1 : static_cast<int64_t>(records_.size())) * kNodeMemory;
      options_.memory->Remove(node_memory_ - std::min(kept, node_memory_));
    }
    if (parent_ != nullptr) {
      engine::Done done = std::move(item_done_);
      delete this;
      std::move(done)(std::move(item_status));
      return;
    }
    OutcomeDone done = std::move(done_);
    delete this;
    std::move(done)(std::move(outcome));
  }

  static void SetError(const absl::Status& error, weft::v1::Error* out) {
    out->set_code(common::CodeName(error.code()));
    out->set_message(std::string(error.message()));
    out->set_reason(common::Reason(error));
  }

  // `copy`: leaves the records' values and winners in place.
  void BuildOutcome(int32_t index, bool root_only, NodeOutcome* out,
                    bool copy = false) {
    const CompiledNode& n = node(index);
    NodeRecord& rec = R(index);
    out->set_id(n.source->id());
    out->set_kind(ToProto(n.kind));
    out->set_state(rec.state);
    if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
      // Composites of a full outcome have none (see Take).
      if (IsLeaf(n.kind) || root_only) {
        *out->mutable_value() = copy ? rec.value : std::move(rec.value);
      }
    } else {
      SetError(rec.error, out->mutable_error());
    }
    if (rec.started) {
      common::SetTimestamp(rec.start, out->mutable_start_time());
      common::SetTimestamp(rec.end, out->mutable_end_time());
    }
    out->set_attempts(rec.attempts);
    out->set_recovered(rec.recovered);
    if (options_.replay != nullptr && rec.started && !rec.recovered &&
        options_.replay->started.contains(index)) {
      out->set_ran_again(true);
    }
    out->set_winner(copy ? rec.winner : std::move(rec.winner));
    if (n.kind == NodeKind::kParallel || n.kind == NodeKind::kMap) {
      out->set_join(JoinToProto(n.join.join));
    }
    if (root_only) return;
    if (n.kind == NodeKind::kMap) {
      // One child per item; none when it did not start.
      if (rec.map == nullptr) return;
      out->mutable_children()->Reserve(
          static_cast<int>(rec.map->outcomes.size()));
      for (NodeOutcome& o : rec.map->outcomes) {
        *out->add_children() = copy ? o : std::move(o);
      }
      return;
    }
    out->mutable_children()->Reserve(static_cast<int>(n.children.size()));
    for (int32_t child : n.children) {
      BuildOutcome(child, false, out->add_children(), copy);
    }
  }

  // For an item's run: the first node it runs (the map's child); 0 for the
  // run of the plan.
  const int32_t root_ = 0;
  const std::shared_ptr<const CompiledPlan> plan_;
  const RunOptions options_;
  OutcomeDone done_;        // The plan's run's.
  engine::Done item_done_;  // An item's run's.
  // One per node; each is written only by its node's own completion, and
  // read by the parent after the engine's completion ordering.
  std::vector<NodeRecord> records_;
  // What Start() charged for the records.
  int64_t node_memory_ = 0;
  // With a Replay: which recorded leaves were used (each once). One byte
  // per node, since nodes on different threads set theirs.
  std::unique_ptr<char[]> replay_used_;
  // The run's own (the plan's run), shared by its items' runs.
  std::unique_ptr<RunShared> owned_shared_;
  RunShared* const shared_;
  // For an item's run: the run whose map runs it, the map, and the item.
  Execution* const parent_ = nullptr;
  const int32_t map_ = -1;
  const Value* const item_ = nullptr;
  const int64_t item_index_ = -1;
  Value index_;
};

}  // namespace

weft::v1::NodeOutcome RootFailed(const weft::v1::NodeOutcome& outcome,
                                 const absl::Status& error) {
  weft::v1::NodeOutcome root;
  root.set_id(outcome.id());
  root.set_kind(outcome.kind());
  root.set_state(weft::v1::NODE_STATE_FAILED);
  *root.mutable_start_time() = outcome.start_time();
  *root.mutable_end_time() = outcome.end_time();
  root.set_attempts(outcome.attempts());
  root.mutable_error()->set_code(common::CodeName(error.code()));
  root.mutable_error()->set_message(std::string(error.message()));
  root.mutable_error()->set_reason(common::Reason(error));
  return root;
}

void Execute(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
             OutcomeDone done) {
  (new Execution(std::move(plan), std::move(options), std::move(done)))
      ->Start();
}

}  // namespace weft::plan
