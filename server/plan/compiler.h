// The plan compiler: checks a plan against the limits and the handler
// registry, and turns it into the form the interpreter runs.
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
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/handlers/handler.h"
#include "server/handlers/registry.h"
#include "weft/v1/plan.pb.h"

namespace weft::plan {

// Limits on what a plan may be; each is a weftd flag of the same name.
struct Limits {
  int max_plan_nodes = 10'000;
  int max_plan_depth = 32;
};

enum class NodeKind { kCall, kParallel };

struct CompiledNode {
  NodeKind kind = NodeKind::kCall;
  // The node as the client wrote it; owned by the CompiledPlan.
  const weft::v1::PlanNode* source = nullptr;
  // InfiniteDuration() when the node has no timeout.
  absl::Duration timeout = absl::InfiniteDuration();
  // Indices into CompiledPlan::nodes(), in plan order.
  std::vector<int32_t> children;
  // For a parallel: whether its value is an object keyed by child id.
  bool keyed_by_id = false;
  // For a call.
  std::unique_ptr<handlers::Call> call;
};

class CompiledPlan {
 public:
  // Nodes in pre-order; nodes()[0] is the root.
  const std::vector<CompiledNode>& nodes() const { return nodes_; }
  const CompiledNode& root() const { return nodes_.front(); }
  // How many leaves (call nodes) the plan has.
  int leaves() const { return leaves_; }

 private:
  friend class Compiler;
  std::unique_ptr<const weft::v1::PlanNode> source_;
  std::vector<CompiledNode> nodes_;
  int leaves_ = 0;
};

// Compiles `plan`, which the result keeps. `path` names the plan in error
// messages ("plan" for a RunRequest).
absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    std::unique_ptr<const weft::v1::PlanNode> plan, absl::string_view path,
    const handlers::HandlerRegistry& registry, const Limits& limits);

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_COMPILER_H_
