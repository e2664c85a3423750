// The google.rpc details of weftd's errors (AIP-193), read from the
// grpc-status-details-bin trailer as a client receives it: one test per
// kind of error docs/errors.md lists, and the reasons nodes carry in
// outcomes.

#include "server/common/error_details.h"

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/sync.h"

namespace weft::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// What the trailer says, as the C++ client library reads it.
absl::Status Received(const grpc::Status& s) {
  google::rpc::Status rpc;
  EXPECT_FALSE(s.error_details().empty()) << s.error_message();
  EXPECT_TRUE(rpc.ParseFromString(s.error_details()))
      << "no google.rpc.Status in the trailer: " << s.error_message();
  // The trailer agrees with the status line.
  EXPECT_EQ(rpc.code(), s.error_code());
  EXPECT_EQ(rpc.message(), s.error_message());
  return common::FromRpcStatus(rpc);
}

// The ErrorInfo every weft error carries, checked for its domain.
google::rpc::ErrorInfo Info(const absl::Status& s) {
  std::optional<google::rpc::ErrorInfo> info = common::GetErrorInfo(s);
  EXPECT_TRUE(info.has_value()) << s;
  if (!info.has_value()) return {};
  EXPECT_EQ(info->domain(), "weft");
  return *info;
}

std::vector<std::string> Fields(const absl::Status& s) {
  std::vector<std::string> out;
  std::optional<google::rpc::BadRequest> bad = common::GetBadRequest(s);
  if (!bad.has_value()) return out;
  for (const auto& v : bad->field_violations()) {
    EXPECT_FALSE(v.description().empty()) << v.field();
    out.push_back(v.field());
  }
  return out;
}

std::string Resource(const absl::Status& s) {
  std::optional<google::rpc::ResourceInfo> r = common::GetResourceInfo(s);
  if (!r.has_value()) return "";
  return absl::StrCat(r->resource_type(), " ", r->resource_name());
}

// {"sequence": {"children": [...]}} nested `depth` deep, in JSON.
std::string NestedSequences(int depth) {
  std::string plan = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 1; i < depth; ++i) {
    plan = absl::StrCat(R"({"sequence": {"children": [)", plan, "]}}");
  }
  return plan;
}

// [[[...]]] nested `depth` deep, in JSON.
std::string NestedLists(int depth) {
  return absl::StrCat(std::string(depth, '['), std::string(depth, ']'));
}

class ErrorDetailsTest : public ::testing::Test {
 protected:
  explicit ErrorDetailsTest(weftd::ServerOptions options = {})
      : f_(std::move(options)) {}

  absl::Status Run(absl::string_view request_json,
                   weft::v1::RunResponse* response = nullptr) {
    weft::v1::RunResponse ignored;
    grpc::Status s = f_.Run(request_json, response ? response : &ignored);
    if (s.ok()) return absl::OkStatus();
    return Received(s);
  }

  weft::v1::NodeOutcome MustRun(absl::string_view request_json) {
    weft::v1::RunResponse response;
    absl::Status s = Run(request_json, &response);
    EXPECT_TRUE(s.ok()) << s;
    return response.outcome();
  }

  absl::StatusOr<weft::v1::Task> CreateTask(absl::string_view json) {
    grpc::ClientContext context;
    weft::v1::Task task;
    grpc::Status s = f_.orchestrator().CreateTask(
        &context, FromJson<weft::v1::CreateTaskRequest>(json), &task);
    if (!s.ok()) return Received(s);
    return task;
  }

  template <typename Request, typename Response>
  absl::Status Call(grpc::Status (weft::v1::Orchestrator::Stub::*method)(
                        grpc::ClientContext*, const Request&, Response*),
                    absl::string_view json) {
    grpc::ClientContext context;
    Response response;
    grpc::Status s = (f_.orchestrator().*method)(
        &context, FromJson<Request>(json), &response);
    if (s.ok()) return absl::OkStatus();
    return Received(s);
  }

  ServerFixture f_;
};

