// The plan compiler: checks a plan against the limits, the handler registry
// and the thread pools, and turns it into the form the interpreter runs.
//
// Every error is INVALID_ARGUMENT and its message starts with the path of
// what is wrong, in the request's field names:
//   plan.parallel.children[2].call.args.duration: must not be negative, ...
//
// Thread-safety: Compile() is thread-safe; a CompiledPlan is immutable and
// may be run by several interpreters at once.

#ifndef WEFT_SERVER_PLAN_COMPILER_H_
#define WEFT_SERVER_PLAN_COMPILER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/race.h"
#include "server/engine/retry.h"
#include "server/engine/task_group.h"
#include "server/engine/thread_pool.h"
#include "server/handlers/handler.h"
#include "server/handlers/registry.h"
#include "server/plan/lazy_resolver.h"
#include "server/plan/pools.h"
#include "server/plan/refs.h"
#include "server/plan/secrets.h"
#include "weft/v1/plan.pb.h"

namespace weft::plan {

// Limits on what a plan may be; each is a weftd flag of the same name.
struct Limits {
  int max_plan_nodes = 10'000;
  // Plan levels: a plan that is one call has depth 1.
  int max_plan_depth = 16;
  // Levels of lists and objects any value may have, 0 being a scalar: the
  // values in args, what each call returns, and each composite node's value,
  // which adds one level (a JOIN_ALL_SETTLED parallel two) around its
  // children's.
  int max_value_depth = 16;
  // Items a map may run its child for, checked when it starts.
  int max_map_items = 10'000;
};

// The deepest a request or a response may nest, in protobuf message levels
// (the outermost message being level 1). Protobuf's C++ and Python parsers
// refuse more than 101 by default; weftd keeps its messages within this
// bound, leaving room for clients with smaller limits.
inline constexpr int kMaxMessageNesting = 90;

// The deepest a request or response of weftd nests with `limits`: a plan
// echoed back in a task or lazy value (ListTasks' Task, ListLazyValues'
// LazyValue) nests two message levels per plan level and three per value
// level, within five more for the messages around them:
//   2 * max_plan_depth + 3 * max_value_depth + 5.
// An outcome nests less: one level per plan level.
int MessageNesting(const Limits& limits);

// OK when MessageNesting(limits) is within kMaxMessageNesting; otherwise
// INVALID_ARGUMENT saying which flags to lower.
absl::Status CheckLimits(const Limits& limits);

// What a message about a value too deep says about the room there was:
// "values nest at most 16 levels of lists and objects (--max_value_depth)",
// or where enclosing composites took some of it, how many.
std::string ValueDepthRoom(int allowed, int max_value_depth);

// kLazy nodes run like calls (their `call` resolves the lazy value).
enum class NodeKind {
  kCall,
  kParallel,
  kRace,
  kOffload,
  kSequence,
  kLazy,
  kMap
};

// Calls and lazy nodes: the leaves whose progress tasks count.
inline bool IsLeaf(NodeKind kind) {
  return kind == NodeKind::kCall || kind == NodeKind::kLazy;
}

// A node's retry policy, checked; the interpreter builds the engine's policy
// from it.
struct CompiledRetry {
  // Attempts, backoff and jitter; the interpreter adds what is retryable.
  engine::RetryPolicy policy;
  // Empty: the default set (UNAVAILABLE, RESOURCE_EXHAUSTED, and the
  // attempt's own DEADLINE_EXCEEDED).
  absl::flat_hash_set<absl::StatusCode> retryable_codes;
};

struct CompiledNode {
  NodeKind kind = NodeKind::kCall;
  // The node as the client wrote it; owned by the CompiledPlan.
  const weft::v1::PlanNode* source = nullptr;
  // Per attempt; InfiniteDuration() when the node has no timeout.
  absl::Duration timeout = absl::InfiniteDuration();
  // For all attempts and backoffs together, from the node's first start;
  // InfiniteDuration() when the node has no deadline.
  absl::Duration deadline = absl::InfiniteDuration();
  // The enclosing node's index; -1 for the root.
  int32_t parent = -1;
  std::unique_ptr<const CompiledRetry> retry;
  // Indices into CompiledPlan::nodes(), in plan order.
  std::vector<int32_t> children;
  // This node and its descendants: nodes()[index, index + subtree_size).
  int32_t subtree_size = 1;
  // The node's position among its parent's children (0 for the root).
  int32_t position = 0;
  // An offload passes its child's result on as its own, without naming it.
  bool parent_is_offload = false;
  // For a parallel or race: whether its value is an object keyed by child id.
  bool keyed_by_id = false;
  // For a parallel.
  engine::TaskGroupOptions join;
  // For a race.
  engine::RaceMode race_mode = engine::RaceMode::kFirstSuccess;
  absl::Duration hedge_delay = absl::ZeroDuration();
  // For a call: the prepared call, and the pool it runs on (nullptr: on the
  // event loop). A call whose args hold references has none: it is prepared
  // when it starts, from `arg_template` filled in, by `handler`.
  std::unique_ptr<handlers::Call> call;
  std::unique_ptr<const ArgTemplate> arg_template;
  const handlers::Handler* handler = nullptr;
  // The args `call` was prepared with, when they are not the plan's own
  // (a $literal unwrapped).
  std::unique_ptr<const google::protobuf::Struct> args;
  // Whether a reference reads this node's value: the run keeps a copy of it
  // when the node succeeds.
  bool referenced = false;
  // For a map: its items (a template with one field, "items"), the name its
  // `as` gives the item, and the leaves its child has outside maps of its
  // own (what each item adds to a task's progress). Its child is
  // children[0]; `join` is its join.
  std::unique_ptr<const ArgTemplate> items;
  std::string item_name;
  int32_t item_leaves = 0;
  engine::ThreadPool* pool = nullptr;
  // The most levels of lists and objects the node's value may have:
  // --max_value_depth less what the composites around it add. A call whose
  // value is deeper fails OUT_OF_RANGE.
  int max_value_depth = 0;
};

class CompiledPlan {
 public:
  // Nodes in pre-order; nodes()[0] is the root.
  const std::vector<CompiledNode>& nodes() const { return nodes_; }
  const CompiledNode& root() const { return nodes_.front(); }
  // How many leaves (call and lazy nodes) the plan has outside maps' children
  // (those are known when a map starts: CompiledNode::item_leaves per item).
  int leaves() const { return leaves_; }
  // The limits a map checks when it starts.
  const Limits& limits() const { return limits_; }
  // The lazy values its lazy nodes resolve, each once, in plan order.
  const std::vector<std::string>& lazy_names() const { return lazy_names_; }
  // The --max_value_depth it was compiled with.
  int max_value_depth() const { return max_value_depth_; }
  // Where its $secret objects are filled from (null: it has none).
  const Secrets* secrets() const { return secrets_; }
  // Whether it has $secret objects (checked against the secrets in force
  // when it was compiled).
  bool uses_secrets() const { return uses_secrets_; }

