#include "server/plan/interpreter.h"

#include <cassert>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/engine/deadline.h"
#include "server/engine/task_group.h"
#include "server/handlers/duration.h"
#include "server/handlers/status_codes.h"

namespace weft::plan {
namespace {

using google::protobuf::Value;
using weft::v1::NodeOutcome;
using weft::v1::NodeState;

// What happened to one node.
struct NodeRecord {
  NodeState state = weft::v1::NODE_STATE_UNSPECIFIED;
  absl::Status error;
  Value value;
  absl::Time start;
  absl::Time end;
};

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(t);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

// The message a parent's error carries for a failed child.
absl::Status ChildError(const CompiledNode& child, int index,
                        const absl::Status& s) {
  const std::string& id = child.source->id();
  return absl::Status(
      s.code(),
      id.empty()
          ? absl::StrCat("children[", index, "]: ", s.message())
          : absl::StrCat("children[", index, "] \"", id, "\": ", s.message()));
}

// One run of a plan. Owns itself: deleted after `done` has run.
class Execution {
 public:
  Execution(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
            OutcomeDone done)
      : plan_(std::move(plan)),
        options_(std::move(options)),
        done_(std::move(done)),
        records_(plan_->nodes().size()) {}

  void Start() {
    StartNode(0, options_.token, [this](absl::Status) { Finish(); });
  }

 private:
  void StartNode(int32_t index, const engine::CancellationToken& token,
                 engine::Done done) {
    const CompiledNode& node = plan_->nodes()[index];
    NodeRecord& rec = records_[index];
    rec.start = options_.env->Now();
    if (options_.observer != nullptr) options_.observer->OnNodeStarted(index);

    // A call whose scope is already cancelled does not start. (A parallel
    // goes on, so that each of its children also ends CANCELLED.)
    if (node.kind == NodeKind::kCall && token.cancelled()) {
      Settle(index, token.reason(), token, nullptr, "", std::move(done));
      return;
    }

    // The node's deadline: its own timeout, and for the root the run's.
    absl::Time deadline = absl::InfiniteFuture();
    std::string timeout_message;
    if (node.timeout != absl::InfiniteDuration()) {
      deadline = rec.start + node.timeout;
      timeout_message = absl::StrCat(
          "timed out after ", handlers::FormatJsonDuration(node.timeout));
    }
    if (index == 0 && options_.deadline < deadline) {
      deadline = options_.deadline;
      timeout_message = options_.deadline_message;
    }
    std::unique_ptr<engine::Deadline> scope;
    engine::CancellationToken inner = token;
    if (deadline != absl::InfiniteFuture()) {
      scope = std::make_unique<engine::Deadline>(
          *options_.env, token, deadline,
          absl::CancelledError(absl::StrCat("cancelled: ", timeout_message)));
      inner = scope->token();
    }

    engine::Done settle = [this, index, token, scope = std::move(scope),
                           timeout_message = std::move(timeout_message),
                           done = std::move(done)](absl::Status s) mutable {
      Settle(index, std::move(s), token, scope.get(), timeout_message,
             std::move(done));
    };

    switch (node.kind) {
      case NodeKind::kCall:
        node.call->Start(handlers::CallContext{*options_.env, inner},
                         [this, index, settle = std::move(settle)](
                             handlers::CallResult result) mutable {
                           if (!result.ok()) {
                             std::move(settle)(std::move(result).status());
                             return;
                           }
                           records_[index].value = *std::move(result);
                           std::move(settle)(absl::OkStatus());
                         });
        return;
      case NodeKind::kParallel:
        StartParallel(index, inner, std::move(settle));
        return;
    }
  }

  void StartParallel(int32_t index, const engine::CancellationToken& token,
                     engine::Done done) {
    const CompiledNode& node = plan_->nodes()[index];
    engine::TaskGroup group(token);
    for (size_t i = 0; i < node.children.size(); ++i) {
      const int32_t child = node.children[i];
      group.Spawn([this, child, i](const engine::CancellationToken& t,
                                   engine::Done d) {
        StartNode(child, t,
                  [this, child, i, d = std::move(d)](absl::Status s) mutable {
                    if (!s.ok()) s = ChildError(plan_->nodes()[child], i, s);
                    std::move(d)(std::move(s));
                  });
      });
    }
    std::move(group).Join(
        [this, index, done = std::move(done)](absl::Status s) mutable {
          if (s.ok()) BuildParallelValue(index);
          std::move(done)(std::move(s));
        });
  }