TEST_F(ErrorDetailsTest, AnUnknownHandlerNamesTheFieldAndTheHandler) {
  absl::Status s = Run(R"({"plan": {"call": {"handler": "nope"}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "UNKNOWN_HANDLER");
  EXPECT_THAT(info.metadata(), ElementsAre(Pair("handler", "nope")));
  EXPECT_THAT(Fields(s), ElementsAre("plan.call.handler"));
  // No retry for a request that cannot succeed.
  EXPECT_EQ(common::RetryDelay(s), absl::InfiniteDuration());
}

TEST_F(ErrorDetailsTest, AnInvalidFieldIsNamedInProtoFormDeepInThePlan) {
  absl::Status s = Run(R"({"plan": {"parallel": {"children": [
      {"call": {"handler": "value", "args": {"value": 1}}},
      {"call": {"handler": "sleep", "args": {"duration": "-1s"}}}]}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
  EXPECT_THAT(Fields(s),
              ElementsAre("plan.parallel.children[1].call.args.duration"));
}

TEST_F(ErrorDetailsTest, TooDeepAPlanSaysTheFlagAndTheLimit) {
  absl::Status s = Run(absl::StrCat(R"({"plan": )", NestedSequences(20), "}"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "PLAN_TOO_DEEP");
  EXPECT_THAT(info.metadata(),
              UnorderedElementsAre(Pair("flag", "--max_plan_depth"),
                                   Pair("limit", "16")));
  ASSERT_EQ(Fields(s).size(), 1u);
  EXPECT_THAT(Fields(s)[0], HasSubstr("plan.sequence.children[0].sequence"));
}

TEST_F(ErrorDetailsTest, TooDeepAValueSaysTheFlagAndTheLimit) {
  absl::Status s = Run(absl::StrCat(
      R"({"plan": {"call": {"handler": "value", "args": {"value": )",
      NestedLists(40), "}}}}"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "VALUE_TOO_DEEP");
  EXPECT_EQ(info.metadata().at("flag"), "--max_value_depth");
  EXPECT_EQ(info.metadata().at("limit"), "16");
}

TEST_F(ErrorDetailsTest, AnUnknownPoolIsNamed) {
  absl::Status s = Run(R"({"plan": {"offload": {"pool": "gpu",
      "child": {"call": {"handler": "value", "args": {"value": 1}}}}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "UNKNOWN_POOL");
  EXPECT_EQ(info.metadata().at("pool"), "gpu");
  EXPECT_THAT(Fields(s), ElementsAre("plan.offload.pool"));
}

TEST_F(ErrorDetailsTest, BytesThatAreNoRequestAreMalformed) {
  grpc::GenericStub stub(f_.channel());
  grpc::ClientContext context;
  const std::string garbage = "\xff\xff\xff\xff";
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  BlockingCounter done(1);
  stub.UnaryCall(&context, "/weft.v1.Orchestrator/Run", {}, &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.DecrementCount();
                 });
  done.Wait();
  absl::Status s = Received(status);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Info(s).reason(), "MALFORMED_REQUEST");
}

