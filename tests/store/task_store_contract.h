// The TaskStore contract (server/store/task_store.h) as tests every backend
// runs. A backend's test makes its stores and instantiates the suite:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Memory, TaskStoreContractTest,
//       ::testing::Values(TaskStoreFactory{"memory", [] {
//         return std::make_unique<store::InMemoryTaskStore>();
//       }}),
//       [](const auto& info) { return info.param.name; });

#ifndef WEFT_TESTS_STORE_TASK_STORE_CONTRACT_H_
#define WEFT_TESTS_STORE_TASK_STORE_CONTRACT_H_

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/store/task_store.h"

namespace weft::store {

struct TaskStoreFactory {
  std::string name;
  std::function<std::unique_ptr<TaskStore>()> make;
};

class TaskStoreContractTest
    : public ::testing::TestWithParam<TaskStoreFactory> {
 protected:
  void SetUp() override { store_ = GetParam().make(); }
  std::unique_ptr<TaskStore> store_;
};

}  // namespace weft::store

#endif  // WEFT_TESTS_STORE_TASK_STORE_CONTRACT_H_
