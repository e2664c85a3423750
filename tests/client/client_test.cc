#include "client/client.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/plan_builders.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health_mock.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/test/mock_stream.h"
#include "gtest/gtest.h"
#include "server/common/serialize.h"
#include "tests/testing/status_matchers.h"
#include "weft/v1/orchestrator_mock.grpc.pb.h"

namespace weft::client {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::SetArgPointee;
using ::weft::testing::StatusIs;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() {
    auto orchestrator = std::make_unique<weft::v1::MockOrchestratorStub>();
    auto health = std::make_unique<grpc::health::v1::MockHealthStub>();
    orchestrator_ = orchestrator.get();
    health_ = health.get();
    client_ =
        std::make_unique<Client>(std::move(orchestrator), std::move(health));
  }

  weft::v1::MockOrchestratorStub* orchestrator_;
  grpc::health::v1::MockHealthStub* health_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, RunSendsTheRequestWithItsDeadlineAndReturnsTheOutcome) {
  weft::v1::RunRequest request;
  *request.mutable_plan() = Call("value");
  EXPECT_CALL(*orchestrator_, Run(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext* context,
                          const weft::v1::RunRequest& r,
                          weft::v1::RunResponse* response) {
        EXPECT_EQ(r.plan().call().handler(), "value");
        const auto left =
            context->deadline() - std::chrono::system_clock::now();
        EXPECT_GT(left, std::chrono::seconds(5));
        EXPECT_LE(left, std::chrono::seconds(10));
        response->mutable_outcome()->set_state(weft::v1::NODE_STATE_SUCCEEDED);
        return grpc::Status::OK;
      }));
  absl::StatusOr<weft::v1::RunResponse> response =
      client_->Run(request, absl::Seconds(10));
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
}

// A stream of `events`, then `end`.
grpc::testing::MockClientReader<weft::v1::TaskEvent>* Stream(
    std::vector<weft::v1::TaskEvent> events, grpc::Status end) {
  auto* reader = new grpc::testing::MockClientReader<weft::v1::TaskEvent>();
  auto left = std::make_shared<std::vector<weft::v1::TaskEvent>>(events);
  EXPECT_CALL(*reader, Read(_))
      .WillRepeatedly(Invoke([left](weft::v1::TaskEvent* e) {
        if (left->empty()) return false;
        *e = left->front();
        left->erase(left->begin());
        return true;
      }));
  EXPECT_CALL(*reader, Finish()).WillOnce(Return(end));
  return reader;
}

weft::v1::TaskEvent Event(int64_t sequence, weft::v1::TaskState state) {
  weft::v1::TaskEvent e;
  e.set_sequence(sequence);
  e.mutable_task()->set_state(state);
  return e;
}

TEST_F(ClientTest, AWatchResumesAfterTheLastEventWhenTheConnectionBreaks) {
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _))
      .WillOnce(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest& r) {
            EXPECT_EQ(r.after_sequence(), 0);
            return Stream({Event(1, weft::v1::TASK_STATE_QUEUED),
                           Event(3, weft::v1::TASK_STATE_RUNNING)},
                          grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone"));
          }))
      .WillOnce(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest& r) {
            EXPECT_EQ(r.name(), "tasks/abc");
            EXPECT_EQ(r.after_sequence(), 3);
            return Stream({Event(7, weft::v1::TASK_STATE_SUCCEEDED)},
                          grpc::Status::OK);
          }));
  std::vector<int64_t> seen;
  absl::Status s = client_->WatchTask(
      "tasks/abc", absl::Seconds(30),
      [&](const weft::v1::TaskEvent& e) { seen.push_back(e.sequence()); });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen, ::testing::ElementsAre(1, 3, 7));
}

TEST_F(ClientTest, AWatchGivesUpAfterReconnectingInVain) {
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _))
      .Times(6)
      .WillRepeatedly(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest&) {
            return Stream({}, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "connection refused"));
          }));
  EXPECT_THAT(client_->WatchTask("tasks/abc", absl::Seconds(60),
                                 [](const weft::v1::TaskEvent&) {}),
              StatusIs(absl::StatusCode::kUnavailable, "connection refused"));
}

