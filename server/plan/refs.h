// Data flow in plans: references in a call's args to values made earlier.
//
// Anywhere in a call's args, an object with a single key among these is
// replaced before the call starts:
//   {"$ref": "user.posts[0].title"}  the value of the node with id "user",
//       walked by ".field" and "[index]" steps ("user" alone: all of it);
//   {"$format": "/users/{user.id}/posts"}  a string, each {reference}
//       replaced by its value (a string as it is, a number as JSON writes
//       it); "{{" and "}}" write braces;
//   {"$literal": VALUE}  VALUE as it is, not looked into;
//   {"$secret": "api_key"}  the value --secrets gives the name (see
//       secrets.h), filled in when the call starts and never kept.
// There is no expression language: a reference reads a value, nothing more.
//
// ParseArgs() (at compile time) turns args into an ArgTemplate: the args
// with literals unwrapped and a hole wherever a value comes later. The
// compiler then binds each reference to the node it names (Ref::node) and
// checks that the node is certain to have finished when the call starts.
// FillArgs() (at run time) fills the holes from the values the run holds.
//
// Thread-safety: an ArgTemplate is immutable once compiled; FillArgs may
// run concurrently.

#ifndef WEFT_SERVER_PLAN_REFS_H_
#define WEFT_SERVER_PLAN_REFS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace weft::plan {

// One step of a path into a value: a field of an object, or (index >= 0)
// an item of a list.
struct PathStep {
  std::string field;
  int64_t index = -1;
};

// A reference to the value of node `id` (or a part of it), or inside a
// map's child to the item it runs for ("$item", "$index", or the map's `as`
// name).
struct Ref {
  // kSecret: `id` names a secret (set by the parser; the others by the
  // compiler).
  enum class Source { kNode, kItem, kIndex, kSecret };
  // As written: "user.posts[0].title".
  std::string text;
  std::string id;
  std::vector<PathStep> path;
  // Where it was written, for messages: "plan...args.url.$format".
  std::string where;
  // Bound by the compiler: what it reads, and the node (an index into the
  // plan's nodes): the node whose value it reads, or the map whose item.
  Source source = Source::kNode;
  int32_t node = -1;
};

// The ids that name a map's item and its position inside the map's child.
inline constexpr char kItemId[] = "$item";
inline constexpr char kIndexId[] = "$index";

// A place in args filled in at run time: by one reference's value, or by a
// string built from text and references.
struct Hole {
  // From the args' root: the first step is an argument's name.
  std::vector<PathStep> location;
  // A $format: text[0] ref[0] text[1] ... text[n], refs.size() + 1 texts.
  // A $ref: one ref and no texts.
  std::vector<std::string> texts;
  std::vector<Ref> refs;
  bool is_format() const { return !texts.empty(); }
};

struct ArgTemplate {
  // The args with each $literal unwrapped and each hole null.
  google::protobuf::Struct base;
  std::vector<Hole> holes;
  // The top-level arguments that hold a hole: their value, and so their
  // type, is known only at run time.
  std::vector<std::string> dynamic_args;
};

// Whether `args` hold a $ref, $format, $literal or $secret object anywhere:
// a quick
// scan, so that args without any cost no more to compile than before.
bool HasDataFlow(const google::protobuf::Struct& args);
bool HasDataFlow(const google::protobuf::Value& value);

// Whether a node id can be named by a reference: [A-Za-z_][A-Za-z0-9_-]*.
bool IsReferenceableId(absl::string_view id);

// Parses a map's `items`, written at `where` ("plan.map.items"), into a
// template whose base has one field, "items". INVALID_ARGUMENT (reason
// BAD_REFERENCE) as ParseArgs says, and when `items` is neither a list nor
// a $ref.
absl::StatusOr<ArgTemplate> ParseItems(const google::protobuf::Value& items,
                                       absl::string_view where);

// Parses `args`, written at `path` ("plan.call.args"). INVALID_ARGUMENT
// (reason BAD_REFERENCE) naming the path of a malformed $ref, $format or
// $literal object, or of an object that mixes one of those keys with others.
absl::StatusOr<ArgTemplate> ParseArgs(const google::protobuf::Struct& args,
                                      absl::string_view path);

// What a reference finds in a run: the referenced node's value, or why it
// has none ("it lost the race (CANCELLED)").
struct RefTarget {
  const google::protobuf::Value* value = nullptr;
  std::string why_not;
};
using RefLookup = absl::FunctionRef<RefTarget(const Ref& ref)>;

// The args `t` stands for, with every hole filled from `lookup`. Errors
// (each marked permanent: the same values would fail again):
//   - FAILED_PRECONDITION REF_NO_VALUE: a referenced node has no value;
//   - INVALID_ARGUMENT REF_PATH_NOT_FOUND: a path step not in the value,
//     naming the reference and the shape of the value where it stopped;
//   - INVALID_ARGUMENT REF_BAD_VALUE: a $format slot given something other
//     than a string or a number.
absl::StatusOr<google::protobuf::Struct> FillArgs(const ArgTemplate& t,
                                                  RefLookup lookup);

// A map's items, from the template ParseItems made: the plan's own list or
// the value a whole-list reference reads, without a copy (both outlive the
// map's run), or else the list filled into `*owned`. Errors as FillArgs's.
absl::StatusOr<const google::protobuf::Value*> ResolveItems(
    const ArgTemplate& t, RefLookup lookup, google::protobuf::Value* owned);

// A value's shape, briefly, for messages: "an object with keys id, name",
// "a list of 3 items", "the number 4", "a string", "null".
std::string DescribeShape(const google::protobuf::Value& value);

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_REFS_H_
