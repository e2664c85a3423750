#include "server/plan/compiler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/proto_time.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"

namespace weft::plan {

using weft::v1::PlanNode;

namespace {

// Counts the nodes of `node`'s tree, stopping once past `limit` (so a huge
// plan costs no more than the limit).
int CountNodes(const PlanNode& node, int limit) {
  int count = 1;
  auto add = [&](const google::protobuf::RepeatedPtrField<PlanNode>& children) {
    for (const PlanNode& c : children) {
      if (count > limit) return;
      count += CountNodes(c, limit - count);
    }
  };
  switch (node.kind_case()) {
    case PlanNode::kParallel:
      add(node.parallel().children());
      break;
    case PlanNode::kRace:
      add(node.race().children());
      break;
    case PlanNode::kSequence:
      add(node.sequence().children());
      break;
    case PlanNode::kOffload:
      if (node.offload().has_child())
        count += CountNodes(node.offload().child(), limit);
      break;
    case PlanNode::kMap:
      if (node.map().has_child())
        count += CountNodes(node.map().child(), limit);
      break;
    default:
      break;
  }
  return count;
}

// Levels of lists and objects in `value` (handlers::Depth), or -1 when it
// holds a number JSON cannot carry (NaN, an infinity): one walk for both.
int FiniteDepth(const google::protobuf::Value& value) {
  int deepest = 0;
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return std::isfinite(value.number_value()) ? 0 : -1;
    case google::protobuf::Value::kStructValue:
      for (const auto& [key, v] : value.struct_value().fields()) {
        const int d = FiniteDepth(v);
        if (d < 0) return -1;
        deepest = std::max(deepest, d);
      }
      return deepest + 1;
    case google::protobuf::Value::kListValue:
      for (const auto& v : value.list_value().values()) {
        const int d = FiniteDepth(v);
        if (d < 0) return -1;
        deepest = std::max(deepest, d);
      }
      return deepest + 1;
    default:
      return 0;
  }
}

// google.protobuf.Duration's largest value.
constexpr int kMaxAttempts = 100;

// INVALID_ARGUMENT "<path>: <what>", with a BadRequest field violation for
// `path` and ErrorInfo `reason`.
absl::Status Error(absl::string_view path, absl::string_view what,
                   absl::string_view reason = common::kInvalidField) {
  return common::FieldError(path, what, reason);
}

// A handler's refusal of its args ("args.url: ..."), at the call's `path`.
absl::Status HandlerError(absl::string_view path, const absl::Status& s) {
  const absl::string_view message = s.message();
  const size_t colon = message.find(": ");
  absl::Status out =
      absl::InvalidArgumentError(absl::StrCat(path, ".", message));
  if (colon == absl::string_view::npos) {
    out = common::WithFieldViolation(std::move(out), path, message);
  } else {
    out = common::WithFieldViolation(
        std::move(out), absl::StrCat(path, ".", message.substr(0, colon)),
        message.substr(colon + 2));
  }
  std::string reason = common::Reason(s);
  if (reason == common::CodeName(s.code())) {
    reason = std::string(common::kInvalidField);
  }
  return common::WithReason(std::move(out), reason);
}

// Converts a Duration field, checking that it is valid and not negative
// (and positive when `positive`).
absl::StatusOr<absl::Duration> DurationField(
    const google::protobuf::Duration& d, absl::string_view path,
    bool positive) {
  return common::CheckedDuration(
      d, path, positive ? absl::Nanoseconds(1) : absl::ZeroDuration());
}

}  // namespace

int MessageNesting(const Limits& limits) {
  return 2 * limits.max_plan_depth + 3 * limits.max_value_depth + 5;
}

absl::Status CheckLimits(const Limits& limits) {
  if (MessageNesting(limits) <= kMaxMessageNesting) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--max_plan_depth ", limits.max_plan_depth, " with --max_value_depth ",
      limits.max_value_depth, " would let weftd's messages nest ",
      MessageNesting(limits),
      " protobuf message levels (2 per plan level, 3 per value level, and 5), "
      "more than the ",
      kMaxMessageNesting,
      " weftd keeps to so that every client can parse them; lower one "
      "(2 * max_plan_depth + 3 * max_value_depth must be at most ",
      kMaxMessageNesting - 5, ")"));
}

std::string ValueDepthRoom(int allowed, int max_value_depth) {
  if (allowed >= max_value_depth) {
    return absl::StrCat("values nest at most ", max_value_depth,
                        " levels of lists and objects (--max_value_depth)");
  }
  const int taken = max_value_depth - allowed;
  return absl::StrCat(
      "here values may nest at most ", std::max(allowed, 0),
      " levels of lists and objects: --max_value_depth is ", max_value_depth,
      " and the enclosing nodes' values take ", taken,
      " (a parallel or a sequence one level, a JOIN_ALL_SETTLED parallel two)");
}

