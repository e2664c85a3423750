// Reading outcomes: the helpers both weftd and its C++ clients use.
//
// A full outcome (OUTCOME_DETAIL_FULL) carries each value once, at the leaf
// (call or lazy node) that made it; a composite node's value is built from
// its children's, by the same rules weftd follows when it returns the root
// alone (OUTCOME_DETAIL_ROOT):
//   - map: the list of its children's values, built as a parallel's list;
//   - offload: its child's value;
//   - race: its winner's value;
//   - sequence: the list of its children's values;
//   - parallel: an object by child id when every child has an id, else a list
//     in child order, of the children that succeeded (all of them for
//     JOIN_ALL); with JOIN_ALL_SETTLED, of every child's {"state", "value"}
//     or {"state", "error": {"code", "message"}}.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_OUTCOME_H_
#define WEFT_SERVER_COMMON_OUTCOME_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "weft/v1/outcome.pb.h"

namespace weft::common {

// How a plan node's child is named, from its id and its index in the
// parent: in outcome paths and race winners its id, or "children[2]" when
// it has none (ChildName); in messages "children[2] \"posts\"" (ChildLabel).
std::string ChildName(absl::string_view id, int index);
std::string ChildLabel(absl::string_view id, int index);

// The value of `node`, a node of a full outcome (or one that carries its
// value): its own `value` when it has one, else built from its children's.
// Null for a node that did not succeed.
google::protobuf::Value AssembleValue(const weft::v1::NodeOutcome& node);

// `node` alone, as OUTCOME_DETAIL_ROOT shows it: without children, with its
// value assembled.
weft::v1::NodeOutcome RootOnly(const weft::v1::NodeOutcome& node);

// The node at `path` under `root`: child names (ids, or "children[i]" for a
// child without one, as outcomes name race winners) joined by "/", e.g.
// "fetch/children[2]" (children[i] also names a child that has an id); ""
// is the root. INVALID_ARGUMENT for a malformed
// path, NOT_FOUND naming the first step that matches no child.
absl::StatusOr<const weft::v1::NodeOutcome*> FindNode(
    const weft::v1::NodeOutcome& root, absl::string_view path);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_OUTCOME_H_