TEST_F(ErrorDetailsTest, AMissingTaskIsNamedAsAResource) {
  const std::string name = "tasks/00000000000000000000000000000000";
  absl::Status s = Call(&weft::v1::Orchestrator::Stub::GetTask,
                        absl::StrCat(R"({"name": ")", name, R"("})"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Info(s).reason(), "TASK_NOT_FOUND");
  EXPECT_EQ(Resource(s), absl::StrCat("weft.v1.Task ", name));
}

TEST_F(ErrorDetailsTest, AMalformedTaskNameIsAFieldError) {
  absl::Status s =
      Call(&weft::v1::Orchestrator::Stub::GetTask, R"({"name": "tasks/x"})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
  EXPECT_THAT(Fields(s), ElementsAre("name"));
}

TEST_F(ErrorDetailsTest, CancellingAnUnknownTaskIsNotFound) {
  const std::string name = "tasks/00000000000000000000000000000000";
  absl::Status s = Call(&weft::v1::Orchestrator::Stub::CancelTask,
                        absl::StrCat(R"({"name": ")", name, R"("})"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Info(s).reason(), "TASK_NOT_FOUND");
  EXPECT_EQ(Resource(s), absl::StrCat("weft.v1.Task ", name));
}

TEST_F(ErrorDetailsTest, ListingAnUnknownStateIsAFieldError) {
  weft::v1::ListTasksRequest request;
  request.add_states(static_cast<weft::v1::TaskState>(99));
  grpc::ClientContext context;
  weft::v1::ListTasksResponse response;
  absl::Status s =
      Received(f_.orchestrator().ListTasks(&context, request, &response));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
  EXPECT_THAT(Fields(s), ElementsAre("states"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown state 99"));
}

// One page-size rule, and one message, for every List method.
TEST_F(ErrorDetailsTest, PageSizesOutOfRangeAreFieldErrors) {
  for (absl::Status s :
       {Call(&weft::v1::Orchestrator::Stub::ListTasks, R"({"pageSize": 1001})"),
        Call(&weft::v1::Orchestrator::Stub::ListLazyValues,
             R"({"pageSize": -1})")}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
    EXPECT_THAT(Fields(s), ElementsAre("page_size"));
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("page_size: must be from 1 to 1000 (0 for 100)"));
  }
}

TEST_F(ErrorDetailsTest, AWaitLongerThanADayIsAFieldError) {
  absl::StatusOr<weft::v1::Task> task = CreateTask(
      R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  ASSERT_TRUE(task.ok()) << task.status();
  for (absl::string_view timeout : {"90000s", "-1s"}) {
    absl::Status s = Call(&weft::v1::Orchestrator::Stub::WaitTask,
                          absl::StrCat(R"({"name": ")", task->name(),
                                       R"(", "timeout": ")", timeout, R"("})"));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << timeout;
    EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
    EXPECT_THAT(Fields(s), ElementsAre("timeout"));
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(absl::StrCat("timeout: must be from 0s to 86400s, "
                                       "got ",
                                       timeout)));
  }
}

TEST_F(ErrorDetailsTest, LabelAndRequestIdLimitsNameTheField) {
  const std::string plan =
      R"("plan": {"call": {"handler": "value", "args": {"value": 1}}})";
  std::string many = "{";
  for (int i = 0; i < 65; ++i) {
    absl::StrAppend(&many, i == 0 ? "" : ", ", "\"k", i, "\": \"v\"");
  }
  many += "}";
  struct Case {
    std::string request;
    std::string field;
    std::string message;
  };
  const Case cases[] = {
      {absl::StrCat("{", plan, R"(, "labels": )", many, "}"), "labels",
       "65 labels, more than 64"},
      {absl::StrCat("{", plan, R"(, "labels": {")", std::string(64, 'k'),
                    R"(": "v"}})"),
       "labels", "must be 1 to 63 characters"},
      {absl::StrCat("{", plan, R"(, "labels": {"k": ")", std::string(256, 'v'),
                    R"("}})"),
       "labels[\"k\"]", "longer than 255 characters"},
      {absl::StrCat("{", plan, R"(, "requestId": ")", std::string(129, 'r'),
                    R"("})"),
       "request_id", "longer than 128 characters"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<weft::v1::Task> task = CreateTask(c.request);
    ASSERT_FALSE(task.ok()) << c.field;
    EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Info(task.status()).reason(), "INVALID_FIELD");
    EXPECT_THAT(Fields(task.status()), ElementsAre(c.field));
    EXPECT_THAT(std::string(task.status().message()), HasSubstr(c.message));
  }
}

TEST_F(ErrorDetailsTest, AReusedRequestIdNamesTheTaskItMade) {
  absl::StatusOr<weft::v1::Task> first = CreateTask(
      R"({"requestId": "r1", "plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<weft::v1::Task> second = CreateTask(
      R"({"requestId": "r1", "plan": {"call": {"handler": "value",
          "args": {"value": 2}}}})");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Info(second.status()).reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(Resource(second.status()),
            absl::StrCat("weft.v1.Task ", first->name()));
}