TEST_F(ClientTest, AWatchDoesNotRetryWhatRetryingCannotMend) {
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _))
      .WillOnce(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest&) {
            return Stream({}, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                           "tasks/abc: no such task"));
          }));
  EXPECT_THAT(client_->WatchTask("tasks/abc", absl::Seconds(60),
                                 [](const weft::v1::TaskEvent&) {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such task")));
}

TEST_F(ClientTest, RunWithoutTimeoutSetsNoDeadline) {
  EXPECT_CALL(*orchestrator_, Run(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext* context,
                          const weft::v1::RunRequest&, weft::v1::RunResponse*) {
        EXPECT_EQ(context->deadline(),
                  std::chrono::system_clock::time_point::max());
        return grpc::Status::OK;
      }));
  EXPECT_TRUE(client_->Run({}, absl::ZeroDuration()).ok());
}

TEST_F(ClientTest, RpcErrorsComeBackWithTheServersCodeAndMessage) {
  EXPECT_CALL(*orchestrator_, Run(_, _, _))
      .WillOnce(Return(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "plan.parallel.children: a parallel needs at least one child")));
  EXPECT_THAT(
      client_->Run({}, absl::ZeroDuration()),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "plan.parallel.children: a parallel needs at least one child"));
  EXPECT_CALL(*orchestrator_, ListHandlers(_, _, _))
      .WillOnce(Return(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  EXPECT_THAT(client_->ListHandlers(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kUnavailable, "connection refused"));
}

TEST_F(ClientTest, CheckAsksForTheNamedService) {
  EXPECT_CALL(*health_, Check(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext*,
                          const grpc::health::v1::HealthCheckRequest& r,
                          grpc::health::v1::HealthCheckResponse* response) {
        EXPECT_EQ(r.service(), "weft.v1.Orchestrator");
        response->set_status(
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
        return grpc::Status::OK;
      }));
  auto status = client_->Check("weft.v1.Orchestrator", absl::ZeroDuration());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(ClientTest, TaskCallsNameTheTaskAndWaitCarriesItsOwnTimeout) {
  EXPECT_CALL(*orchestrator_, WaitTask(_, _, _))
      .WillOnce(
          Invoke([](grpc::ClientContext* context,
                    const weft::v1::WaitTaskRequest& r, weft::v1::Task* task) {
            EXPECT_EQ(r.name(), "tasks/00ff");
            EXPECT_EQ(r.timeout().seconds(), 2);
            EXPECT_EQ(r.timeout().nanos(), 500'000'000);
            const auto left =
                context->deadline() - std::chrono::system_clock::now();
            EXPECT_GT(left, std::chrono::seconds(5));
            task->set_name(r.name());
            task->set_state(weft::v1::TASK_STATE_RUNNING);
            return grpc::Status::OK;
          }));
  absl::StatusOr<weft::v1::Task> task = client_->WaitTask(
      "tasks/00ff", absl::Milliseconds(2500), absl::Seconds(10));
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), weft::v1::TASK_STATE_RUNNING);

  EXPECT_CALL(*orchestrator_, DeleteTask(_, _, _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                    "tasks/00ff is TASK_STATE_RUNNING")));
  EXPECT_THAT(client_->DeleteTask("tasks/00ff", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "tasks/00ff is TASK_STATE_RUNNING"));
}

