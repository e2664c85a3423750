// Every TaskStore backend runs the contract suite (task_store_contract.cc);
// FailingTaskStore, which the registry's tests use, runs it too, and its
// failures and holds are checked here.

#include <atomic>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_task_store.h"
#include "server/store/task_store.h"
#include "tests/store/task_store_contract.h"
#include "tests/testing/failing_task_store.h"
#include "tests/testing/scratch_dir.h"
#include "tests/testing/status_matchers.h"

namespace weft::store {
namespace {

using weft::testing::FailingTaskStore;
using ::weft::testing::StatusIs;

// A new SQLite store in a folder the test binary removes when it exits.
std::unique_ptr<TaskStore> NewSqliteStore() {
  static auto* dir = new weft::testing::ScratchDir;
  static std::atomic<int> next{0};
  static const bool removed = [] {
    std::atexit([] { delete dir; });
    return true;
  }();
  (void)removed;
  absl::StatusOr<std::unique_ptr<SqliteTaskStore>> store =
      SqliteTaskStore::Open(dir->File(absl::StrCat("store", ++next, ".db")));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(
    Backends, TaskStoreContractTest,
    ::testing::Values(
        TaskStoreFactory{"Memory",
                         [] { return std::make_unique<InMemoryTaskStore>(); }},
        // Writes completed on the store's own thread, as a durable store's.
        TaskStoreFactory{"OnItsOwnThread",
                         [] {
                           return std::make_unique<FailingTaskStore>(
                               FailingTaskStore::Completion::kThread);
                         }},
        TaskStoreFactory{"Inline",
                         [] { return std::make_unique<FailingTaskStore>(); }},
        TaskStoreFactory{"Sqlite", NewSqliteStore}),
    [](const auto& info) { return info.param.name; });

std::shared_ptr<const weft::v1::Task> Named(const char* name) {
  auto task = std::make_shared<weft::v1::Task>();
  task->set_name(name);
  return task;
}

TEST(FailingTaskStoreTest, AFailedWriteChangesNothingAndSaysWhy) {
  FailingTaskStore store;
  std::vector<absl::Status> got;
  auto record = [&](absl::Status s) { got.push_back(std::move(s)); };
  store.Write(Named("tasks/1"), record);
  store.FailWrites(absl::UnavailableError("disk full"));
  store.Write(Named("tasks/2"), record);
  store.Erase("tasks/1", record);
  store.FailWrites(absl::OkStatus());
  store.Write(Named("tasks/3"), record);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].ok());
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kUnavailable, "disk full"));
  EXPECT_THAT(got[2], StatusIs(absl::StatusCode::kUnavailable, "disk full"));
  EXPECT_TRUE(got[3].ok());
  EXPECT_NE(store.Get("tasks/1"), nullptr);
  EXPECT_EQ(store.Get("tasks/2"), nullptr);
  EXPECT_EQ(store.size(), 2u);
}

TEST(FailingTaskStoreTest, HeldWritesWaitAndThenApplyInOrder) {
  FailingTaskStore store;
  store.Hold();
  int done = 0;
  store.Write(Named("tasks/1"), [&](absl::Status) { ++done; });
  store.Erase("tasks/1", [&](absl::Status) { ++done; });
  EXPECT_EQ(done, 0);
  EXPECT_EQ(store.pending(), 2);
  EXPECT_EQ(store.size(), 0u);
  store.Release();
  EXPECT_EQ(done, 2);
  EXPECT_EQ(store.pending(), 0);
  EXPECT_EQ(store.Get("tasks/1"), nullptr);
}

}  // namespace
}  // namespace weft::store
