// BackupStore through a real server: the copy it streams, one backup at a
// time, and the memory store's refusal.

#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_task_store.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/scratch_dir.h"

namespace weft::service {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<store::TaskStore> OpenStore(const std::string& path) {
  absl::StatusOr<std::unique_ptr<store::SqliteTaskStore>> store =
      store::SqliteTaskStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::shared_ptr<store::TaskStore>(*std::move(store))
                    : nullptr;
}

weftd::ServerOptions WithStore(std::shared_ptr<store::TaskStore> store) {
  weftd::ServerOptions options;
  options.task_store = std::move(store);
  return options;
}

class StoreMethodsTest : public ::testing::Test {
 protected:
  weft::testing::ScratchDir dir_;
};

// Creates a task of `value` and waits for its end; its name.
std::string CreateDone(weft::testing::ServerFixture& server,
                       const std::string& value) {
  grpc::ClientContext context;
  weft::v1::Task task;
  grpc::Status s = server.orchestrator().CreateTask(
      &context,
      weft::testing::FromJson<weft::v1::CreateTaskRequest>(
          R"({"plan": {"call": {"handler": "value", "args": {"value": ")" +
          value + R"("}}}})"),
      &task);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    absl::StatusOr<weft::v1::Task> t =
        server.server().tasks().Get(task.name(), tasks::TaskParts::kBasic);
    return t.ok() && t->state() == weft::v1::TASK_STATE_SUCCEEDED;
  }));
  return task.name();
}

TEST_F(StoreMethodsTest, ABackupIsAStoreWithTheTasks) {
  std::string name;
  std::string copy;
  int64_t total = -1;
  {
    std::shared_ptr<store::TaskStore> live = OpenStore(dir_.File("weft.db"));
    weft::testing::ServerFixture server(WithStore(live));
    name = CreateDone(server, "kept");
    // A backup holds what is committed: the task's end, once written.
    ASSERT_TRUE(weft::testing::WaitFor([&] {
      auto stored = live->Get(name);
      return stored != nullptr &&
             stored->state() == weft::v1::TASK_STATE_SUCCEEDED;
    }));
    grpc::ClientContext context;
    auto reader = server.orchestrator().BackupStore(&context, {});
    weft::v1::BackupStoreResponse piece;
    while (reader->Read(&piece)) {
      copy += piece.data();
      total = piece.total_bytes();
    }
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(static_cast<int64_t>(copy.size()), total);
  const std::string path = dir_.File("copy.db");
  std::ofstream(path, std::ios::binary) << copy;
  std::shared_ptr<store::TaskStore> restored = OpenStore(path);
  ASSERT_NE(restored, nullptr);
  ASSERT_NE(restored->Get(name), nullptr);
  EXPECT_EQ(restored->Get(name)->outcome().value().string_value(), "kept");
}

TEST_F(StoreMethodsTest, OneBackupAtATime) {
  weft::testing::ServerFixture server(
      WithStore(OpenStore(dir_.File("weft.db"))));
  // A copy of about 30 MB: more than HTTP/2's flow control lets the server
  // send before the caller reads, so the first backup stays in progress.
  for (int i = 0; i < 300; ++i) {
    CreateDone(server, std::string(100'000, 'a' + i % 26));
  }
  grpc::ClientContext first_context;
  auto first = server.orchestrator().BackupStore(&first_context, {});
  weft::v1::BackupStoreResponse piece;
  ASSERT_TRUE(first->Read(&piece));  // The first is being made.
  ASSERT_GT(piece.total_bytes(), static_cast<int64_t>(piece.data().size()));
  {
    grpc::ClientContext context;
    auto second = server.orchestrator().BackupStore(&context, {});
    EXPECT_FALSE(second->Read(&piece));
    grpc::Status s = second->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("being made already"));
  }
  // The first caller leaves; then a backup can be made again.
  first_context.TryCancel();
  while (first->Read(&piece)) {
  }
  first->Finish();
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    grpc::ClientContext context;
    auto again = server.orchestrator().BackupStore(&context, {});
    while (again->Read(&piece)) {
    }
    return again->Finish().ok();
  }));
}

TEST_F(StoreMethodsTest, TheMemoryStoreHasNothingToBackUp) {
  weft::testing::ServerFixture server;
  grpc::ClientContext context;
  auto reader = server.orchestrator().BackupStore(&context, {});
  weft::v1::BackupStoreResponse piece;
  EXPECT_FALSE(reader->Read(&piece));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("--store=sqlite:PATH"));
}

}  // namespace
}  // namespace weft::service