  // A parallel's value: an object by child id when every child has one,
  // else a list in child order.
  void BuildParallelValue(int32_t index) {
    const CompiledNode& node = plan_->nodes()[index];
    Value& out = records_[index].value;
    // With the full outcome each child keeps its value; else it moves up.
    auto take = [this](int32_t child) -> Value {
      return options_.root_only ? std::move(records_[child].value)
                                : records_[child].value;
    };
    if (node.keyed_by_id) {
      auto* fields = out.mutable_struct_value()->mutable_fields();
      for (int32_t child : node.children) {
        (*fields)[plan_->nodes()[child].source->id()] = take(child);
      }
    } else {
      auto* list = out.mutable_list_value();
      for (int32_t child : node.children) *list->add_values() = take(child);
    }
  }

  // Records how node `index` ended and passes its status up.
  //   - OK: SUCCEEDED.
  //   - Its deadline expired and it stopped for that: TIMED_OUT, with
  //     DEADLINE_EXCEEDED.
  //   - Cancelled from outside (its incoming token): CANCELLED, with the
  //     reason.
  //   - Otherwise FAILED with its own (or its failing child's) error.
  void Settle(int32_t index, absl::Status s,
              const engine::CancellationToken& token,
              const engine::Deadline* scope, const std::string& timeout_message,
              engine::Done done) {
    NodeRecord& rec = records_[index];
    assert(rec.state == weft::v1::NODE_STATE_UNSPECIFIED && "node ended twice");
    rec.end = options_.env->Now();
    if (s.ok()) {
      rec.state = weft::v1::NODE_STATE_SUCCEEDED;
    } else if (scope != nullptr && scope->expired() &&
               (s.code() == absl::StatusCode::kCancelled ||
                s.code() == absl::StatusCode::kDeadlineExceeded)) {
      rec.state = weft::v1::NODE_STATE_TIMED_OUT;
      s = absl::DeadlineExceededError(timeout_message);
    } else if (s.code() == absl::StatusCode::kCancelled && token.cancelled()) {
      rec.state = weft::v1::NODE_STATE_CANCELLED;
      s = token.reason();
    } else {
      rec.state = weft::v1::NODE_STATE_FAILED;
    }
    rec.error = s;
    if (options_.observer != nullptr) {
      options_.observer->OnNodeFinished(index, rec.state);
    }
    std::move(done)(std::move(s));
  }

  void Finish() {
    NodeOutcome outcome;
    BuildOutcome(0, options_.root_only, &outcome);
    OutcomeDone done = std::move(done_);
    delete this;
    std::move(done)(std::move(outcome));
  }

  void BuildOutcome(int32_t index, bool root_only, NodeOutcome* out) {
    const CompiledNode& node = plan_->nodes()[index];
    NodeRecord& rec = records_[index];
    out->set_id(node.source->id());
    out->set_kind(node.kind == NodeKind::kCall ? weft::v1::NODE_KIND_CALL
                                               : weft::v1::NODE_KIND_PARALLEL);
    out->set_state(rec.state);
    if (rec.state == weft::v1::NODE_STATE_SUCCEEDED) {
      *out->mutable_value() = std::move(rec.value);
    } else {
      out->mutable_error()->set_code(handlers::CodeName(rec.error.code()));
      out->mutable_error()->set_message(std::string(rec.error.message()));
    }
    SetTimestamp(rec.start, out->mutable_start_time());
    SetTimestamp(rec.end, out->mutable_end_time());
    if (root_only) return;
    out->mutable_children()->Reserve(static_cast<int>(node.children.size()));
    for (int32_t child : node.children) {
      BuildOutcome(child, false, out->add_children());
    }
  }

  const std::shared_ptr<const CompiledPlan> plan_;
  const RunOptions options_;
  OutcomeDone done_;
  // One per node; each is written only by its node's own completion, and
  // read by the parent after the engine's completion ordering.
  std::vector<NodeRecord> records_;
};

}  // namespace

void Execute(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
             OutcomeDone done) {
  (new Execution(std::move(plan), std::move(options), std::move(done)))
      ->Start();
}

}  // namespace weft::plan