TEST_F(ErrorDetailsTest, DeletingARunningTaskSaysItHasNotFinished) {
  absl::StatusOr<weft::v1::Task> task = CreateTask(
      R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "60s"}}}})");
  ASSERT_TRUE(task.ok()) << task.status();
  const std::string name_json =
      absl::StrCat(R"({"name": ")", task->name(), R"("})");
  absl::Status s = Call(&weft::v1::Orchestrator::Stub::DeleteTask, name_json);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Info(s).reason(), "TASK_NOT_FINISHED");
  EXPECT_EQ(Resource(s), absl::StrCat("weft.v1.Task ", task->name()));

  // Cancelled, its outcome says by whom.
  ASSERT_TRUE(Call(&weft::v1::Orchestrator::Stub::CancelTask, name_json).ok());
  grpc::ClientContext context;
  weft::v1::Task waited;
  ASSERT_TRUE(f_.orchestrator()
                  .WaitTask(&context,
                            FromJson<weft::v1::WaitTaskRequest>(name_json),
                            &waited)
                  .ok());
  EXPECT_EQ(waited.outcome().error().reason(), "RUN_CANCELLED");
}

TEST_F(ErrorDetailsTest, AMissingNodeOfAnOutcome) {
  absl::StatusOr<weft::v1::Task> task = CreateTask(
      R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  ASSERT_TRUE(task.ok()) << task.status();
  const std::string name_json =
      absl::StrCat(R"({"name": ")", task->name(), R"("})");
  grpc::ClientContext context;
  weft::v1::Task waited;
  ASSERT_TRUE(f_.orchestrator()
                  .WaitTask(&context,
                            FromJson<weft::v1::WaitTaskRequest>(name_json),
                            &waited)
                  .ok());
  absl::Status s = Call(
      &weft::v1::Orchestrator::Stub::GetTask,
      absl::StrCat(R"({"name": ")", task->name(), R"(", "node": "nope"})"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Info(s).reason(), "NODE_NOT_FOUND");
}

TEST_F(ErrorDetailsTest, AWatchResumedPastTheTasksLastChange) {
  absl::StatusOr<weft::v1::Task> task = CreateTask(
      R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  ASSERT_TRUE(task.ok()) << task.status();
  grpc::ClientContext context;
  auto reader = f_.orchestrator().WatchTask(
      &context,
      FromJson<weft::v1::WatchTaskRequest>(absl::StrCat(
          R"({"name": ")", task->name(), R"(", "afterSequence": 1000})")));
  weft::v1::TaskEvent event;
  while (reader->Read(&event)) {
  }
  absl::Status s = Received(reader->Finish());
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Info(s).reason(), "SEQUENCE_AHEAD");
  EXPECT_THAT(Fields(s), ElementsAre("after_sequence"));
}

TEST_F(ErrorDetailsTest, AnUnknownEnumNumberIsAFieldError) {
  auto run = FromJson<weft::v1::RunRequest>(
      R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  run.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  grpc::ClientContext context;
  weft::v1::RunResponse response;
  absl::Status s = Received(f_.orchestrator().Run(&context, run, &response));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Info(s).reason(), "INVALID_FIELD");
  EXPECT_THAT(Fields(s), ElementsAre("detail"));

  weft::v1::ListTasksRequest list;
  list.set_view(static_cast<weft::v1::TaskView>(9));
  grpc::ClientContext list_context;
  weft::v1::ListTasksResponse tasks;
  s = Received(f_.orchestrator().ListTasks(&list_context, list, &tasks));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(s), ElementsAre("view"));
}

TEST_F(ErrorDetailsTest, NodesCarryTheReasonOfTheirFailure) {
  // Fail fast: the failing child is FAILED_BY_PLAN, its sibling cancelled.
  weft::v1::NodeOutcome o = MustRun(R"({"plan": {"parallel": {"children": [
      {"call": {"handler": "sleep", "args": {"duration": "60s"}}},
      {"call": {"handler": "fail", "args": {"code": "NOT_FOUND"}}}]}}})");
  EXPECT_EQ(o.error().reason(), "FAILED_BY_PLAN");
  EXPECT_EQ(o.children(0).error().reason(), "SIBLING_FAILED");
  EXPECT_EQ(o.children(1).error().reason(), "FAILED_BY_PLAN");

  // A node's own timeout, and a sequence's steps never started.
  o = MustRun(R"({"plan": {"sequence": {"children": [
      {"timeout": "0.05s",
       "call": {"handler": "sleep", "args": {"duration": "60s"}}},
      {"call": {"handler": "value", "args": {"value": 1}}}]}}})");
  EXPECT_EQ(o.children(0).error().reason(), "NODE_TIMEOUT");
  EXPECT_EQ(o.children(1).error().reason(), "NOT_STARTED");

  // The race's losers.
  o = MustRun(R"({"plan": {"race": {"children": [
      {"call": {"handler": "sleep", "args": {"duration": "0.01s"}}},
      {"call": {"handler": "sleep", "args": {"duration": "60s"}}}]}}})");
  EXPECT_EQ(o.children(1).error().reason(), "RACE_LOST");
  // A race all of whose branches failed keeps the last failure's reason.
  o = MustRun(R"({"plan": {"race": {"children": [
      {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}},
      {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}]}}})");
  EXPECT_EQ(o.error().code(), "UNAVAILABLE");
  EXPECT_EQ(o.error().reason(), "FAILED_BY_PLAN");

  // A quorum met cancels the rest; one out of reach fails.
  o = MustRun(R"({"plan": {"parallel": {"join": "JOIN_QUORUM", "quorum": 1,
      "children": [{"call": {"handler": "value", "args": {"value": 1}}},
      {"call": {"handler": "sleep", "args": {"duration": "60s"}}}]}}})");
  EXPECT_EQ(o.children(1).error().reason(), "QUORUM_REACHED");
  o = MustRun(R"({"plan": {"parallel": {"join": "JOIN_QUORUM", "quorum": 2,
      "children": [{"call": {"handler": "fail", "args": {"code": "INTERNAL"}}},
      {"call": {"handler": "sleep", "args": {"duration": "60s"}}}]}}})");
  EXPECT_EQ(o.error().reason(), "QUORUM_UNREACHABLE");
}

