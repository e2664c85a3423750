#include "client/plan_builders.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/proto_time.h"

namespace weft::client {

namespace {

void AddChildren(std::vector<weft::v1::PlanNode>& children,
                 google::protobuf::RepeatedPtrField<weft::v1::PlanNode>* out) {
  for (weft::v1::PlanNode& child : children) *out->Add() = std::move(child);
}

}  // namespace

weft::v1::PlanNode Call(absl::string_view handler,
                        google::protobuf::Struct args) {
  weft::v1::PlanNode node;
  node.mutable_call()->set_handler(std::string(handler));
  if (!args.fields().empty()) {
    *node.mutable_call()->mutable_args() = std::move(args);
  }
  return node;
}

weft::v1::PlanNode Parallel(std::vector<weft::v1::PlanNode> children,
                            ParallelOptions options) {
  weft::v1::PlanNode node;
  weft::v1::ParallelNode* p = node.mutable_parallel();
  AddChildren(children, p->mutable_children());
  p->set_join(options.join);
  p->set_quorum(options.quorum);
  p->set_max_concurrency(options.max_concurrency);
  return node;
}

weft::v1::PlanNode Map(google::protobuf::Value items, weft::v1::PlanNode child,
                       MapOptions options) {
  weft::v1::PlanNode node;
  weft::v1::MapNode* m = node.mutable_map();
  *m->mutable_items() = std::move(items);
  *m->mutable_child() = std::move(child);
  m->set_join(options.join);
  m->set_quorum(options.quorum);
  m->set_max_concurrency(options.max_concurrency);
  m->set_as(options.as);
  return node;
}

weft::v1::PlanNode Race(std::vector<weft::v1::PlanNode> children,
                        RaceOptions options) {
  weft::v1::PlanNode node;
  weft::v1::RaceNode* r = node.mutable_race();
  AddChildren(children, r->mutable_children());
  r->set_mode(options.mode);
  if (options.hedge_delay > absl::ZeroDuration()) {
    common::SetDuration(options.hedge_delay, r->mutable_hedge_delay());
  }
  return node;
}

weft::v1::PlanNode Sequence(std::vector<weft::v1::PlanNode> children) {
  weft::v1::PlanNode node;
  AddChildren(children, node.mutable_sequence()->mutable_children());
  return node;
}

weft::v1::PlanNode Offload(absl::string_view pool, weft::v1::PlanNode child) {
  weft::v1::PlanNode node;
  node.mutable_offload()->set_pool(std::string(pool));
  *node.mutable_offload()->mutable_child() = std::move(child);
  return node;
}

weft::v1::PlanNode Lazy(absl::string_view name_or_id) {
  weft::v1::PlanNode node;
  node.mutable_lazy()->set_name(LazyValueName(name_or_id));
  return node;
}

weft::v1::PlanNode Retry(int max_attempts, weft::v1::PlanNode node) {
  node.mutable_retry()->set_max_attempts(max_attempts);
  return node;
}

weft::v1::PlanNode Id(absl::string_view id, weft::v1::PlanNode node) {
  node.set_id(std::string(id));
  return node;
}

weft::v1::PlanNode Timeout(absl::Duration timeout, weft::v1::PlanNode node) {
  common::SetDuration(timeout, node.mutable_timeout());
  return node;
}

weft::v1::PlanNode Deadline(absl::Duration deadline, weft::v1::PlanNode node) {
  common::SetDuration(deadline, node.mutable_deadline());
  return node;
}

namespace {
// {key: value}.
google::protobuf::Value Tagged(absl::string_view key,
                               google::protobuf::Value value) {
  google::protobuf::Value out;
  (*out.mutable_struct_value()->mutable_fields())[std::string(key)] =
      std::move(value);
  return out;
}

google::protobuf::Value String(absl::string_view s) {
  google::protobuf::Value v;
  v.set_string_value(std::string(s));
  return v;
}
}  // namespace

google::protobuf::Value Ref(absl::string_view path) {
  return Tagged("$ref", String(path));
}

google::protobuf::Value Format(absl::string_view format) {
  return Tagged("$format", String(format));
}

google::protobuf::Value Literal(google::protobuf::Value value) {
  return Tagged("$literal", std::move(value));
}

absl::StatusOr<google::protobuf::Struct> ArgsFromJson(absl::string_view json) {
  google::protobuf::Struct args;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &args);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("args are not a JSON object: ", s.message().ToString()));
  }
  return args;
}

}  // namespace weft::client