TEST_F(ClientTest, WatchPassesEveryEventOnAndEndsOkAfterTheTerminalOne) {
  auto* reader = new grpc::testing::MockClientReader<weft::v1::TaskEvent>();
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _))
      .WillOnce(Invoke(
          [reader](grpc::ClientContext*, const weft::v1::WatchTaskRequest& r) {
            EXPECT_EQ(r.name(), "tasks/00ff");
            return reader;
          }));
  EXPECT_CALL(*reader, Read(_))
      .WillOnce(DoAll(SetArgPointee<0>(Event(1, weft::v1::TASK_STATE_QUEUED)),
                      Return(true)))
      .WillOnce(DoAll(SetArgPointee<0>(Event(2, weft::v1::TASK_STATE_RUNNING)),
                      Return(true)))
      .WillOnce(
          DoAll(SetArgPointee<0>(Event(3, weft::v1::TASK_STATE_SUCCEEDED)),
                Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*reader, Finish()).WillOnce(Return(grpc::Status::OK));
  std::vector<int64_t> seen;
  EXPECT_TRUE(client_
                  ->WatchTask("tasks/00ff", absl::ZeroDuration(),
                              [&](const weft::v1::TaskEvent& e) {
                                seen.push_back(e.sequence());
                              })
                  .ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(ClientTest, AWatchCutBeforeTheEndIsUnavailableAndSaysHowToResume) {
  // Ends before the task's end, then again and again without news.
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _))
      .WillOnce(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest&) {
            return Stream({Event(1, weft::v1::TASK_STATE_RUNNING)},
                          grpc::Status::OK);
          }))
      .WillRepeatedly(
          Invoke([](grpc::ClientContext*, const weft::v1::WatchTaskRequest& r) {
            EXPECT_EQ(r.after_sequence(), 1);
            return Stream({}, grpc::Status::OK);
          }));
  EXPECT_THAT(client_->WatchTask("tasks/00ff", absl::ZeroDuration(),
                                 [](const weft::v1::TaskEvent&) {}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("get the task and watch again")));
  ::testing::Mock::VerifyAndClearExpectations(orchestrator_);

  auto* failing = new grpc::testing::MockClientReader<weft::v1::TaskEvent>();
  EXPECT_CALL(*orchestrator_, WatchTaskRaw(_, _)).WillOnce(Return(failing));
  EXPECT_CALL(*failing, Read(_)).WillOnce(Return(false));
  EXPECT_CALL(*failing, Finish())
      .WillOnce(Return(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    "tasks/00ff: no such task")));
  EXPECT_THAT(
      client_->WatchTask("tasks/00ff", absl::ZeroDuration(),
                         [](const weft::v1::TaskEvent&) {}),
      StatusIs(absl::StatusCode::kNotFound, "tasks/00ff: no such task"));
}

TEST_F(ClientTest, ResolveReturnsTheValueAndErrorsComeBackAsSent) {
  EXPECT_CALL(*orchestrator_, ResolveLazyValue(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext*,
                          const weft::v1::ResolveLazyValueRequest& r,
                          weft::v1::ResolveLazyValueResponse* response) {
        EXPECT_EQ(r.name(), "lazyValues/daily_stats");
        response->mutable_value()->set_number_value(42);
        response->set_cache_hit(true);
        response->set_generation(3);
        return grpc::Status::OK;
      }))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "lazyValues/daily_stats: warehouse down")));
  absl::StatusOr<weft::v1::ResolveLazyValueResponse> v =
      client_->ResolveLazyValue("lazyValues/daily_stats", absl::ZeroDuration());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value().number_value(), 42);
  EXPECT_TRUE(v->cache_hit());
  EXPECT_EQ(v->generation(), 3);
  EXPECT_THAT(
      client_->ResolveLazyValue("lazyValues/daily_stats", absl::ZeroDuration()),
      StatusIs(absl::StatusCode::kUnavailable,
               "lazyValues/daily_stats: warehouse down"));
}

TEST(LazyHelpersTest, LazyValueNameAcceptsTheBareId) {
  EXPECT_EQ(LazyValueName("daily_stats"), "lazyValues/daily_stats");
  EXPECT_EQ(LazyValueName("lazyValues/daily_stats"), "lazyValues/daily_stats");
}

TEST(TaskHelpersTest, TaskNameAcceptsTheBareId) {
  EXPECT_EQ(TaskName("00ff"), "tasks/00ff");
  EXPECT_EQ(TaskName("tasks/00ff"), "tasks/00ff");
}

TEST(TaskHelpersTest, OnlyTheFourEndStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(weft::v1::TASK_STATE_UNSPECIFIED));
  EXPECT_FALSE(IsTerminal(weft::v1::TASK_STATE_QUEUED));
  EXPECT_FALSE(IsTerminal(weft::v1::TASK_STATE_RUNNING));
  EXPECT_TRUE(IsTerminal(weft::v1::TASK_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(weft::v1::TASK_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(weft::v1::TASK_STATE_CANCELLED));
  EXPECT_TRUE(IsTerminal(weft::v1::TASK_STATE_TIMED_OUT));
}

// The RunRequest `json` says, read by protobuf's own JSON parser.
absl::StatusOr<weft::v1::RunRequest> RunRequestFromJson(
    absl::string_view json) {
  weft::v1::RunRequest request;
  auto s =
      google::protobuf::util::JsonStringToMessage(std::string(json), &request);
  if (!s.ok()) return absl::InvalidArgumentError(s.ToString());
  return request;
}

TEST(PlanBuildersTest, BuildTheSameMessageAsTheJson) {
  weft::v1::RunRequest built;
  *built.mutable_plan() = Parallel({
      Id("user", Call("sleep", *ArgsFromJson(R"({"duration": "0.3s"})"))),
      Timeout(absl::Milliseconds(1500),
              Call("value", *ArgsFromJson(R"({"value": 42})"))),
  });
  absl::StatusOr<weft::v1::RunRequest> parsed =
      RunRequestFromJson(R"({"plan": {"parallel": {"children": [
      {"id": "user", "call": {"handler": "sleep", "args": {"duration": "0.3s"}}},
      {"timeout": "1.5s", "call": {"handler": "value", "args": {"value": 42}}}]}}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(common::ToCompactJson(built), common::ToCompactJson(*parsed));
}

