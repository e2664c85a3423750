#include "server/plan/compiler.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/handlers/duration.h"

namespace weft::plan {

using weft::v1::PlanNode;

// google.protobuf.Duration's largest value.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;

class Compiler {
 public:
  Compiler(const handlers::HandlerRegistry& registry, const Limits& limits)
      : registry_(registry), limits_(limits) {}

  absl::StatusOr<std::unique_ptr<const CompiledPlan>> Run(
      std::unique_ptr<const PlanNode> plan, absl::string_view path) {
    auto compiled = std::unique_ptr<CompiledPlan>(new CompiledPlan());
    plan_ = compiled.get();
    if (absl::Status s = CompileNode(*plan, std::string(path), 1); !s.ok()) {
      return s;
    }
    compiled->source_ = std::move(plan);
    return std::unique_ptr<const CompiledPlan>(std::move(compiled));
  }

 private:
  static absl::Status Error(absl::string_view path, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  }

  // Compiles `node` at `path` and returns its index.
  absl::Status CompileNode(const PlanNode& node, std::string path, int depth) {
    if (depth > limits_.max_plan_depth) {
      return Error(path, absl::StrCat("the plan is nested deeper than ",
                                      limits_.max_plan_depth,
                                      " levels, the limit (--max_plan_depth)"));
    }
    if (static_cast<int>(plan_->nodes_.size()) >= limits_.max_plan_nodes) {
      return Error(
          path, absl::StrCat("the plan has more than ", limits_.max_plan_nodes,
                             " nodes, the limit (--max_plan_nodes)"));
    }
    const int32_t index = static_cast<int32_t>(plan_->nodes_.size());
    plan_->nodes_.emplace_back();
    plan_->nodes_[index].source = &node;

    if (node.id().size() > 128) {
      return Error(absl::StrCat(path, ".id"), "longer than 128 characters");
    }
    if (node.has_timeout()) {
      const google::protobuf::Duration& t = node.timeout();
      const absl::Duration d =
          absl::Seconds(t.seconds()) + absl::Nanoseconds(t.nanos());
      if (t.seconds() > kMaxDurationSeconds || t.nanos() < 0 ||
          t.nanos() > 999'999'999 || t.seconds() < 0 ||
          d == absl::ZeroDuration()) {
        return Error(absl::StrCat(path, ".timeout"),
                     absl::StrCat("must be a positive duration, got ",
                                  handlers::FormatJsonDuration(d)));
      }
      plan_->nodes_[index].timeout = d;
    }

    switch (node.kind_case()) {
      case PlanNode::kCall:
        return CompileCall(node.call(), absl::StrCat(path, ".call"), index);
      case PlanNode::kParallel:
        return CompileParallel(node.parallel(), absl::StrCat(path, ".parallel"),
                               index, depth);
      case PlanNode::KIND_NOT_SET:
        break;
    }
    return Error(path, "the node has no kind; set one of call, parallel");
  }

  absl::Status CompileCall(const weft::v1::CallNode& call,
                           const std::string& path, int32_t index) {
    CompiledNode& out = plan_->nodes_[index];
    out.kind = NodeKind::kCall;
    ++plan_->leaves_;
    if (call.handler().empty()) {
      return Error(absl::StrCat(path, ".handler"),
                   absl::StrCat("missing; name one of ", registry_.Names()));
    }
    const handlers::Handler* handler = registry_.Find(call.handler());
    if (handler == nullptr) {
      return Error(absl::StrCat(path, ".handler"),
                   absl::StrCat("unknown handler \"", call.handler(),
                                "\"; known handlers: ", registry_.Names()));
    }
    // Handler errors start with "args...": join them to the call's path.
    if (absl::Status s = handlers::CheckArgs(handler->info(), call.args());
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".", s.message()));
    }
    absl::StatusOr<std::unique_ptr<handlers::Call>> prepared =
        handler->Prepare(call.args());
    if (!prepared.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".", prepared.status().message()));
    }
    out.call = *std::move(prepared);
    return absl::OkStatus();
  }

  absl::Status CompileParallel(const weft::v1::ParallelNode& parallel,
                               const std::string& path, int32_t index,
                               int depth) {
    plan_->nodes_[index].kind = NodeKind::kParallel;
    if (parallel.children().empty()) {
      return Error(absl::StrCat(path, ".children"),
                   "a parallel needs at least one child");
    }
    // Ids must be unique among siblings; remember where each was first seen.
    absl::flat_hash_map<absl::string_view, int> seen;
    bool all_ids = true;
    std::vector<int32_t> children;
    children.reserve(parallel.children_size());
    for (int i = 0; i < parallel.children_size(); ++i) {
      const PlanNode& child = parallel.children(i);
      std::string child_path = absl::StrCat(path, ".children[", i, "]");
      if (child.id().empty()) {
        all_ids = false;
      } else if (auto [it, inserted] = seen.emplace(child.id(), i); !inserted) {
        return Error(absl::StrCat(child_path, ".id"),
                     absl::StrCat("duplicate id \"", child.id(),
                                  "\"; children[", it->second, "] has it too"));
      }
      children.push_back(static_cast<int32_t>(plan_->nodes_.size()));
      if (absl::Status s = CompileNode(child, std::move(child_path), depth + 1);
          !s.ok()) {
        return s;
      }
    }
    // nodes_ may have grown: index again.
    plan_->nodes_[index].children = std::move(children);
    plan_->nodes_[index].keyed_by_id = all_ids;
    return absl::OkStatus();
  }

  const handlers::HandlerRegistry& registry_;
  const Limits& limits_;
  CompiledPlan* plan_ = nullptr;
};

absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    std::unique_ptr<const PlanNode> plan, absl::string_view path,
    const handlers::HandlerRegistry& registry, const Limits& limits) {
  if (plan == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": missing; a request needs a plan"));
  }
  return Compiler(registry, limits).Run(std::move(plan), path);
}

}  // namespace weft::plan