 private:
  friend class Compiler;
  // Keeps the plan's messages alive (the message itself, or the arena
  // holding it).
  std::shared_ptr<const void> source_;
  std::vector<CompiledNode> nodes_;
  int leaves_ = 0;
  Limits limits_;
  std::vector<std::string> lazy_names_;
  int max_value_depth_ = 0;
  const Secrets* secrets_ = nullptr;
  bool uses_secrets_ = false;
};

// Compiles `plan`, which the result keeps. `path` names the plan in error
// messages ("plan" for a RunRequest). `pools` may be null: then offload
// nodes and blocking handlers are refused. `lazies` may be null: then lazy
// nodes are refused. `secrets` may be null: then $secret objects are
// refused; else each must name a secret it has, and the plan reads them
// from it when its calls start (it must outlive the plan).
absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    std::unique_ptr<const weft::v1::PlanNode> plan, absl::string_view path,
    const handlers::HandlerRegistry& registry, const Limits& limits,
    const PoolSet* pools = nullptr, LazyResolver* lazies = nullptr,
    const Secrets* secrets = nullptr);

// The same for a plan whose memory `owner` keeps alive (e.g. the arena it
// was parsed into, or the request holding it); the result keeps `owner`.
// Null `plan`: a request without one ("PATH: missing").
absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    const weft::v1::PlanNode* plan, std::shared_ptr<const void> owner,
    absl::string_view path, const handlers::HandlerRegistry& registry,
    const Limits& limits, const PoolSet* pools = nullptr,
    LazyResolver* lazies = nullptr, const Secrets* secrets = nullptr);

// Whether `name` is a well-formed "lazyValues/{id}": an id of 1 to 63
// characters of a-z, 0-9, '_' and '-', starting with a letter.
bool IsLazyValueName(absl::string_view name);

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_COMPILER_H_
