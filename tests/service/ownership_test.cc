// Who reaches what once weftd has callers (--auth_tokens): a `user` reaches
// only its own tasks (another's is NOT_FOUND, worded as for a name never
// given out), request_ids are per principal, lazy values are written by
// admins and read by all (without their plans), and the server's totals
// and limits are for admins. Every task RPC is tried across principals.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "server/auth/principals.h"
#include "server/common/error_details.h"
#include "server/common/errors.h"
#include "tests/service/server_fixture.h"

namespace weft::testing {
namespace {

using ::testing::HasSubstr;
using weft::v1::Task;

std::shared_ptr<auth::Callers> ThreeCallers() {
  absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> table =
      auth::PrincipalTable::Create(FromJson<weft::v1::AuthTokens>(
          R"({"principals": [
            {"name": "root", "role": "admin", "tokenSha256": ")" +
          auth::TokenSha256("root-token") + R"("},
            {"name": "alice", "role": "user", "tokenSha256": ")" +
          auth::TokenSha256("alice-token") + R"("},
            {"name": "bob", "role": "user", "tokenSha256": ")" +
          auth::TokenSha256("bob-token") + R"("}]})"));
  EXPECT_TRUE(table.ok()) << table.status();
  return std::make_shared<auth::Callers>(table.ok() ? *table : nullptr);
}

weftd::ServerOptions WithCallers() {
  weftd::ServerOptions options;
  options.callers = ThreeCallers();
  return options;
}

std::string ReasonOf(const grpc::Status& s) {
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(s.error_details())) return "(no details)";
  return std::string(common::Reason(common::FromRpcStatus(rpc)));
}

// A ClientContext presenting `who`'s token.
std::unique_ptr<grpc::ClientContext> As(const std::string& who) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", who, "-token"));
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  return context;
}

constexpr char kQuick[] =
    R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})";
constexpr char kLong[] = R"({"plan": {"call": {"handler": "sleep",
    "args": {"duration": "60s"}}}})";

Task Create(ServerFixture& f, const std::string& who, const std::string& json) {
  Task task;
  grpc::Status s = f.orchestrator().CreateTask(
      As(who).get(), FromJson<weft::v1::CreateTaskRequest>(json), &task);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return task;
}

class OwnershipTest : public ::testing::Test {
 protected:
  OwnershipTest() : f_(WithCallers()) {}

  Task Create(const std::string& who, const std::string& json) {
    return testing::Create(f_, who, json);
  }
  grpc::Status Get(const std::string& who, const std::string& name,
                   Task* task = nullptr) {
    Task ignored;
    weft::v1::GetTaskRequest request;
    request.set_name(name);
    return f_.orchestrator().GetTask(As(who).get(), request,
                                     task != nullptr ? task : &ignored);
  }
  // Waits (as the creator) until the task has ended.
  void AwaitEnd(const std::string& who, const std::string& name) {
    weft::v1::WaitTaskRequest request;
    request.set_name(name);
    Task task;
    ASSERT_TRUE(f_.orchestrator().WaitTask(As(who).get(), request, &task).ok());
    ASSERT_EQ(task.state(), weft::v1::TASK_STATE_SUCCEEDED);
  }
  std::vector<std::string> Listed(const std::string& who) {
    weft::v1::ListTasksResponse response;
    grpc::Status s = f_.orchestrator().ListTasks(As(who).get(), {}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> names;
    for (const Task& t : response.tasks()) names.push_back(t.name());
    return names;
  }

  ServerFixture f_;
};

// What NOT_FOUND says for a name no one was ever given.
std::string NeverGiven(const std::string& name) {
  return absl::StrCat(name, ": no such task");
}

void ExpectHidden(const grpc::Status& s, const std::string& name,
                  const std::string& rpc) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << rpc;
  EXPECT_EQ(s.error_message(), NeverGiven(name)) << rpc;
  EXPECT_EQ(ReasonOf(s), "TASK_NOT_FOUND") << rpc;
}