class ShortRunsTest : public ErrorDetailsTest {
 protected:
  static weftd::ServerOptions ShortRuns() {
    weftd::ServerOptions options;
    options.orchestrator.max_run_duration = absl::Milliseconds(50);
    return options;
  }
  ShortRunsTest() : ErrorDetailsTest(ShortRuns()) {}
};

TEST_F(ShortRunsTest, ARunPastItsDeadline) {
  weft::v1::NodeOutcome o = MustRun(
      R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "60s"}}}})");
  EXPECT_EQ(o.error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(o.error().reason(), "RUN_DEADLINE");
}

class LimitedServerTest : public ErrorDetailsTest {
 protected:
  static weftd::ServerOptions Limited() {
    weftd::ServerOptions options;
    options.orchestrator.max_active_runs = 1;
    options.orchestrator.retry_after = absl::Seconds(2);
    options.orchestrator.limits.max_plan_nodes = 3;
    options.tasks.max_running_tasks = 1;
    options.tasks.max_queued_tasks = 0;
    options.tasks.retry_after = absl::Seconds(3);
    options.pools = {{"default", 1, 0}};
    options.lazies.max_values = 1;
    return options;
  }
  LimitedServerTest() : ErrorDetailsTest(Limited()) {}
};

TEST_F(LimitedServerTest, ALargePlanSaysTheFlagAndTheLimit) {
  absl::Status s = Run(R"({"plan": {"sequence": {"children": [
      {"call": {"handler": "value", "args": {"value": 1}}}, {"call": {"handler": "value", "args": {"value": 1}}},
      {"call": {"handler": "value", "args": {"value": 1}}}]}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "PLAN_TOO_LARGE");
  EXPECT_EQ(info.metadata().at("flag"), "--max_plan_nodes");
  EXPECT_EQ(info.metadata().at("limit"), "3");
}

