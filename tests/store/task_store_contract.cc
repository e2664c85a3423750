// The contract's tests; see task_store_contract.h.

#include "tests/store/task_store_contract.h"

#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/sync.h"

namespace weft::store {
namespace {

using weft::v1::Task;

std::shared_ptr<const Task> MakeTask(
    int id, weft::v1::TaskState state = weft::v1::TASK_STATE_QUEUED) {
  auto task = std::make_shared<Task>();
  task->set_name(absl::StrCat("tasks/", id));
  task->set_state(state);
  return task;
}

// Makes one write and waits for its `done`; the status it was given.
absl::Status Await(absl::FunctionRef<void(TaskStore::WriteDone)> write) {
  weft::testing::Notification done;
  absl::Status got;
  write([&](absl::Status s) {
    got = std::move(s);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  return got;
}

absl::Status WriteAndWait(TaskStore& store, std::shared_ptr<const Task> task) {
  return Await([&](TaskStore::WriteDone done) {
    store.Write(std::move(task), std::move(done));
  });
}

absl::Status EraseAndWait(TaskStore& store, std::string name) {
  return Await([&](TaskStore::WriteDone done) {
    store.Erase(std::move(name), std::move(done));
  });
}

std::vector<std::string> ScanNames(const TaskStore& store, uint64_t before = 0,
                                   std::vector<uint64_t>* positions = nullptr) {
  std::vector<std::string> names;
  store.Scan(before, [&](uint64_t position, const Task& task) {
    names.push_back(task.name());
    if (positions != nullptr) positions->push_back(position);
    return true;
  });
  return names;
}

TEST_P(TaskStoreContractTest, AWrittenTaskIsReadBack) {
  EXPECT_EQ(store_->Get("tasks/1"), nullptr);
  ASSERT_TRUE(WriteAndWait(*store_, MakeTask(1)).ok());
  std::shared_ptr<const Task> got = store_->Get("tasks/1");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->state(), weft::v1::TASK_STATE_QUEUED);
  EXPECT_EQ(store_->size(), 1u);
}

TEST_P(TaskStoreContractTest, AWriteReplacesAndKeepsTheTaskPosition) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(WriteAndWait(*store_, MakeTask(i)).ok());
  ASSERT_TRUE(
      WriteAndWait(*store_, MakeTask(1, weft::v1::TASK_STATE_SUCCEEDED)).ok());
  EXPECT_EQ(store_->Get("tasks/1")->state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(store_->size(), 3u);
  EXPECT_EQ(ScanNames(*store_),
            (std::vector<std::string>{"tasks/3", "tasks/2", "tasks/1"}));
}

TEST_P(TaskStoreContractTest, EraseRemovesAndIsOkForAnUnknownName) {
  ASSERT_TRUE(WriteAndWait(*store_, MakeTask(1)).ok());
  EXPECT_TRUE(EraseAndWait(*store_, "tasks/1").ok());
  EXPECT_EQ(store_->Get("tasks/1"), nullptr);
  EXPECT_EQ(store_->size(), 0u);
  EXPECT_TRUE(ScanNames(*store_).empty());
  // Repeated after a crash, an erase must not fail.
  EXPECT_TRUE(EraseAndWait(*store_, "tasks/1").ok());
  EXPECT_TRUE(EraseAndWait(*store_, "tasks/never").ok());
}

TEST_P(TaskStoreContractTest, ScanIsNewestFirstAndResumesWithoutRepeatsOrGaps) {
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(WriteAndWait(*store_, MakeTask(i)).ok());
  std::vector<uint64_t> positions;
  std::vector<std::string> first;
  store_->Scan(0, [&](uint64_t position, const Task& task) {
    first.push_back(task.name());
    positions.push_back(position);
    return first.size() < 2;
  });
  ASSERT_EQ(first, (std::vector<std::string>{"tasks/5", "tasks/4"}));
  EXPECT_GT(positions[0], positions[1]);
  // Tasks written and erased between pages shift nothing.
  ASSERT_TRUE(WriteAndWait(*store_, MakeTask(6)).ok());
  ASSERT_TRUE(EraseAndWait(*store_, "tasks/2").ok());
  EXPECT_EQ(ScanNames(*store_, positions[1]),
            (std::vector<std::string>{"tasks/3", "tasks/1"}));
  // A new task gets a position above every earlier one.
  std::vector<uint64_t> now;
  ScanNames(*store_, 0, &now);
  EXPECT_GT(now.front(), positions[0]);
}

TEST_P(TaskStoreContractTest, WritesAreAppliedInTheOrderMade) {
  // Not waited for one by one: the later write must win.
  std::atomic<int> done{0};
  auto count = [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    done.fetch_add(1);
  };
  store_->Write(MakeTask(1, weft::v1::TASK_STATE_QUEUED), count);
  store_->Write(MakeTask(1, weft::v1::TASK_STATE_RUNNING), count);
  store_->Write(MakeTask(1, weft::v1::TASK_STATE_SUCCEEDED), count);
  store_->Write(MakeTask(2), count);
  store_->Erase("tasks/2", count);
  store_->Erase("tasks/3", count);
  store_->Write(MakeTask(3), count);
  ASSERT_TRUE(weft::testing::WaitFor([&] { return done.load() == 7; }));
  EXPECT_EQ(store_->Get("tasks/1")->state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(store_->Get("tasks/2"), nullptr);
  EXPECT_NE(store_->Get("tasks/3"), nullptr);
}

TEST_P(TaskStoreContractTest, DoneMayCallTheStoreAgain) {
  // `done` is never called under the store's own lock.
  weft::testing::Notification finished;
  store_->Write(MakeTask(1), [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    EXPECT_NE(store_->Get("tasks/1"), nullptr);
    EXPECT_EQ(store_->size(), 1u);
    store_->Write(MakeTask(1, weft::v1::TASK_STATE_RUNNING),
                  [&](absl::Status s) {
                    EXPECT_TRUE(s.ok());
                    finished.Notify();
                  });
  });
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_EQ(store_->Get("tasks/1")->state(), weft::v1::TASK_STATE_RUNNING);
}

TEST_P(TaskStoreContractTest, EveryWriteFromManyThreadsIsDoneOnce) {
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int id = t * kEach + i;
        store_->Write(MakeTask(id), [&](absl::Status s) {
          EXPECT_TRUE(s.ok());
          done.fetch_add(1);
        });
        if (i % 2 == 1) {
          store_->Erase(absl::StrCat("tasks/", id), [&](absl::Status s) {
            EXPECT_TRUE(s.ok());
            done.fetch_add(1);
          });
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const int expected = kThreads * kEach * 3 / 2;
  ASSERT_TRUE(weft::testing::WaitFor([&] { return done.load() >= expected; }));
  EXPECT_EQ(done.load(), expected);
  EXPECT_EQ(store_->size(), static_cast<size_t>(kThreads * kEach / 2));
  EXPECT_EQ(ScanNames(*store_).size(),
            static_cast<size_t>(kThreads * kEach / 2));
}

TEST_P(TaskStoreContractTest, EveryDoneHasRunWhenTheStoreIsDestroyed) {
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) {
    store_->Write(MakeTask(i), [&](absl::Status) { done.fetch_add(1); });
  }
  store_.reset();
  EXPECT_EQ(done.load(), 50);
}

}  // namespace
}  // namespace weft::store
