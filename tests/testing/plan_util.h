// Plans for tests, written as the JSON clients send.

#ifndef WEFT_TESTS_TESTING_PLAN_UTIL_H_
#define WEFT_TESTS_TESTING_PLAN_UTIL_H_

#include <memory>

#include "tests/testing/json.h"
#include "weft/v1/plan.pb.h"

namespace weft::testing {

inline std::unique_ptr<const weft::v1::PlanNode> PlanFromJson(
    absl::string_view json) {
  return std::make_unique<const weft::v1::PlanNode>(
      FromJson<weft::v1::PlanNode>(json));
}

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_PLAN_UTIL_H_