TEST_F(LimitedServerTest, TooManyRunsSaysWhenToRetry) {
  std::thread busy([&] {
    weft::v1::RunResponse response;
    f_.Run(R"({"plan": {"call": {"handler": "sleep",
               "args": {"duration": "1s"}}}})",
           &response);
  });
  ASSERT_TRUE(f_.WaitForActiveRuns(1));
  absl::Status s =
      Run(R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  busy.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "TOO_MANY_RUNS");
  EXPECT_EQ(info.metadata().at("flag"), "--max_active_runs");
  EXPECT_EQ(info.metadata().at("limit"), "1");
  EXPECT_EQ(common::RetryDelay(s), absl::Seconds(2));
}

TEST_F(LimitedServerTest, ALargeRequestFindingItsThreadBusySaysWhenToRetry) {
  // Requests over 256 KiB are read on one thread with --max_active_runs (1)
  // waiting: take both places.
  Notification release;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(f_.server()
                    .large_requests()
                    .Submit([&release] {
                      release.WaitForNotificationWithTimeout(kWait);
                    })
                    .ok());
  }
  const std::string big = absl::StrCat(
      R"({"plan": {"call": {"handler": "value", "args": {"value": ")",
      std::string(300'000, 'q'), R"("}}}})");
  grpc::ClientContext context;
  weft::v1::RunResponse response;
  absl::Status s = Received(f_.orchestrator().Run(
      &context, FromJson<weft::v1::RunRequest>(big), &response));
  release.Notify();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  // gRPC's own retry policy reads the delay from this trailer, as for the
  // other refusals of a Run.
  auto pushback =
      context.GetServerTrailingMetadata().find("grpc-retry-pushback-ms");
  ASSERT_NE(pushback, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(pushback->second.data(), pushback->second.size()),
            "2000");
  EXPECT_THAT(s.message(),
              HasSubstr("too many requests over 256 KiB are waiting to be "
                        "read: the large-request thread takes one at a time "
                        "and at most 1 waiting (--max_active_runs)"));
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "POOL_FULL");
  EXPECT_EQ(info.metadata().at("flag"), "--max_active_runs");
  EXPECT_EQ(info.metadata().at("limit"), "1");
  EXPECT_EQ(common::RetryDelay(s), absl::Seconds(2));
  // Once the thread is free the same request runs.
  EXPECT_TRUE(f_.WaitFor([&] { return Run(big).ok(); }));
}

TEST_F(LimitedServerTest, AFullTaskQueueSaysWhenToRetry) {
  absl::StatusOr<weft::v1::Task> running = CreateTask(
      R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "60s"}}}})");
  ASSERT_TRUE(running.ok()) << running.status();
  absl::StatusOr<weft::v1::Task> refused = CreateTask(
      R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})");
  ASSERT_FALSE(refused.ok());
  const absl::Status& s = refused.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "TASK_QUEUE_FULL");
  EXPECT_EQ(info.metadata().at("flag"), "--max_queued_tasks");
  EXPECT_EQ(info.metadata().at("limit"), "0");
  EXPECT_EQ(common::RetryDelay(s), absl::Seconds(3));
}

TEST_F(LimitedServerTest, AFullPoolFailsTheNodeWithItsReason) {
  // One thread and no queue: the second is refused while the first hashes
  // (and is cancelled then: the parallel fails fast).
  weft::v1::NodeOutcome o = MustRun(R"({"plan": {"parallel": {"children": [
      {"call": {"handler": "hash", "args": {"data": "a", "rounds": 100000000}}},
      {"call": {"handler": "hash", "args": {"data": "b", "rounds": 1}}}]}}})");
  ASSERT_EQ(o.children_size(), 2);
  EXPECT_EQ(o.error().reason(), "POOL_FULL");
  EXPECT_EQ(o.error().code(), "RESOURCE_EXHAUSTED");
}