TEST_F(OwnershipTest, EveryTaskRpcOnAnothersTaskIsNotFoundAsIfItNeverWas) {
  const Task running = Create("alice", kLong);
  const Task done = Create("alice", kQuick);
  EXPECT_EQ(running.creator(), "alice");
  AwaitEnd("alice", done.name());

  for (const Task* t : {&running, &done}) {
    const std::string& name = t->name();
    ExpectHidden(Get("bob", name), name, "GetTask");
    {
      weft::v1::WaitTaskRequest request;
      request.set_name(name);
      Task task;
      ExpectHidden(f_.orchestrator().WaitTask(As("bob").get(), request, &task),
                   name, "WaitTask");
    }
    {
      weft::v1::WatchTaskRequest request;
      request.set_name(name);
      auto context = As("bob");
      auto reader = f_.orchestrator().WatchTask(context.get(), request);
      weft::v1::TaskEvent event;
      EXPECT_FALSE(reader->Read(&event)) << "WatchTask sent an event";
      ExpectHidden(reader->Finish(), name, "WatchTask");
    }
    {
      weft::v1::CancelTaskRequest request;
      request.set_name(name);
      Task task;
      ExpectHidden(
          f_.orchestrator().CancelTask(As("bob").get(), request, &task), name,
          "CancelTask");
    }
    {
      weft::v1::DeleteTaskRequest request;
      request.set_name(name);
      google::protobuf::Empty empty;
      ExpectHidden(
          f_.orchestrator().DeleteTask(As("bob").get(), request, &empty), name,
          "DeleteTask");
    }
  }
  // Bob's attempts changed nothing: alice's task still runs.
  Task task;
  ASSERT_TRUE(Get("alice", running.name(), &task).ok());
  EXPECT_EQ(task.state(), weft::v1::TASK_STATE_RUNNING);

  // The admin reaches both, and sees who made them.
  ASSERT_TRUE(Get("root", running.name(), &task).ok());
  EXPECT_EQ(task.creator(), "alice");
  weft::v1::CancelTaskRequest cancel;
  cancel.set_name(running.name());
  ASSERT_TRUE(
      f_.orchestrator().CancelTask(As("root").get(), cancel, &task).ok());
}

TEST_F(OwnershipTest, ListTasksShowsAUserItsOwnAndAnAdminAll) {
  const Task a = Create("alice", kQuick);
  const Task b = Create("bob", kQuick);
  EXPECT_THAT(Listed("alice"), ::testing::ElementsAre(a.name()));
  EXPECT_THAT(Listed("bob"), ::testing::ElementsAre(b.name()));
  EXPECT_THAT(Listed("root"),
              ::testing::UnorderedElementsAre(a.name(), b.name()));
}

TEST_F(OwnershipTest, RequestIdsArePerPrincipal) {
  const std::string json = R"({"requestId": "nightly", "plan": {"call":
      {"handler": "value", "args": {"value": 1}}}})";
  const Task alice = Create("alice", json);
  const Task again = Create("alice", json);
  const Task bob = Create("bob", json);
  EXPECT_EQ(again.name(), alice.name());
  EXPECT_NE(bob.name(), alice.name());
  EXPECT_EQ(bob.creator(), "bob");
}

TEST_F(OwnershipTest, ADeletedTaskSaysSoOnlyToWhoReachedIt) {
  const Task t = Create("alice", kQuick);
  AwaitEnd("alice", t.name());
  weft::v1::DeleteTaskRequest request;
  request.set_name(t.name());
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      f_.orchestrator().DeleteTask(As("alice").get(), request, &empty).ok());
  grpc::Status alice = Get("alice", t.name());
  EXPECT_EQ(alice.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(alice.error_message(), HasSubstr("deleted"));
  ExpectHidden(Get("bob", t.name()), t.name(), "GetTask after delete");
}

constexpr char kStats[] = R"({"lazyValueId": "stats", "lazyValue": {
    "plan": {"call": {"handler": "value", "args": {"value": 7}}}}})";

TEST_F(OwnershipTest, LazyValuesAreWrittenByAdminsAndReadByAllWithoutPlans) {
  weft::v1::LazyValue value;
  grpc::Status denied = f_.orchestrator().CreateLazyValue(
      As("alice").get(), FromJson<weft::v1::CreateLazyValueRequest>(kStats),
      &value);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ReasonOf(denied), "ADMIN_ONLY");
  EXPECT_THAT(denied.error_message(), HasSubstr("CreateLazyValue"));
  ASSERT_TRUE(
      f_.orchestrator()
          .CreateLazyValue(As("root").get(),
                           FromJson<weft::v1::CreateLazyValueRequest>(kStats),
                           &value)
          .ok());

  weft::v1::ResolveLazyValueRequest resolve;
  resolve.set_name("lazyValues/stats");
  weft::v1::ResolveLazyValueResponse resolved;
  ASSERT_TRUE(f_.orchestrator()
                  .ResolveLazyValue(As("alice").get(), resolve, &resolved)
                  .ok());
  EXPECT_EQ(resolved.value().number_value(), 7);

  weft::v1::GetLazyValueRequest get;
  get.set_name("lazyValues/stats");
  ASSERT_TRUE(
      f_.orchestrator().GetLazyValue(As("alice").get(), get, &value).ok());
  EXPECT_FALSE(value.has_plan());
  EXPECT_EQ(value.state(), weft::v1::LAZY_VALUE_STATE_READY);
  ASSERT_TRUE(
      f_.orchestrator().GetLazyValue(As("root").get(), get, &value).ok());
  EXPECT_TRUE(value.has_plan());

  weft::v1::ListLazyValuesResponse listed;
  ASSERT_TRUE(
      f_.orchestrator().ListLazyValues(As("bob").get(), {}, &listed).ok());
  ASSERT_EQ(listed.lazy_values_size(), 1);
  EXPECT_FALSE(listed.lazy_values(0).has_plan());

  weft::v1::ResetLazyValueRequest reset;
  reset.set_name("lazyValues/stats");
  grpc::Status s =
      f_.orchestrator().ResetLazyValue(As("bob").get(), reset, &value);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ReasonOf(s), "ADMIN_ONLY");
  weft::v1::DeleteLazyValueRequest del;
  del.set_name("lazyValues/stats");
  google::protobuf::Empty empty;
  s = f_.orchestrator().DeleteLazyValue(As("bob").get(), del, &empty);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ReasonOf(s), "ADMIN_ONLY");
  // Still there for everyone.
  EXPECT_TRUE(
      f_.orchestrator().GetLazyValue(As("bob").get(), get, &value).ok());
  EXPECT_TRUE(
      f_.orchestrator().ResetLazyValue(As("root").get(), reset, &value).ok());
  EXPECT_TRUE(
      f_.orchestrator().DeleteLazyValue(As("root").get(), del, &empty).ok());
}