TEST(PlanBuildersTest, EveryNodeKindBuildsWhatItsJsonSays) {
  weft::v1::RunRequest built;
  *built.mutable_plan() = Sequence({
      Retry(3, Race({Call("value", *ArgsFromJson(R"({"value": 1})")),
                     Offload("default", Call("hash"))},
                    {.mode = weft::v1::RACE_MODE_FIRST_COMPLETE,
                     .hedge_delay = absl::Milliseconds(50)})),
      Parallel(
          {Lazy("daily_stats"), Lazy("lazyValues/top_posts")},
          {.join = weft::v1::JOIN_QUORUM, .quorum = 1, .max_concurrency = 2}),
  });
  absl::StatusOr<weft::v1::RunRequest> parsed =
      RunRequestFromJson(R"({"plan": {"sequence": {"children": [
      {"retry": {"maxAttempts": 3}, "race": {"mode": "RACE_MODE_FIRST_COMPLETE",
        "hedgeDelay": "0.05s", "children": [
          {"call": {"handler": "value", "args": {"value": 1}}},
          {"offload": {"pool": "default", "child": {"call": {"handler": "hash"}}}}]}},
      {"parallel": {"join": "JOIN_QUORUM", "quorum": 1, "maxConcurrency": 2,
        "children": [{"lazy": {"name": "lazyValues/daily_stats"}},
                     {"lazy": {"name": "lazyValues/top_posts"}}]}}]}}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(common::ToCompactJson(built), common::ToCompactJson(*parsed));
}

TEST(PlanBuildersTest, DataFlowBuildersWriteTheirJsonForms) {
  google::protobuf::Struct args;
  auto& fields = *args.mutable_fields();
  fields["url"] = Format("http://api/users/{user.id}/posts");
  fields["id"] = Ref("user.id");
  fields["kept"] = Literal(Ref("not.read"));
  weft::v1::RunRequest built;
  *built.mutable_plan() = Sequence({
      Id("user", Call("value", *ArgsFromJson(R"({"value": {"id": 7}})"))),
      Deadline(absl::Seconds(2), Call("value", args)),
  });
  absl::StatusOr<weft::v1::RunRequest> parsed =
      RunRequestFromJson(R"({"plan": {"sequence": {"children": [
      {"id": "user", "call": {"handler": "value", "args": {"value": {"id": 7}}}},
      {"deadline": "2s", "call": {"handler": "value", "args": {
        "url": {"$format": "http://api/users/{user.id}/posts"},
        "id": {"$ref": "user.id"},
        "kept": {"$literal": {"$ref": "not.read"}}}}}]}}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(common::ToCompactJson(built), common::ToCompactJson(*parsed));
}

TEST(PlanBuildersTest, MapBuildsWhatItsJsonSays) {
  weft::v1::RunRequest built;
  *built.mutable_plan() =
      Map(Ref("subscribers.body"),
          Call("value", *ArgsFromJson(R"({"value": {"$ref": "$item"}})")),
          {.join = weft::v1::JOIN_ALL_SETTLED,
           .max_concurrency = 10,
           .as = "subscriber"});
  absl::StatusOr<weft::v1::RunRequest> parsed =
      RunRequestFromJson(R"({"plan": {"map": {
      "items": {"$ref": "subscribers.body"},
      "child": {"call": {"handler": "value", "args": {"value": {"$ref": "$item"}}}},
      "join": "JOIN_ALL_SETTLED", "maxConcurrency": 10, "as": "subscriber"}}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(common::ToCompactJson(built), common::ToCompactJson(*parsed));
}

TEST(PlanBuildersTest, ArgsMustBeAJsonObject) {
  EXPECT_THAT(ArgsFromJson("[1, 2]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("args are not a JSON object")));
}

}  // namespace
}  // namespace weft::client
