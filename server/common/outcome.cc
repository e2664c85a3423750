#include "server/common/outcome.h"

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/errors.h"

namespace weft::common {
namespace {

using google::protobuf::Value;
using weft::v1::NodeOutcome;

bool Succeeded(const NodeOutcome& node) {
  return node.state() == weft::v1::NODE_STATE_SUCCEEDED;
}

Value Null() {
  Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

Value SettledEntry(const NodeOutcome& child) {
  Value entry;
  auto& fields = *entry.mutable_struct_value()->mutable_fields();
  fields["state"].set_string_value(weft::v1::NodeState_Name(child.state()));
  if (Succeeded(child)) {
    fields["value"] = AssembleValue(child);
  } else {
    auto& error = *fields["error"].mutable_struct_value()->mutable_fields();
    error["code"].set_string_value(child.error().code());
    error["message"].set_string_value(child.error().message());
  }
  return entry;
}

// A parallel's value; a map's (`keyed_allowed` false) is always a list.
Value ParallelValue(const NodeOutcome& node, bool keyed_allowed = true) {
  bool keyed = keyed_allowed;
  for (const NodeOutcome& c : node.children()) keyed = keyed && !c.id().empty();
  const bool settled = node.join() == weft::v1::JOIN_ALL_SETTLED;
  Value out;
  auto* fields = keyed ? out.mutable_struct_value()->mutable_fields() : nullptr;
  auto* list = keyed ? nullptr : out.mutable_list_value();
  for (const NodeOutcome& child : node.children()) {
    Value v;
    if (settled) {
      v = SettledEntry(child);
    } else if (Succeeded(child)) {
      v = AssembleValue(child);
    } else {
      continue;  // JOIN_QUORUM keeps the children that succeeded.
    }
    if (fields != nullptr) {
      (*fields)[child.id()] = std::move(v);
    } else {
      *list->add_values() = std::move(v);
    }
  }
  return out;
}

}  // namespace

std::string ChildName(absl::string_view id, int index) {
  return id.empty() ? absl::StrCat("children[", index, "]") : std::string(id);
}

std::string ChildLabel(absl::string_view id, int index) {
  return id.empty() ? absl::StrCat("children[", index, "]")
                    : absl::StrCat("children[", index, "] \"", id, "\"");
}

Value AssembleValue(const NodeOutcome& node) {
  if (!Succeeded(node)) return Null();
  if (node.has_value()) return node.value();
  switch (node.kind()) {
    case weft::v1::NODE_KIND_PARALLEL:
      return ParallelValue(node);
    case weft::v1::NODE_KIND_MAP:
      return ParallelValue(node, /*keyed_allowed=*/false);
    case weft::v1::NODE_KIND_SEQUENCE: {
      Value out;
      auto* list = out.mutable_list_value();
      for (const NodeOutcome& child : node.children()) {
        *list->add_values() = AssembleValue(child);
      }
      return out;
    }
    case weft::v1::NODE_KIND_RACE:
      for (int i = 0; i < node.children_size(); ++i) {
        if (ChildName(node.children(i).id(), i) == node.winner()) {
          return AssembleValue(node.children(i));
        }
      }
      break;
    case weft::v1::NODE_KIND_OFFLOAD:
      if (node.children_size() == 1) return AssembleValue(node.children(0));
      break;
    default:
      break;
  }
  return Null();
}

NodeOutcome RootOnly(const NodeOutcome& node) {
  NodeOutcome out;
  // Everything but the children (and the value, assembled from them).
  out.set_id(node.id());
  out.set_kind(node.kind());
  out.set_state(node.state());
  if (node.has_error()) *out.mutable_error() = node.error();
  if (node.has_start_time()) *out.mutable_start_time() = node.start_time();
  if (node.has_end_time()) *out.mutable_end_time() = node.end_time();
  out.set_attempts(node.attempts());
  out.set_winner(node.winner());
  out.set_join(node.join());
  if (Succeeded(node)) *out.mutable_value() = AssembleValue(node);
  return out;
}

absl::StatusOr<const NodeOutcome*> FindNode(const NodeOutcome& root,
                                            absl::string_view path) {
  const NodeOutcome* node = &root;
  if (path.empty()) return node;
  std::string walked;
  for (absl::string_view step : absl::StrSplit(path, '/')) {
    if (step.empty()) {
      return common::FieldError(
          "node", absl::StrCat("\"", path,
                               "\" has an empty step; name nodes by id or "
                               "children[i], joined by /"));
    }
    const NodeOutcome* next = nullptr;
    absl::string_view index_text = step;
    int index = -1;
    if (absl::ConsumePrefix(&index_text, "children[") &&
        absl::ConsumeSuffix(&index_text, "]") &&
        absl::SimpleAtoi(index_text, &index) && index >= 0 &&
        index < node->children_size()) {
      next = &node->children(index);
    }
    for (const NodeOutcome& c : node->children()) {
      if (next == nullptr && !c.id().empty() && c.id() == step) next = &c;
    }
    if (next == nullptr) {
      return common::WithReason(
          absl::NotFoundError(absl::StrCat(
              "node: ", walked.empty() ? "the root" : walked,
              node->children_size() == 0
                  ? " has no children in this outcome"
                  : absl::StrCat(" has no child \"", step, "\"; its children: ",
                                 [&] {
                                   std::string names;
                                   for (int i = 0; i < node->children_size();
                                        ++i) {
                                     absl::StrAppend(
                                         &names, i ? ", " : "",
                                         ChildName(node->children(i).id(), i));
                                   }
                                   return names;
                                 }()))),
          common::kNodeNotFound);
    }
    absl::StrAppend(&walked, walked.empty() ? "" : "/", step);
    node = next;
  }
  return node;
}

}  // namespace weft::common