// A lazy node's call: resolves its lazy value.
class LazyCall : public handlers::Call {
 public:
  LazyCall(LazyResolver* resolver, std::string name)
      : resolver_(resolver), name_(std::move(name)) {}
  void Start(const handlers::CallContext& ctx,
             handlers::CallDone done) const override {
    resolver_->Resolve(name_, ctx.token, std::move(done));
  }

 private:
  LazyResolver* const resolver_;
  const std::string name_;
};

bool IsLazyValueName(absl::string_view name) {
  constexpr absl::string_view kPrefix = "lazyValues/";
  if (!absl::StartsWith(name, kPrefix)) return false;
  const absl::string_view id = name.substr(kPrefix.size());
  if (id.empty() || id.size() > 63 || !absl::ascii_islower(id[0])) {
    return false;
  }
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

class Compiler {
 public:
  Compiler(const handlers::HandlerRegistry& registry, const Limits& limits,
           const PoolSet* pools, LazyResolver* lazies, const Secrets* secrets)
      : registry_(registry),
        limits_(limits),
        pools_(pools),
        lazies_(lazies),
        secrets_(secrets) {}

  absl::StatusOr<std::unique_ptr<const CompiledPlan>> Run(
      const PlanNode& plan, std::shared_ptr<const void> owner,
      absl::string_view path) {
    auto compiled = std::unique_ptr<CompiledPlan>(new CompiledPlan());
    plan_ = compiled.get();
    plan_->nodes_.reserve(std::min(CountNodes(plan, limits_.max_plan_nodes + 1),
                                   limits_.max_plan_nodes + 1));
    plan_->max_value_depth_ = limits_.max_value_depth;
    plan_->limits_ = limits_;
    plan_->secrets_ = secrets_;
    root_path_ = std::string(path);
    if (absl::Status s = CompileNode(plan, std::string(path), 1, nullptr,
                                     limits_.max_value_depth);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = BindReferences(); !s.ok()) return s;
    compiled->source_ = std::move(owner);
    return std::unique_ptr<const CompiledPlan>(std::move(compiled));
  }

 private:
  // `pool`: the pool of the nearest enclosing offload, or nullptr.
  // `room`: the levels of lists and objects the node's value may have.
  absl::Status CompileNode(const PlanNode& node, std::string path, int depth,
                           engine::ThreadPool* pool, int room) {
    if (depth > limits_.max_plan_depth) {
      return common::WithLimit(
          Error(path, absl::StrCat("the plan is nested deeper than ",
                                   limits_.max_plan_depth,
                                   " levels, the limit (--max_plan_depth)")),
          common::kPlanTooDeep, "--max_plan_depth", limits_.max_plan_depth);
    }
    if (static_cast<int>(plan_->nodes_.size()) >= limits_.max_plan_nodes) {
      return common::WithLimit(
          Error(path,
                absl::StrCat("the plan has more than ", limits_.max_plan_nodes,
                             " nodes, the limit (--max_plan_nodes)")),
          common::kPlanTooLarge, "--max_plan_nodes", limits_.max_plan_nodes);
    }
    const int32_t index = static_cast<int32_t>(plan_->nodes_.size());
    plan_->nodes_.emplace_back();
    plan_->nodes_[index].source = &node;
    plan_->nodes_[index].position = position_;
    plan_->nodes_[index].parent = parent_;
    plan_->nodes_[index].max_value_depth = room;
    position_ = 0;

    if (node.id().size() > 128) {
      return Error(absl::StrCat(path, ".id"), "longer than 128 characters");
    }
    if (node.has_timeout()) {
      absl::StatusOr<absl::Duration> t =
          DurationField(node.timeout(), absl::StrCat(path, ".timeout"), true);
      if (!t.ok()) return t.status();
      plan_->nodes_[index].timeout = *t;
    }
    if (node.has_deadline()) {
      absl::StatusOr<absl::Duration> d =
          DurationField(node.deadline(), absl::StrCat(path, ".deadline"), true);
      if (!d.ok()) return d.status();
      plan_->nodes_[index].deadline = *d;
    }
    if (node.has_retry()) {
      absl::StatusOr<CompiledRetry> retry =
          CompileRetry(node.retry(), absl::StrCat(path, ".retry"));
      if (!retry.ok()) return retry.status();
      plan_->nodes_[index].retry =
          std::make_unique<const CompiledRetry>(*std::move(retry));
    }

    absl::Status s;
    switch (node.kind_case()) {
      case PlanNode::kCall:
        s = CompileCall(node.call(), absl::StrCat(path, ".call"), index, pool);
        break;
      case PlanNode::kParallel:
        s = CompileParallel(node.parallel(), absl::StrCat(path, ".parallel"),
                            index, depth, pool, room);
        break;
      case PlanNode::kRace:
        s = CompileRace(node.race(), absl::StrCat(path, ".race"), index, depth,
                        pool, room);
        break;
      case PlanNode::kOffload:
        s = CompileOffload(node.offload(), absl::StrCat(path, ".offload"),
                           index, depth, room);
        break;
      case PlanNode::kLazy:
        s = CompileLazy(node.lazy(), absl::StrCat(path, ".lazy"), index);
        break;
      case PlanNode::kMap:
        s = CompileMap(node.map(), absl::StrCat(path, ".map"), index, depth,
                       pool, room);
        break;
      case PlanNode::kSequence:
        plan_->nodes_[index].kind = NodeKind::kSequence;
        s = CheckComposite(absl::StrCat(path, ".sequence"), "a sequence", room,
                           1);
        if (s.ok()) {
          s = CompileChildren(node.sequence().children(),
                              absl::StrCat(path, ".sequence"), "a sequence",
                              index, depth, pool, room - 1);
        }
        break;
      case PlanNode::KIND_NOT_SET:
        s = Error(path,
                  "the node has no kind; set one of call, parallel, race, "
                  "offload, sequence, lazy, map");
        break;
    }
    if (!s.ok()) return s;
    plan_->nodes_[index].subtree_size =
        static_cast<int32_t>(plan_->nodes_.size()) - index;
    return absl::OkStatus();
  }

  absl::StatusOr<CompiledRetry> CompileRetry(const weft::v1::RetryPolicy& r,
                                             const std::string& path) {
    CompiledRetry out;
    if (r.max_attempts() < 1 || r.max_attempts() > kMaxAttempts) {
      return Error(absl::StrCat(path, ".max_attempts"),
                   absl::StrCat("must be from 1 to ", kMaxAttempts, ", got ",
                                r.max_attempts()));
    }
    out.policy.max_attempts = r.max_attempts();
    if (r.has_initial_backoff()) {
      auto d = DurationField(r.initial_backoff(),
                             absl::StrCat(path, ".initial_backoff"), false);
      if (!d.ok()) return d.status();
      out.policy.initial_backoff = *d;
    }
    if (r.has_max_backoff()) {
      auto d = DurationField(r.max_backoff(),
                             absl::StrCat(path, ".max_backoff"), false);
      if (!d.ok()) return d.status();
      out.policy.max_backoff = *d;
    }
    if (out.policy.max_backoff < out.policy.initial_backoff) {
      return Error(
          absl::StrCat(path, ".max_backoff"),
          absl::StrCat("must not be shorter than initial_backoff (",
                       common::FormatJsonDuration(out.policy.initial_backoff),
                       ")"));
    }
    if (r.multiplier() != 0) {
      if (!(r.multiplier() >= 1 && r.multiplier() <= 100)) {
        return Error(absl::StrCat(path, ".multiplier"),
                     absl::StrCat("must be from 1 to 100, got ",
                                  common::FormatNumber(r.multiplier())));
      }
      out.policy.multiplier = r.multiplier();
    }
    if (!(r.jitter() >= 0 && r.jitter() <= 1)) {
      return Error(absl::StrCat(path, ".jitter"),
                   absl::StrCat("must be from 0 to 1, got ",
                                common::FormatNumber(r.jitter())));
    }
    if (r.jitter() != 0) out.policy.jitter = r.jitter();
    for (int i = 0; i < r.retryable_codes_size(); ++i) {
      absl::StatusOr<absl::StatusCode> code =
          common::ParseCodeName(r.retryable_codes(i));
      const std::string code_path =
          absl::StrCat(path, ".retryable_codes[", i, "]");
      if (!code.ok()) return Error(code_path, code.status().message());
      if (*code == absl::StatusCode::kOk) {
        return Error(code_path, "OK is not a failure to retry");
      }
      out.retryable_codes.insert(*code);
    }
    return out;
  }

  // A composite whose value adds `levels` around its children's, where
  // values may have `room` levels.
  absl::Status CheckComposite(const std::string& path, absl::string_view what,
                              int room, int levels) {
    if (room >= levels) return absl::OkStatus();
    return common::WithLimit(
        Error(path,
              absl::StrCat("the value of ", what, " nests ", levels,
                           levels == 1 ? " level" : " levels",
                           " of lists and objects at least, deeper than it "
                           "may: ",
                           ValueDepthRoom(room, limits_.max_value_depth))),
        common::kValueTooDeep, "--max_value_depth", limits_.max_value_depth);
  }

  // Every argument's value within --max_value_depth, and the one a call
  // returns within `room`; no NaN or infinity, which JSON cannot carry.
  absl::Status CheckArgDepths(const handlers::HandlerInfo& info,
                              const google::protobuf::Struct& args,
                              const std::string& path, int room) {
    for (const auto& [name, value] : args.fields()) {
      const int depth = FiniteDepth(value);
      if (depth < 0) {
        return Error(absl::StrCat(path, ".", handlers::ArgPath(name)),
                     "holds NaN or an infinity, which JSON cannot carry; "
                     "use a string or null");
      }
      const bool returned = name == info.result_arg;
      if (depth <= limits_.max_value_depth && (!returned || depth <= room)) {
        continue;
      }
      return common::WithLimit(
          Error(absl::StrCat(path, ".", handlers::ArgPath(name)),
                absl::StrCat(
                    "nests ", depth, " levels of lists and objects",
                    returned && depth <= limits_.max_value_depth
                        ? ", and the call returns it: "
                        : "; ",
                    ValueDepthRoom(returned ? room : limits_.max_value_depth,
                                   limits_.max_value_depth))),
          common::kValueTooDeep, "--max_value_depth", limits_.max_value_depth);
    }
    return absl::OkStatus();
  }

  absl::Status CompileCall(const weft::v1::CallNode& call,
                           const std::string& path, int32_t index,
                           engine::ThreadPool* pool) {
    plan_->nodes_[index].kind = NodeKind::kCall;
    CountLeaf();
    if (call.handler().empty()) {
      return Error(absl::StrCat(path, ".handler"),
                   absl::StrCat("missing; name one of ", registry_.Names()));
    }
    const handlers::Handler* handler = registry_.Find(call.handler());
    if (handler == nullptr) {
      return common::WithReason(
          Error(absl::StrCat(path, ".handler"),
                absl::StrCat("unknown handler ", common::Quote(call.handler()),
                             "; known handlers: ", registry_.Names())),
          common::kUnknownHandler,
          {{"handler", common::Abbreviate(call.handler(), 128)}});
    }
    CompiledNode& out = plan_->nodes_[index];
    const google::protobuf::Struct* args = &call.args();
    const handlers::HandlerInfo* info = &handler->info();
    handlers::HandlerInfo relaxed;
    if (HasDataFlow(call.args())) {
      absl::StatusOr<ArgTemplate> t = ParseArgs(call.args(), path);
      if (!t.ok()) return t.status();
      if (t->holes.empty()) {
        // Only $literal: the args are known now.
        out.args =
            std::make_unique<google::protobuf::Struct>(std::move(t->base));
        args = out.args.get();
      } else {
        // Arguments that hold references are checked when the call starts;
        // the rest now, and every name.
        relaxed = handler->info();
        for (handlers::ArgSpec& spec : relaxed.args) {
          if (std::binary_search(t->dynamic_args.begin(), t->dynamic_args.end(),
                                 spec.name)) {
            spec.type = handlers::ArgType::kAny;
            spec.required = false;
          }
        }
        info = &relaxed;
        out.arg_template = std::make_unique<const ArgTemplate>(*std::move(t));
        args = &out.arg_template->base;
        referrers_.push_back(index);
      }
    }
    // Handler errors start with "args...": join them to the call's path.
    if (absl::Status s = handlers::CheckArgs(*info, *args); !s.ok()) {
      return HandlerError(path, s);
    }
    if (absl::Status s =
            CheckArgDepths(*info, *args, path, out.max_value_depth);
        !s.ok()) {
      return s;
    }
    std::unique_ptr<handlers::Call> prepared_call;
    if (out.arg_template == nullptr) {
      absl::StatusOr<std::unique_ptr<handlers::Call>> prepared =
          handler->Prepare(*args);
      if (!prepared.ok()) {
        return HandlerError(path, prepared.status());
      }
      prepared_call = *std::move(prepared);
    } else {
      out.handler = handler;
    }
    // A blocking handler never runs on the event loop.
    if (pool == nullptr && handler->info().blocking) {
      pool = pools_ != nullptr ? pools_->Find("default") : nullptr;
      if (pool == nullptr) {
        return Error(path,
                     absl::StrCat("handler ", common::Quote(call.handler()),
                                  " blocks and needs a thread pool, "
                                  "but none is configured (--pools)"));
      }
    }
    plan_->nodes_[index].call = std::move(prepared_call);
    plan_->nodes_[index].pool = pool;
    return absl::OkStatus();
  }

  absl::Status CompileLazy(const weft::v1::LazyNode& lazy,
                           const std::string& path, int32_t index) {
    plan_->nodes_[index].kind = NodeKind::kLazy;
    CountLeaf();
    if (!IsLazyValueName(lazy.name())) {
      return Error(absl::StrCat(path, ".name"),
                   absl::StrCat(common::Quote(lazy.name()),
                                " is not a lazy value name; lazy value "
                                "names look like lazyValues/daily_stats"));
    }
    if (lazies_ == nullptr) {
      return Error(path, "lazy values cannot be resolved here");
    }
    plan_->nodes_[index].call =
        std::make_unique<LazyCall>(lazies_, lazy.name());
    if (std::find(plan_->lazy_names_.begin(), plan_->lazy_names_.end(),
                  lazy.name()) == plan_->lazy_names_.end()) {
      plan_->lazy_names_.push_back(lazy.name());
    }
    return absl::OkStatus();
  }

  // Compiles `children` as the children of node `index`.
  absl::Status CompileChildren(
      const google::protobuf::RepeatedPtrField<PlanNode>& children,
      const std::string& path, absl::string_view what, int32_t index, int depth,
      engine::ThreadPool* pool, int room) {
    if (children.empty()) {
      return Error(absl::StrCat(path, ".children"),
                   absl::StrCat(what, " needs at least one child"));
    }
    // Ids must be unique among siblings; remember where each was first seen.
    absl::flat_hash_map<absl::string_view, int> seen;
    bool all_ids = true;
    std::vector<int32_t> indices;
    indices.reserve(children.size());
    for (int i = 0; i < children.size(); ++i) {
      const PlanNode& child = children.Get(i);
      std::string child_path = absl::StrCat(path, ".children[", i, "]");
      if (child.id().empty()) {
        all_ids = false;
      } else if (auto [it, inserted] = seen.emplace(child.id(), i); !inserted) {
        return Error(absl::StrCat(child_path, ".id"),
                     absl::StrCat("duplicate id ", common::Quote(child.id()),
                                  "; children[", it->second, "] has it too"));
      }
      indices.push_back(static_cast<int32_t>(plan_->nodes_.size()));
      position_ = i;
      parent_ = index;
      if (absl::Status s =
              CompileNode(child, std::move(child_path), depth + 1, pool, room);
          !s.ok()) {
        return s;
      }
    }
    // nodes_ may have grown: index again.
    plan_->nodes_[index].children = std::move(indices);
    plan_->nodes_[index].keyed_by_id = all_ids;
    return absl::OkStatus();
  }

  // A leaf: counted in the plan's leaves, or in the innermost enclosing
  // map's per-item leaves.
  void CountLeaf() {
    if (maps_.empty()) {
      ++plan_->leaves_;
    } else {
      ++plan_->nodes_[maps_.back()].item_leaves;
    }
  }

  // A parallel's or a map's join, checked; `children` is how many children
  // it has (-1 for a map whose items are known only when it starts).
  absl::StatusOr<engine::TaskGroupOptions> CompileJoin(
      weft::v1::Join join_field, int quorum, int max_concurrency, int children,
      const std::string& path) {
    engine::TaskGroupOptions join;
    switch (join_field) {
      case weft::v1::JOIN_UNSPECIFIED:
      case weft::v1::JOIN_ALL:
        join.join = engine::JoinPolicy::kAll;
        break;
      case weft::v1::JOIN_ALL_SETTLED:
        join.join = engine::JoinPolicy::kAllSettled;
        break;
      case weft::v1::JOIN_QUORUM:
        join.join = engine::JoinPolicy::kQuorum;
        if (quorum < 1 || (children >= 0 && quorum > children)) {
          return Error(
              absl::StrCat(path, ".quorum"),
              children >= 0
                  ? absl::StrCat("must be from 1 to the number of children (",
                                 children, "), got ", quorum)
                  : absl::StrCat("must be at least 1, got ", quorum));
        }
        join.quorum = quorum;
        break;
      default:
        return Error(absl::StrCat(path, ".join"),
                     absl::StrCat("unknown join ", join_field));
    }
    if (quorum != 0 && join.join != engine::JoinPolicy::kQuorum) {
      return Error(absl::StrCat(path, ".quorum"),
                   "only means something with join JOIN_QUORUM");
    }
    if (max_concurrency < 0) {
      return Error(absl::StrCat(path, ".max_concurrency"),
                   absl::StrCat("must not be negative, got ", max_concurrency));
    }
    join.max_concurrency = max_concurrency;
    return join;
  }

  absl::Status CompileMap(const weft::v1::MapNode& map, const std::string& path,
                          int32_t index, int depth, engine::ThreadPool* pool,
                          int room) {
    plan_->nodes_[index].kind = NodeKind::kMap;
    absl::StatusOr<engine::TaskGroupOptions> join = CompileJoin(
        map.join(), map.quorum(), map.max_concurrency(),
        map.items().has_list_value() ? map.items().list_value().values_size()
                                     : -1,
        path);
    if (!join.ok()) return join.status();
    plan_->nodes_[index].join = *join;
    if (!map.has_items()) {
      return Error(absl::StrCat(path, ".items"),
                   "missing; a map needs a list, or {\"$ref\": \"...\"} "
                   "naming one an earlier step made");
    }
    absl::StatusOr<ArgTemplate> items =
        ParseItems(map.items(), absl::StrCat(path, ".items"));
    if (!items.ok()) return items.status();
    if (!map.as().empty()) {
      if (!IsReferenceableId(map.as())) {
        return Error(absl::StrCat(path, ".as"),
                     absl::StrCat(common::Quote(map.as()),
                                  " is not a name references can use: "
                                  "[A-Za-z_][A-Za-z0-9_-]*"));
      }
      plan_->nodes_[index].item_name = map.as();
    }
    if (!items->holes.empty()) referrers_.push_back(index);
    plan_->nodes_[index].items =
        std::make_unique<const ArgTemplate>(*std::move(items));
    const bool settled = join->join == engine::JoinPolicy::kAllSettled;
    if (absl::Status s = CheckComposite(path, "a map", room, settled ? 3 : 1);
        !s.ok()) {
      return s;
    }
    if (!map.has_child()) {
      return Error(absl::StrCat(path, ".child"),
                   "missing; a map runs one child per item");
    }
    const int32_t child = static_cast<int32_t>(plan_->nodes_.size());
    plan_->nodes_[index].children = {child};
    parent_ = index;
    maps_.push_back(index);
    absl::Status s = CompileNode(map.child(), absl::StrCat(path, ".child"),
                                 depth + 1, pool, room - (settled ? 2 : 1));
    maps_.pop_back();
    return s;
  }

  absl::Status CompileParallel(const weft::v1::ParallelNode& parallel,
                               const std::string& path, int32_t index,
                               int depth, engine::ThreadPool* pool, int room) {
    plan_->nodes_[index].kind = NodeKind::kParallel;
    absl::StatusOr<engine::TaskGroupOptions> compiled =
        CompileJoin(parallel.join(), parallel.quorum(),
                    parallel.max_concurrency(), parallel.children_size(), path);
    if (!compiled.ok()) return compiled.status();
    engine::TaskGroupOptions join = *compiled;
    plan_->nodes_[index].join = join;
    // Its value is a list or an object of its children's values; with
    // JOIN_ALL_SETTLED each is {"state", "value"}, or {"state", "error":
    // {"code", "message"}}.
    const bool settled = join.join == engine::JoinPolicy::kAllSettled;
    if (absl::Status s =
            CheckComposite(path, "a parallel", room, settled ? 3 : 1);
        !s.ok()) {
      return s;
    }
    return CompileChildren(parallel.children(), path, "a parallel", index,
                           depth, pool, room - (settled ? 2 : 1));
  }

  absl::Status CompileRace(const weft::v1::RaceNode& race,
                           const std::string& path, int32_t index, int depth,
                           engine::ThreadPool* pool, int room) {
    CompiledNode& out = plan_->nodes_[index];
    out.kind = NodeKind::kRace;
    switch (race.mode()) {
      case weft::v1::RACE_MODE_UNSPECIFIED:
      case weft::v1::RACE_MODE_FIRST_SUCCESS:
        out.race_mode = engine::RaceMode::kFirstSuccess;
        break;
      case weft::v1::RACE_MODE_FIRST_COMPLETE:
        out.race_mode = engine::RaceMode::kFirstComplete;
        break;
      default:
        return Error(absl::StrCat(path, ".mode"),
                     absl::StrCat("unknown mode ", race.mode()));
    }
    if (race.has_hedge_delay()) {
      absl::StatusOr<absl::Duration> d = DurationField(
          race.hedge_delay(), absl::StrCat(path, ".hedge_delay"), false);
      if (!d.ok()) return d.status();
      out.hedge_delay = *d;
    }
    return CompileChildren(race.children(), path, "a race", index, depth, pool,
                           room);
  }

  absl::Status CompileOffload(const weft::v1::OffloadNode& offload,
                              const std::string& path, int32_t index, int depth,
                              int room) {
    plan_->nodes_[index].kind = NodeKind::kOffload;
    const std::string name =
        offload.pool().empty() ? "default" : offload.pool();
    engine::ThreadPool* pool = pools_ != nullptr ? pools_->Find(name) : nullptr;
    if (pool == nullptr) {
      return common::WithReason(
          Error(absl::StrCat(path, ".pool"),
                absl::StrCat("unknown pool ", common::Quote(name), "; pools: ",
                             pools_ != nullptr ? pools_->Names() : "none",
                             " (--pools)")),
          common::kUnknownPool, {{"pool", common::Abbreviate(name, 128)}});
    }
    if (!offload.has_child()) {
      return Error(absl::StrCat(path, ".child"),
                   "missing; an offload runs one child");
    }
    const int32_t child = static_cast<int32_t>(plan_->nodes_.size());
    plan_->nodes_[index].children = {child};
    parent_ = index;
    if (absl::Status s =
            CompileNode(offload.child(), absl::StrCat(path, ".child"),
                        depth + 1, pool, room);
        !s.ok()) {
      return s;
    }
    plan_->nodes_[child].parent_is_offload = true;
    return absl::OkStatus();
  }

  // The path of node `index` in messages: "plan.sequence.children[1]".
  std::string NodePath(int32_t index) const {
    const CompiledNode& n = plan_->nodes_[index];
    if (n.parent < 0) return root_path_;
    const CompiledNode& p = plan_->nodes_[n.parent];
    switch (p.kind) {
      case NodeKind::kOffload:
        return absl::StrCat(NodePath(n.parent), ".offload.child");
      case NodeKind::kMap:
        return absl::StrCat(NodePath(n.parent), ".map.child");
      case NodeKind::kParallel:
        return absl::StrCat(NodePath(n.parent), ".parallel.children[",
                            n.position, "]");
      case NodeKind::kRace:
        return absl::StrCat(NodePath(n.parent), ".race.children[", n.position,
                            "]");
      default:
        return absl::StrCat(NodePath(n.parent), ".sequence.children[",
                            n.position, "]");
    }
  }

  // The child of `ancestor` on the way down to `index`.
  int32_t ChildToward(int32_t ancestor, int32_t index) const {
    while (plan_->nodes_[index].parent != ancestor) {
      index = plan_->nodes_[index].parent;
    }
    return index;
  }

  bool IsAncestor(int32_t ancestor, int32_t index) const {
    return ancestor <= index &&
           index < ancestor + plan_->nodes_[ancestor].subtree_size;
  }

  // The deepest node enclosing both `a` and `b` (or one of them).
  int32_t CommonAncestor(int32_t a, int32_t b) const {
    while (!IsAncestor(a, b)) a = plan_->nodes_[a].parent;
    return a;
  }

  // Empty when node `target` is certain to have finished before node
  // `reader` starts: it is in an earlier step of a sequence enclosing
  // `reader`. Otherwise why not.
  std::string WhyNotVisible(int32_t target, int32_t reader) const {
    if (target == reader) {
      return "is this call itself; a call reads values made before it starts";
    }
    if (IsAncestor(reader, target)) {
      return absl::StrCat("is inside this map's own child (", NodePath(target),
                          "), which runs only once the items are known");
    }
    if (IsAncestor(target, reader)) {
      return absl::StrCat("encloses this call (it is ", NodePath(target),
                          "), so it finishes only after this call does");
    }
    const int32_t common = CommonAncestor(target, reader);
    const CompiledNode& c = plan_->nodes_[common];
    const int32_t t = ChildToward(common, target);
    const int32_t r = ChildToward(common, reader);
    const std::string at = NodePath(common);
    for (int32_t a = plan_->nodes_[target].parent; a != common;
         a = plan_->nodes_[a].parent) {
      if (plan_->nodes_[a].kind == NodeKind::kMap) {
        return absl::StrCat("is inside the child of the map ", NodePath(a),
                            ", which runs once per item; read the map's "
                            "value (the list of its children's values) "
                            "instead");
      }
    }
    switch (c.kind) {
      case NodeKind::kSequence:
        if (plan_->nodes_[t].position < plan_->nodes_[r].position) return "";
        return absl::StrCat("is in step ", plan_->nodes_[t].position,
                            " of the sequence at ", at,
                            ", which runs after this call's step ",
                            plan_->nodes_[r].position);
      case NodeKind::kRace:
        return absl::StrCat("is in another branch of the race at ", at,
                            ", so it may still be running (or never start) "
                            "when this call starts");
      default:
        return absl::StrCat("runs beside this call in the parallel at ", at,
                            ", so it may still be running when this call "
                            "starts");
    }
  }

  // The ids a reference from node `reader` can name, for messages.
  std::string IdsInScope(int32_t reader) const {
    std::vector<absl::string_view> ids;
    for (const auto& [id, nodes] : ids_) {
      for (int32_t n : nodes) {
        if (WhyNotVisible(n, reader).empty()) {
          ids.push_back(id);
          break;
        }
      }
    }
    if (ids.empty()) return "none";
    std::sort(ids.begin(), ids.end());
    constexpr size_t kShown = 10;
    std::vector<std::string> shown;
    for (size_t i = 0; i < ids.size() && i < kShown; ++i) {
      shown.push_back(common::Quote(ids[i]));
    }
    return absl::StrCat(absl::StrJoin(shown, ", "),
                        ids.size() > kShown ? ", ..." : "");
  }

  // Binds every reference to the node it names, checking that the node is
  // certain to have finished when the reading call starts.
  absl::Status BindReferences() {
    if (referrers_.empty()) return absl::OkStatus();
    for (int32_t i = 0; i < static_cast<int32_t>(plan_->nodes_.size()); ++i) {
      const std::string& id = plan_->nodes_[i].source->id();
      if (IsReferenceableId(id)) ids_[id].push_back(i);
    }
    constexpr absl::string_view kRule =
        "a call can read the values of the earlier steps of a sequence "
        "around it, and of the nodes inside those steps";
    for (int32_t reader : referrers_) {
      CompiledNode& r = plan_->nodes_[reader];
      std::unique_ptr<const ArgTemplate>& bound =
          r.kind == NodeKind::kMap ? r.items : r.arg_template;
      // Bound in a copy: the template is const once compiled.
      auto t = std::make_unique<ArgTemplate>(*bound);
      for (Hole& hole : t->holes) {
        for (Ref& ref : hole.refs) {
          if (ref.source == Ref::Source::kSecret) {
            plan_->uses_secrets_ = true;
            if (absl::Status s = CheckSecret(ref); !s.ok()) return s;
            continue;
          }
          // A map's item: "$item", "$index", or a name a map's `as` gave.
          int32_t map = -1;
          for (int32_t a = plan_->nodes_[reader].parent; a >= 0;
               a = plan_->nodes_[a].parent) {
            const CompiledNode& m = plan_->nodes_[a];
            if (m.kind != NodeKind::kMap) continue;
            if (ref.id == kItemId || ref.id == kIndexId ||
                ref.id == m.item_name) {
              map = a;
              break;
            }
          }
          if (ref.id == kItemId || ref.id == kIndexId) {
            if (map < 0) {
              return common::FieldError(
                  ref.where,
                  absl::StrCat(common::Quote(ref.text), ": ", ref.id,
                               " names the item a map's child runs for, and "
                               "this is not inside a map's child"),
                  common::kBadReference);
            }
            ref.source =
                ref.id == kItemId ? Ref::Source::kItem : Ref::Source::kIndex;
            ref.node = map;
            continue;
          }
          auto it = ids_.find(ref.id);
          if (map >= 0) {
            if (it != ids_.end()) {
              for (int32_t n : it->second) {
                if (!WhyNotVisible(n, reader).empty()) continue;
                return common::FieldError(
                    ref.where,
                    absl::StrCat(common::Quote(ref.text), ": ",
                                 common::Quote(ref.id),
                                 " is ambiguous here: the map ", NodePath(map),
                                 " names its item so, and ", NodePath(n),
                                 " has it as its id; rename one"),
                    common::kBadReference);
              }
            }
            ref.source = Ref::Source::kItem;
            ref.node = map;
            continue;
          }
          if (it == ids_.end()) {
            return common::FieldError(
                ref.where,
                absl::StrCat(common::Quote(ref.text), ": no node has id ",
                             common::Quote(ref.id),
                             "; ids in scope here: ", IdsInScope(reader)),
                common::kBadReference);
          }
          std::vector<int32_t> visible;
          for (int32_t n : it->second) {
            if (WhyNotVisible(n, reader).empty()) visible.push_back(n);
          }
          if (visible.empty()) {
            const int32_t n = it->second.front();
            return common::FieldError(
                ref.where,
                absl::StrCat(common::Quote(ref.text), ": node ",
                             common::Quote(ref.id), " ",
                             WhyNotVisible(n, reader), "; ", kRule),
                common::kBadReference);
          }
          if (visible.size() > 1) {
            return common::FieldError(
                ref.where,
                absl::StrCat(common::Quote(ref.text), ": id ",
                             common::Quote(ref.id),
                             " is ambiguous here: ", NodePath(visible[0]),
                             " and ", NodePath(visible[1]),
                             " both have it; give them different ids"),
                common::kBadReference);
          }
          ref.node = visible.front();
          plan_->nodes_[ref.node].referenced = true;
        }
      }
      bound = std::move(t);
    }
    return absl::OkStatus();
  }

  // INVALID_ARGUMENT (UNKNOWN_SECRET) unless the secrets in force have it.
  absl::Status CheckSecret(const Ref& ref) const {
    std::shared_ptr<const SecretTable> table =
        secrets_ == nullptr ? nullptr : secrets_->Get();
    if (table == nullptr) {
      return common::FieldError(
          ref.where,
          absl::StrCat(common::Quote(ref.id),
                       ": this weftd has no secrets (--secrets is not set)"),
          common::kUnknownSecret);
    }
    if (table->Find(ref.id) == nullptr) {
      return common::FieldError(
          ref.where,
          absl::StrCat(common::Quote(ref.id),
                       " is not a secret this weftd knows (--secrets)"),
          common::kUnknownSecret);
    }
    return absl::OkStatus();
  }

  const handlers::HandlerRegistry& registry_;
  const Limits& limits_;
  const PoolSet* const pools_;
  LazyResolver* const lazies_;
  const Secrets* const secrets_;
  CompiledPlan* plan_ = nullptr;
  // The position of the next node among its siblings, and its parent.
  int position_ = 0;
  int32_t parent_ = -1;
  std::string root_path_;
  // Calls whose args hold references, bound once every node is compiled.
  std::vector<int32_t> referrers_;
  // The maps around the node being compiled, innermost last.
  std::vector<int32_t> maps_;
  // Nodes by id, for ids references can name (filled when there are some).
  absl::flat_hash_map<std::string, std::vector<int32_t>> ids_;
};

absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    const PlanNode* plan, std::shared_ptr<const void> owner,
    absl::string_view path, const handlers::HandlerRegistry& registry,
    const Limits& limits, const PoolSet* pools, LazyResolver* lazies,
    const Secrets* secrets) {
  if (plan == nullptr) {
    return Error(path, "missing; a request needs a plan");
  }
  return Compiler(registry, limits, pools, lazies, secrets)
      .Run(*plan, std::move(owner), path);
}

absl::StatusOr<std::unique_ptr<const CompiledPlan>> Compile(
    std::unique_ptr<const PlanNode> plan, absl::string_view path,
    const handlers::HandlerRegistry& registry, const Limits& limits,
    const PoolSet* pools, LazyResolver* lazies, const Secrets* secrets) {
  const PlanNode* root = plan.get();
  return Compile(root, std::shared_ptr<const PlanNode>(std::move(plan)), path,
                 registry, limits, pools, lazies, secrets);
}

}  // namespace weft::plan
