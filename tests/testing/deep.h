// Requests nested deeper than protobuf's parsers allow, built as objects
// and serialized (neither of which has a depth limit), for the tests of the
// server's own parsing.

#ifndef WEFT_TESTS_TESTING_DEEP_H_
#define WEFT_TESTS_TESTING_DEEP_H_

#include <string>

#include "weft/v1/orchestrator.pb.h"

namespace weft::testing {

// A RunRequest whose plan is `depth` nodes deep: parallels, each with one
// child, around a value call.
inline std::string DeepPlanBytes(int depth) {
  weft::v1::RunRequest request;
  weft::v1::PlanNode* node = request.mutable_plan();
  for (int i = 1; i < depth; ++i) {
    node = node->mutable_parallel()->add_children();
  }
  node->mutable_call()->set_handler("value");
  (*node->mutable_call()->mutable_args()->mutable_fields())["value"]
      .set_number_value(1);
  return request.SerializeAsString();
}

// A RunRequest of one value call whose value is `depth` nested lists.
inline std::string DeepArgsBytes(int depth) {
  weft::v1::RunRequest request;
  weft::v1::CallNode* call = request.mutable_plan()->mutable_call();
  call->set_handler("value");
  google::protobuf::Value* v =
      &(*call->mutable_args()->mutable_fields())["value"];
  for (int i = 0; i < depth; ++i) v = v->mutable_list_value()->add_values();
  v->set_number_value(1);
  return request.SerializeAsString();
}

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_DEEP_H_
