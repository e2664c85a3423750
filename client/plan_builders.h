// Plan builders: weft.v1.PlanNode for every node kind, in C++ rather than
// JSON. Each returns the node by value, so they nest the way the plan does:
//
//   RunRequest r;
//   *r.mutable_plan() = Parallel({
//       Id("user", Call("sleep", *ArgsFromJson(R"({"duration": "0.3s"})"))),
//       Id("search", Race({Call("value", *ArgsFromJson(R"({"value": 1})")),
//                          Offload("default", Call("hash", hash_args))},
//                         {.hedge_delay = absl::Milliseconds(50)})),
//       Id("stats", Lazy("daily_stats"))});
//
// What a builder does not set keeps the server's default (JOIN_ALL,
// RACE_MODE_FIRST_SUCCESS, no timeout, no retry). The server checks the
// plan; these check nothing.
//
// Thread-safe: no state.

#ifndef WEFT_CLIENT_PLAN_BUILDERS_H_
#define WEFT_CLIENT_PLAN_BUILDERS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "weft/v1/plan.pb.h"

namespace weft::client {

// A call of `handler` with `args`.
weft::v1::PlanNode Call(absl::string_view handler,
                        google::protobuf::Struct args = {});

// `json` (a JSON object) as a call's args; INVALID_ARGUMENT if it is not one.
absl::StatusOr<google::protobuf::Struct> ArgsFromJson(absl::string_view json);

struct ParallelOptions {
  weft::v1::Join join = weft::v1::JOIN_UNSPECIFIED;
  int quorum = 0;           // With JOIN_QUORUM.
  int max_concurrency = 0;  // 0: every child at once.
};
weft::v1::PlanNode Parallel(std::vector<weft::v1::PlanNode> children,
                            ParallelOptions options = {});

struct RaceOptions {
  weft::v1::RaceMode mode = weft::v1::RACE_MODE_UNSPECIFIED;
  // Child i starts i * hedge_delay after the race; zero: all at once.
  absl::Duration hedge_delay = absl::ZeroDuration();
};
weft::v1::PlanNode Race(std::vector<weft::v1::PlanNode> children,
                        RaceOptions options = {});

weft::v1::PlanNode Sequence(std::vector<weft::v1::PlanNode> children);

struct MapOptions {
  weft::v1::Join join = weft::v1::JOIN_UNSPECIFIED;
  int quorum = 0;           // With JOIN_QUORUM.
  int max_concurrency = 0;  // 0: every item at once.
  std::string as;           // The item's name beside "$item".
};
// `child` once per item of `items`: a list, or Ref("...") naming one.
// Inside `child`, Ref("$item"), Ref("$item.field") and Ref("$index").
weft::v1::PlanNode Map(google::protobuf::Value items, weft::v1::PlanNode child,
                       MapOptions options = {});

// `child` run on the thread pool named `pool`.
weft::v1::PlanNode Offload(absl::string_view pool, weft::v1::PlanNode child);

// The value of a lazy value: "lazyValues/{id}" or the bare id.
weft::v1::PlanNode Lazy(absl::string_view name_or_id);

// `node` with an id (its name in outcomes and race winners), a timeout per
// attempt, or up to `max_attempts` attempts in all (the server's default
// backoff; set the rest on node.mutable_retry()).
weft::v1::PlanNode Id(absl::string_view id, weft::v1::PlanNode node);
weft::v1::PlanNode Timeout(absl::Duration timeout, weft::v1::PlanNode node);
weft::v1::PlanNode Retry(int max_attempts, weft::v1::PlanNode node);
// `node` with a deadline for all its attempts and backoffs together.
weft::v1::PlanNode Deadline(absl::Duration deadline, weft::v1::PlanNode node);

// Values for a call's args that earlier steps of a sequence make (the server
// fills them in when the call starts; see CallNode.args):
//   Ref("user.posts[0].title")  {"$ref": ...}: a node's value, or part of it;
//   Format("/users/{user.id}")  {"$format": ...}: a string built from them;
//   Literal(v)                  {"$literal": v}: v as it is, even an object
//                               with a "$ref" key.
//
//   google::protobuf::Struct args;
//   (*args.mutable_fields())["url"] = Format("http://api/users/{user.id}");
//   Sequence({Id("user", Call("http", user_args)), Call("http", args)});
google::protobuf::Value Ref(absl::string_view path);
google::protobuf::Value Format(absl::string_view format);
google::protobuf::Value Literal(google::protobuf::Value value);

}  // namespace weft::client

#endif  // WEFT_CLIENT_PLAN_BUILDERS_H_