TEST_F(LimitedServerTest, LazyValueErrorsTellTheirKindApart) {
  auto create = [&](absl::string_view json) {
    return Call(&weft::v1::Orchestrator::Stub::CreateLazyValue, json);
  };
  ASSERT_TRUE(create(R"({"lazyValueId": "broken", "lazyValue": {"plan":
      {"call": {"handler": "fail", "args": {"code": "NOT_FOUND"}}}}})")
                  .ok());
  // The same id, another definition.
  absl::Status s = create(R"({"lazyValueId": "broken", "lazyValue": {"plan":
      {"call": {"handler": "value", "args": {"value": 1}}}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Info(s).reason(), "LAZY_VALUE_EXISTS");
  EXPECT_EQ(Resource(s), "weft.v1.LazyValue lazyValues/broken");
  // Beyond --max_lazy_values.
  s = create(R"({"lazyValueId": "more", "lazyValue": {"plan":
      {"call": {"handler": "value", "args": {"value": 1}}}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Info(s).reason(), "LAZY_STORE_FULL");
  EXPECT_EQ(Info(s).metadata().at("flag"), "--max_lazy_values");

  // NOT_FOUND both, told apart by the reason.
  s = Call(&weft::v1::Orchestrator::Stub::ResolveLazyValue,
           R"({"name": "lazyValues/nope"})");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Info(s).reason(), "LAZY_VALUE_NOT_FOUND");
  EXPECT_EQ(Resource(s), "weft.v1.LazyValue lazyValues/nope");
  s = Call(&weft::v1::Orchestrator::Stub::ResolveLazyValue,
           R"({"name": "lazyValues/broken"})");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  google::rpc::ErrorInfo info = Info(s);
  EXPECT_EQ(info.reason(), "LAZY_COMPUTATION_FAILED");
  EXPECT_EQ(info.metadata().at("node_reason"), "FAILED_BY_PLAN");
  EXPECT_EQ(Resource(s), "");
}

class LazyResolveTest : public ErrorDetailsTest {};

TEST_F(LazyResolveTest, TheAnswerSaysHitGenerationAndWhen) {
  ASSERT_TRUE(Call(&weft::v1::Orchestrator::Stub::CreateLazyValue,
                   R"({"lazyValueId": "v", "lazyValue": {"plan":
      {"call": {"handler": "value", "args": {"value": 7}}}}})")
                  .ok());
  auto resolve = [&] {
    grpc::ClientContext context;
    weft::v1::ResolveLazyValueResponse response;
    weft::v1::ResolveLazyValueRequest request;
    request.set_name("lazyValues/v");
    grpc::Status s =
        f_.orchestrator().ResolveLazyValue(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  };
  const absl::Time before = absl::Now();
  weft::v1::ResolveLazyValueResponse first = resolve();
  EXPECT_EQ(first.value().number_value(), 7);
  EXPECT_FALSE(first.cache_hit());
  EXPECT_EQ(first.generation(), 0);
  EXPECT_GE(first.compute_time().seconds(), absl::ToUnixSeconds(before) - 1);
  weft::v1::ResolveLazyValueResponse second = resolve();
  EXPECT_TRUE(second.cache_hit());
  EXPECT_EQ(second.compute_time().seconds(), first.compute_time().seconds());
  EXPECT_EQ(second.compute_time().nanos(), first.compute_time().nanos());

  ASSERT_TRUE(Call(&weft::v1::Orchestrator::Stub::ResetLazyValue,
                   R"({"name": "lazyValues/v"})")
                  .ok());
  weft::v1::ResolveLazyValueResponse third = resolve();
  EXPECT_FALSE(third.cache_hit());
  EXPECT_EQ(third.generation(), 1);
}

}  // namespace
}  // namespace weft::testing