TEST_F(OwnershipTest, ServerInfoShowsTotalsAndLimitsToAdminsOnly) {
  Create("alice", kQuick);
  weft::v1::ServerInfo info;
  ASSERT_TRUE(
      f_.orchestrator().GetServerInfo(As("alice").get(), {}, &info).ok());
  EXPECT_FALSE(info.version().empty());
  EXPECT_TRUE(info.has_uptime());
  EXPECT_FALSE(info.has_limits());
  EXPECT_EQ(info.tasks_size(), 0);
  EXPECT_EQ(info.memory_size(), 0);
  EXPECT_EQ(info.pools_size(), 0);

  ASSERT_TRUE(
      f_.orchestrator().GetServerInfo(As("root").get(), {}, &info).ok());
  EXPECT_TRUE(info.has_limits());
  EXPECT_GT(info.limits().max_plan_nodes(), 0);
  EXPECT_GT(info.tasks_size(), 0);
}

TEST_F(OwnershipTest, BackupStoreIsForAdmins) {
  auto context = As("alice");
  auto reader = f_.orchestrator().BackupStore(context.get(), {});
  weft::v1::BackupStoreResponse chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ReasonOf(s), "ADMIN_ONLY");
}

// Quotas are per principal: alice at hers is refused (admission, not
// timing) while bob's calls are still admitted.
TEST(QuotaTest, APrincipalAtItsQuotaIsRefusedWhileAnothersCallsAreAdmitted) {
  weftd::ServerOptions options = WithCallers();
  options.orchestrator.max_runs_per_principal = 1;
  options.tasks.max_running_per_principal = 1;
  options.tasks.max_queued_per_principal = 0;
  ServerFixture f(std::move(options));

  // Alice's run in flight holds her one run.
  std::unique_ptr<grpc::ClientContext> held = As("alice");
  const auto long_run = FromJson<weft::v1::RunRequest>(kLong);
  weft::v1::RunResponse held_response;
  absl::Notification held_done;
  grpc::Status held_status;
  f.orchestrator().async()->Run(held.get(), &long_run, &held_response,
                                [&](grpc::Status s) {
                                  held_status = std::move(s);
                                  held_done.Notify();
                                });
  ASSERT_TRUE(f.WaitForActiveRuns(1));

  const auto quick = FromJson<weft::v1::RunRequest>(kQuick);
  weft::v1::RunResponse response;
  std::unique_ptr<grpc::ClientContext> second = As("alice");
  grpc::Status s = f.orchestrator().Run(second.get(), quick, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr("principal \"alice\" has 1 runs in flight, the most "
                "allowed for one principal (--max_runs_per_principal)"));
  EXPECT_EQ(ReasonOf(s), "PRINCIPAL_QUOTA");
  auto pushback =
      second->GetServerTrailingMetadata().find("grpc-retry-pushback-ms");
  ASSERT_NE(pushback, second->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(pushback->second.data(), pushback->second.size()),
            "1000");
  // Bob's run is admitted beside it.
  s = f.orchestrator().Run(As("bob").get(), quick, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.outcome().value().number_value(), 1);

  // Tasks: alice's first runs; with no room to queue, her second is
  // refused; bob's runs.
  EXPECT_EQ(Create(f, "alice", kLong).state(), weft::v1::TASK_STATE_RUNNING);
  Task task;
  s = f.orchestrator().CreateTask(
      As("alice").get(), FromJson<weft::v1::CreateTaskRequest>(kLong), &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ReasonOf(s), "PRINCIPAL_QUOTA");
  EXPECT_THAT(s.error_message(), HasSubstr("principal \"alice\" has 1 tasks "
                                           "running and 0 waiting"));
  EXPECT_EQ(Create(f, "bob", kLong).state(), weft::v1::TASK_STATE_RUNNING);

  // Once her run ends, alice may run again.
  held->TryCancel();
  held_done.WaitForNotification();
  EXPECT_EQ(held_status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(f.WaitForActiveRuns(0));
  s = f.orchestrator().Run(As("alice").get(), quick, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace weft::testing
