// weft.v1.Orchestrator end to end over loopback: real server, real stubs.

#include <atomic>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/deep.h"
#include "tests/testing/time.h"

namespace weft::testing {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::DeepArgsBytes;
using ::weft::testing::DeepPlanBytes;
using weft::v1::NodeOutcome;
using weft::v1::RunResponse;

constexpr char kDashboard[] = R"({"plan": {"parallel": {"children": [
  {"id": "user",  "call": {"handler": "sleep", "args": {"duration": "0.3s", "value": {"name": "Ada"}}}},
  {"id": "posts", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": ["p1", "p2"]}}},
  {"id": "stats", "call": {"handler": "value", "args": {"value": {"followers": 42}}}}
]}}})";

TEST(OrchestratorServiceTest, RunsTheDashboardPlanWithItsChildrenAtOnce) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(kDashboard, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const NodeOutcome& root = response.outcome();
  EXPECT_EQ(root.state(), weft::v1::NODE_STATE_SUCCEEDED);
  // Each value once, at its leaf; the parallel's is built from them.
  EXPECT_FALSE(root.has_value());
  EXPECT_EQ(root.join(), weft::v1::JOIN_ALL);
  EXPECT_EQ(
      ToJson(common::AssembleValue(root)),
      R"({"posts":["p1","p2"],"stats":{"followers":42},"user":{"name":"Ada"}})");
  ASSERT_EQ(root.children_size(), 3);
  // The two sleeps overlapped: each started before the other ended.
  const NodeOutcome& user = root.children(0);
  const NodeOutcome& posts = root.children(1);
  EXPECT_LT(ToTime(user.start_time()), ToTime(posts.end_time()));
  EXPECT_LT(ToTime(posts.start_time()), ToTime(user.end_time()));
  // The root ended with its slowest child, and the sleeps took their time.
  EXPECT_GE(ToTime(root.end_time()), ToTime(user.end_time()));
  EXPECT_GE(ToTime(user.end_time()) - ToTime(user.start_time()),
            absl::Milliseconds(300));
}

TEST(OrchestratorServiceTest, RootOnlyDetailBuildsNoChildren) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(
      f.Run(
           R"({"detail": "OUTCOME_DETAIL_ROOT", "plan": {"parallel": {"children": [
      {"id": "a", "call": {"handler": "value", "args": {"value": 1}}}]}}})",
           &response)
          .ok());
  EXPECT_EQ(response.outcome().children_size(), 0);
  EXPECT_EQ(ToJson(common::AssembleValue(response.outcome())), R"({"a":1})");
}

// A Run of two 300 KB values in sequences: 600 KB of values, once each.
std::string TwoValuesRun(absl::string_view detail) {
  const std::string call =
      absl::StrCat(R"({"call": {"handler": "value", "args": {"value": ")",
                   std::string(300'000, 'v'), R"("}}})");
  return absl::StrCat(R"({)", detail, R"("plan": {"sequence": {"children": [
      {"sequence": {"children": [)",
                      call, ",", call, "]}}]}}}");
}

TEST(OrchestratorServiceTest,
     AnOutcomeOverTheLimitIsTheRootFailedAndTheRunStops) {
  weftd::ServerOptions options;
  options.orchestrator.max_outcome_bytes = 500'000;
  ServerFixture f(options);
  RunResponse response;
  ASSERT_TRUE(f.Run(TwoValuesRun(""), &response).ok());
  const NodeOutcome& root = response.outcome();
  EXPECT_EQ(root.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(root.error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(root.error().message(),
              HasSubstr("passed 500000 bytes, the most an answer may carry "
                        "(--max_outcome_bytes); return smaller values"));
  EXPECT_EQ(root.children_size(), 0);
  // Within the limit, the full outcome holds each value once.
  options.orchestrator.max_outcome_bytes = 700'000;
  ServerFixture g(options);
  ASSERT_TRUE(g.Run(TwoValuesRun(""), &response).ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_LT(response.ByteSizeLong(), 610'000u);
  // Everything the runs held has been given back.
  EXPECT_TRUE(WaitFor([&] { return f.server().inflight().used() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return g.server().inflight().used() == 0; }));
}

TEST(OrchestratorServiceTest,
     AFullOutcomeOverTheLimitWithItsNodesSaysAskForRoot) {
  // 2,000 values of 1 byte fit; their 2,000 nodes' ids and times do not.
  weftd::ServerOptions options;
  options.orchestrator.max_outcome_bytes = 50'000;
  ServerFixture f(options);
  std::string children;
  for (int i = 0; i < 2000; ++i) {
    absl::StrAppend(&children, i ? "," : "",
                    R"({"call": {"handler": "value", "args": {"value": 1}}})");
  }
  const std::string plan =
      absl::StrCat(R"({"parallel": {"children": [)", children, "]}}");
  RunResponse response;
  ASSERT_TRUE(f.Run(absl::StrCat(R"({"plan": )", plan, "}"), &response).ok());
  EXPECT_EQ(response.outcome().error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(response.outcome().error().message(),
              HasSubstr("(--max_outcome_bytes); ask for OUTCOME_DETAIL_ROOT"));
  EXPECT_EQ(response.outcome().error().reason(), "ANSWER_TOO_LARGE");
  ASSERT_TRUE(
      f.Run(absl::StrCat(R"({"detail": "OUTCOME_DETAIL_ROOT", "plan": )", plan,
                         "}"),
            &response)
          .ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(response.outcome().value().list_value().values_size(), 2000);
}

TEST(OrchestratorServiceTest, RunsHoldingMoreThanTheInflightBudgetAreRefused) {
  weftd::ServerOptions options;
  options.max_inflight_bytes = 1'800'000;
  ServerFixture f(options);
  RunResponse response;
  // The request (600 KB, parsed into an arena of 1 MiB) fits, but not the
  // values besides.
  ASSERT_TRUE(f.Run(TwoValuesRun(""), &response).ok());
  EXPECT_EQ(response.outcome().error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(response.outcome().error().message(),
              HasSubstr("(--max_inflight_bytes); this run needs"));
  EXPECT_TRUE(WaitFor([&] { return f.server().inflight().used() == 0; }));
  EXPECT_GT(f.server().inflight().refusals(), 0);
}

TEST(OrchestratorServiceTest, ARequestTheInflightBudgetCannotHoldIsRefused) {
  weftd::ServerOptions options;
  options.max_inflight_bytes = 200'000;
  ServerFixture f(options);
  RunResponse response;
  grpc::Status s = f.Run(TwoValuesRun(""), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("(--max_inflight_bytes); this run's request needs"));
  EXPECT_THAT(s.error_message(), HasSubstr("more. Retry later"));
}

TEST(OrchestratorServiceTest, UndefinedEnumNumbersAndNaNAreRefused) {
  ServerFixture f;
  weft::v1::RunRequest run;
  run.mutable_plan()->mutable_call()->set_handler("value");
  auto& args =
      *run.mutable_plan()->mutable_call()->mutable_args()->mutable_fields();
  args["value"].set_number_value(1);
  run.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  RunResponse response;
  {
    grpc::ClientContext context;
    grpc::Status s = f.orchestrator().Run(&context, run, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "detail: unknown OutcomeDetail 7; use OUTCOME_DETAIL_FULL or "
              "OUTCOME_DETAIL_ROOT");
  }
  {
    grpc::ClientContext context;
    weft::v1::CreateTaskRequest create;
    *create.mutable_plan() = run.plan();
    create.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
    weft::v1::Task task;
    EXPECT_EQ(f.orchestrator().CreateTask(&context, create, &task).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  run.set_detail(weft::v1::OUTCOME_DETAIL_FULL);
  args["value"].mutable_list_value()->add_values()->set_number_value(
      std::numeric_limits<double>::quiet_NaN());
  {
    grpc::ClientContext context;
    grpc::Status s = f.orchestrator().Run(&context, run, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "plan.call.args.value: holds NaN or an infinity, which JSON "
              "cannot carry; use a string or null");
  }
  args["value"].set_number_value(std::numeric_limits<double>::infinity());
  {
    grpc::ClientContext context;
    EXPECT_EQ(f.orchestrator().Run(&context, run, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST(OrchestratorServiceTest, FailedPlanIsAnOutcomeNotAnRpcError) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(R"({"plan": {"parallel": {"children": [
      {"id": "slow", "call": {"handler": "sleep", "args": {"duration": "3600s"}}},
      {"id": "bad", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "down", "after": "0.05s"}}}]}}})",
                         &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const NodeOutcome& root = response.outcome();
  EXPECT_EQ(root.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(root.error().code(), "UNAVAILABLE");
  EXPECT_EQ(root.error().message(), "children[1] \"bad\": down");
  EXPECT_EQ(root.children(0).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_FALSE(root.has_value());
}

struct BadRequest {
  const char* name;
  const char* json;
  const char* message;
  friend void PrintTo(const BadRequest& r, std::ostream* os) { *os << r.name; }
};

class BadRequestTest : public ::testing::TestWithParam<BadRequest> {
 protected:
  static void SetUpTestSuite() { fixture_ = new ServerFixture(); }
  static void TearDownTestSuite() { delete fixture_; }
  static ServerFixture* fixture_;
};
ServerFixture* BadRequestTest::fixture_ = nullptr;

TEST_P(BadRequestTest, GetsInvalidArgumentNamingThePathAndTheServerStaysUp) {
  RunResponse response;
  grpc::Status s = fixture_->Run(GetParam().json, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(GetParam().message));
  ASSERT_TRUE(
      fixture_
          ->Run(
              R"({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})",
              &response)
          .ok());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadRequestTest,
    ::testing::Values(
        BadRequest{"NoPlan", R"({})", "plan: missing; a request needs a plan"},
        BadRequest{"NodeWithNoKind", R"({"plan": {"id": "x"}})",
                   "plan: the node has no kind; set one of call, parallel, "
                   "race, offload, sequence"},
        BadRequest{
            "EmptyParallel", R"({"plan": {"parallel": {"children": []}}})",
            "plan.parallel.children: a parallel needs at least one child"},
        BadRequest{"DuplicateIds",
                   R"({"plan": {"parallel": {"children": [
                     {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
                     {"id": "a", "call": {"handler": "value", "args": {"value": 2}}}]}}})",
                   "plan.parallel.children[1].id: duplicate id \"a\""},
        BadRequest{
            "UnknownHandler",
            R"({"plan": {"parallel": {"children": [
                     {"call": {"handler": "value", "args": {"value": 1}}},
                     {"call": {"handler": "value", "args": {"value": 1}}},
                     {"call": {"handler": "nope"}}]}}})",
            "plan.parallel.children[2].call.handler: unknown handler \"nope\""},
        BadRequest{"MissingArgument",
                   R"({"plan": {"call": {"handler": "sleep", "args": {}}}})",
                   "plan.call.args.duration: required by handler \"sleep\" but "
                   "missing"},
        BadRequest{"MistypedArgument",
                   R"({"plan": {"parallel": {"children": [
                     {"call": {"handler": "value", "args": {"value": 1}}},
                     {"call": {"handler": "value", "args": {"value": 1}}},
                     {"call": {"handler": "sleep", "args": {"duration": true}}}]}}})",
                   "plan.parallel.children[2].call.args.duration: expected a "
                   "duration"},
        BadRequest{
            "NegativeArgument",
            R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "-2s"}}}})",
            "plan.call.args.duration: must not be negative"},
        BadRequest{
            "UnknownCodeName",
            R"({"plan": {"call": {"handler": "fail", "args": {"code": "UNAVAILBLE"}}}})",
            "plan.call.args.code: \"UNAVAILBLE\" is not a status code name"},
        BadRequest{
            "NegativeTimeout",
            R"({"plan": {"timeout": "-1s", "call": {"handler": "value", "args": {"value": 1}}}})",
            "plan.timeout: must be a positive duration"}),
    [](const auto& info) { return std::string(info.param.name); });

// Sends raw request bytes to Run, bypassing client-side parsers and limits.
grpc::Status RunRaw(ServerFixture& f, const std::string& bytes) {
  grpc::GenericStub stub(f.channel());
  grpc::ClientContext context;
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/weft.v1.Orchestrator/Run", grpc::StubOptions(),
                 &request, &reply, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  return status;
}

std::string Nested(int depth) {
  std::string json = R"({"call": {"handler": "value", "args": {"value": 1}}})";
  for (int i = 1; i < depth; ++i) {
    json = absl::StrCat(R"({"parallel": {"children": [)", json, "]}}");
  }
  return absl::StrCat(R"({"plan": )", json, "}");
}

TEST(OrchestratorServiceTest, PlanAtTheDepthLimitRuns) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(Nested(16), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
}

TEST(OrchestratorServiceTest, PlanOverTheDepthLimitNamesTheFlag) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(Nested(17), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr("nested deeper than 16 levels, the limit (--max_plan_depth)"));
}

TEST(OrchestratorServiceTest, PlanDeeperThanProtobufParsesStillNamesTheFlag) {
  ServerFixture f;
  // 300 plan levels are 600 message levels: far past protobuf's default of
  // 100, which without care gRPC answers with a bare INTERNAL.
  grpc::Status s = RunRaw(f, DeepPlanBytes(300));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr("nested deeper than 16 levels, the limit (--max_plan_depth)"));
  EXPECT_THAT(s.error_message(),
              ::testing::StartsWith("plan.parallel.children[0]."));
  RunResponse response;
  ASSERT_TRUE(f.Run(Nested(2), &response).ok());
}

TEST(OrchestratorServiceTest, ArgumentsNestedTooDeeplyAreNamed) {
  ServerFixture f;
  grpc::Status s = RunRaw(f, DeepArgsBytes(200));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              "plan.call.args: arguments nest deeper than values may: at most "
              "16 levels of lists and objects (--max_value_depth)");
}

TEST(OrchestratorServiceTest, PlanOverTheNodeLimitNamesTheFlag) {
  weftd::ServerOptions options;
  options.orchestrator.limits.max_plan_nodes = 100;
  ServerFixture f(options);
  std::string children;
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&children, i ? "," : "",
                    R"({"call": {"handler": "value", "args": {"value": 1}}})");
  }
  RunResponse response;
  grpc::Status s = f.Run(
      absl::StrCat(R"({"plan": {"parallel": {"children": [)", children, "]}}}"),
      &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("more than 100 nodes, the limit (--max_plan_nodes)"));
}

TEST(OrchestratorServiceTest, BytesThatAreNotARequestAreInvalidArgument) {
  ServerFixture f;
  grpc::Status s = RunRaw(f, std::string("\x0a\xff\xff\xff\xff\x0f garbage"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("not a valid weft.v1.RunRequest message"));
}

TEST(OrchestratorServiceTest, RequestOverTheMessageLimitIsRefused) {
  weftd::ServerOptions options;
  options.max_message_bytes = 1024;
  ServerFixture f(options);
  RunResponse response;
  grpc::Status s =
      f.Run(absl::StrCat(
                R"({"plan": {"call": {"handler": "value", "args": {"value": ")",
                std::string(2000, 'x'), R"("}}}})"),
            &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Starts a Run on the callback API; `done` is notified with its status.
struct AsyncRun {
  grpc::ClientContext context;
  weft::v1::RunRequest request;
  RunResponse response;
  grpc::Status status;
  Notification done;

  void Start(weft::v1::Orchestrator::Stub& stub, absl::string_view json) {
    request = FromJson<weft::v1::RunRequest>(json);
    stub.async()->Run(&context, &request, &response, [this](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
  }
};

constexpr char kLongSleep[] =
    R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "3600s"}}}})";

TEST(OrchestratorServiceTest,
     RunsBeyondTheActiveLimitGetResourceExhaustedWithARetryDelay) {
  weftd::ServerOptions options;
  options.orchestrator.max_active_runs = 2;
  ServerFixture f(options);
  AsyncRun a, b;
  a.Start(f.orchestrator(), kLongSleep);
  b.Start(f.orchestrator(), kLongSleep);
  ASSERT_TRUE(f.WaitForActiveRuns(2));

  grpc::ClientContext context;
  RunResponse response;
  grpc::Status s = f.orchestrator().Run(
      &context, FromJson<weft::v1::RunRequest>(kLongSleep), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr("too many runs in flight: 2 of at most 2 (--max_active_runs); "
                "retry after 1s"));
  auto pushback =
      context.GetServerTrailingMetadata().find("grpc-retry-pushback-ms");
  ASSERT_NE(pushback, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(pushback->second.data(), pushback->second.size()),
            "1000");

  a.context.TryCancel();
  b.context.TryCancel();
  ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(b.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(f.WaitForActiveRuns(0));
}

TEST(OrchestratorServiceTest, CallerCancelStopsThePlanAndFreesItsSlot) {
  ServerFixture f;
  AsyncRun run;
  run.Start(f.orchestrator(), kLongSleep);
  ASSERT_TRUE(f.WaitForActiveRuns(1));
  run.context.TryCancel();
  ASSERT_TRUE(run.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(run.status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(f.WaitForActiveRuns(0));
}

TEST(OrchestratorServiceTest, CallerDeadlineBoundsThePlan) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(kLongSleep, &response, absl::Milliseconds(200));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(f.WaitForActiveRuns(0));
}

TEST(OrchestratorServiceTest, RunWithoutDeadlineIsBoundedByMaxRunDuration) {
  weftd::ServerOptions options;
  options.orchestrator.max_run_duration = absl::Milliseconds(200);
  ServerFixture f(options);
  RunResponse response;
  grpc::Status s = f.Run(kLongSleep, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(response.outcome().error().code(), "DEADLINE_EXCEEDED");
  EXPECT_THAT(response.outcome().error().message(),
              HasSubstr("longer than 0.200s, the limit for a call without a "
                        "deadline (--max_run_duration)"));
}

TEST(OrchestratorServiceTest,
     ShutdownLetsRunsFinishWithinGraceThenCancelsTheRest) {
  ServerFixture f;
  AsyncRun quick, slow;
  quick.Start(
      f.orchestrator(),
      R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "0.5s", "value": "done"}}}})");
  slow.Start(f.orchestrator(), kLongSleep);
  ASSERT_TRUE(f.WaitForActiveRuns(2));

  weftd::ShutdownReport report;
  std::thread stopper([&] { report = f.server().Shutdown(absl::Seconds(5)); });

  // At once: health says NOT_SERVING and new runs are refused.
  ASSERT_TRUE(f.WaitUntilNotServing());
  RunResponse refused;
  grpc::Status s = f.Run(kLongSleep, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("shutting down"));

  // The quick run finishes normally within the grace period.
  ASSERT_TRUE(quick.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(quick.status.ok()) << quick.status.error_message();
  EXPECT_EQ(quick.response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);

  // The slow one is cancelled when the grace period ends.
  ASSERT_TRUE(slow.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(slow.status.ok()) << slow.status.error_message();
  EXPECT_EQ(slow.response.outcome().state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(slow.response.outcome().error().message(), "server shutting down");
  stopper.join();
  EXPECT_EQ(report.runs_in_flight, 2);
  EXPECT_EQ(report.runs_cancelled, 1);
}

TEST(OrchestratorServiceTest, EndingTheGracePeriodCancelsRunsAtOnce) {
  ServerFixture f;
  AsyncRun slow;
  slow.Start(f.orchestrator(), kLongSleep);
  ASSERT_TRUE(f.WaitForActiveRuns(1));
  Notification stopped;
  std::thread stopper([&] {
    f.server().Shutdown(absl::Hours(1));
    stopped.Notify();
  });
  ASSERT_TRUE(f.WaitUntilNotServing());
  EXPECT_FALSE(stopped.HasBeenNotified());
  f.server().EndGracePeriod();  // What weftd does on a second signal.
  ASSERT_TRUE(slow.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(slow.response.outcome().state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(slow.response.outcome().error().message(), "server shutting down");
  ASSERT_TRUE(stopped.WaitForNotificationWithTimeout(kWait));
  stopper.join();
}

// The scenarios the engine issue asks grpcurl to run, end to end.
TEST(OrchestratorServiceTest, RaceWhoseSlowWinnerBeatsAFastFailingChild) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(f.Run(R"({"plan": {"race": {"children": [
      {"id": "flaky", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "after": "0.01s"}}},
      {"id": "steady", "call": {"handler": "sleep", "args": {"duration": "0.3s", "value": "found"}}}]}}})",
                    &response)
                  .ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(response.outcome().winner(), "steady");
  EXPECT_EQ(ToJson(common::AssembleValue(response.outcome())), R"("found")");
}

TEST(OrchestratorServiceTest, HedgedRaceWithAFallbackOnItsOwnTimeout) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(f.Run(R"({"plan": {"race": {"hedgeDelay": "0.05s", "children": [
      {"id": "primary",  "call": {"handler": "sleep", "args": {"duration": "5s", "value": "a"}}},
      {"id": "backup",   "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": "b"}}},
      {"id": "fallback", "timeout": "2s", "call": {"handler": "sleep", "args": {"duration": "5s", "value": "c"}}}]}}})",
                    &response)
                  .ok());
  const NodeOutcome& race = response.outcome();
  EXPECT_EQ(race.winner(), "backup");
  // The backup started a hedge delay after the primary.
  EXPECT_GE(ToTime(race.children(1).start_time()) -
                ToTime(race.children(0).start_time()),
            absl::Milliseconds(50));
  EXPECT_EQ(race.children(0).state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST(OrchestratorServiceTest, QuorumOfTwoOutOfThree) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(
      f.Run(
           R"({"plan": {"parallel": {"join": "JOIN_QUORUM", "quorum": 2, "children": [
      {"id": "r1", "call": {"handler": "sleep", "args": {"duration": "0.05s", "value": 1}}},
      {"id": "r2", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}},
      {"id": "r3", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": 3}}}]}}})",
           &response)
          .ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(common::AssembleValue(response.outcome())),
            R"({"r1":1,"r3":3})");
}

TEST(OrchestratorServiceTest, OffloadedHashBesideASleepThatEndsOnTime) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(f.Run(R"({"plan": {"parallel": {"children": [
      {"id": "digest", "offload": {"pool": "default", "child":
         {"call": {"handler": "hash", "args": {"data": "large payload", "rounds": 200000}}}}},
      {"id": "heartbeat", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": "on time"}}}]}}})",
                    &response)
                  .ok());
  const NodeOutcome& root = response.outcome();
  ASSERT_EQ(root.state(), weft::v1::NODE_STATE_SUCCEEDED) << root.DebugString();
  EXPECT_EQ(common::AssembleValue(root)
                .struct_value()
                .fields()
                .at("heartbeat")
                .string_value(),
            "on time");
  EXPECT_EQ(common::AssembleValue(root)
                .struct_value()
                .fields()
                .at("digest")
                .string_value()
                .size(),
            64u);
  // How late the heartbeat is beside a busy pool is measured in bench/.
}

TEST(OrchestratorServiceTest, RetriedFailCountsItsAttempts) {
  ServerFixture f;
  RunResponse response;
  ASSERT_TRUE(
      f.Run(R"({"plan": {"retry": {"maxAttempts": 3, "initialBackoff": "0.01s"},
      "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "still down"}}}})",
            &response)
          .ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(response.outcome().attempts(), 3);
  EXPECT_EQ(response.outcome().error().message(), "still down");
}

TEST(OrchestratorServiceTest, UnknownPoolIsInvalidArgument) {
  ServerFixture f;
  RunResponse response;
  grpc::Status s = f.Run(R"({"plan": {"offload": {"pool": "gpu", "child":
      {"call": {"handler": "value", "args": {"value": 1}}}}}})",
                         &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr(
          "plan.offload.pool: unknown pool \"gpu\"; pools: default (--pools)"));
}

TEST(OrchestratorServiceTest, LargeRequestRunsLikeASmallOne) {
  // Over 256 KiB: parsed and compiled on the large-request thread.
  weftd::ServerOptions options;
  options.orchestrator.limits.max_plan_nodes = 20'000;
  ServerFixture f(options);
  weft::v1::RunRequest request;
  request.set_detail(weft::v1::OUTCOME_DETAIL_ROOT);
  for (int i = 0; i < 9000; ++i) {
    auto* call = request.mutable_plan()
                     ->mutable_parallel()
                     ->add_children()
                     ->mutable_call();
    call->set_handler("value");
    (*call->mutable_args()->mutable_fields())["value"].set_number_value(i);
  }
  ASSERT_GT(request.ByteSizeLong(), 256u << 10);
  grpc::ClientContext context;
  RunResponse response;
  ASSERT_TRUE(f.orchestrator().Run(&context, request, &response).ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  ASSERT_EQ(
      common::AssembleValue(response.outcome()).list_value().values_size(),
      9000);
  EXPECT_EQ(common::AssembleValue(response.outcome())
                .list_value()
                .values(8999)
                .number_value(),
            8999);
  // A bad large request is refused the same way.
  request.mutable_plan()->mutable_parallel()->mutable_children(5)->clear_call();
  grpc::ClientContext again;
  grpc::Status s = f.orchestrator().Run(&again, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("plan.parallel.children[5]: the node has no kind"));
}

TEST(OrchestratorServiceTest, ListHandlersDescribesEachHandlerAndItsArguments) {
  ServerFixture f;
  grpc::ClientContext context;
  weft::v1::ListHandlersResponse response;
  ASSERT_TRUE(f.orchestrator().ListHandlers(&context, {}, &response).ok());
  ASSERT_EQ(response.handlers_size(), 5);
  EXPECT_EQ(response.handlers(0).name(), "fail");
  EXPECT_EQ(response.handlers(1).name(), "hash");
  EXPECT_TRUE(response.handlers(1).blocking());
  EXPECT_EQ(response.handlers(2).name(), "http");
  EXPECT_FALSE(response.handlers(2).blocking());
  EXPECT_EQ(response.handlers(2).arguments(0).name(), "url");
  EXPECT_TRUE(response.handlers(2).arguments(0).required());
  EXPECT_EQ(response.handlers(3).name(), "sleep");
  EXPECT_EQ(response.handlers(4).name(), "value");
  const weft::v1::Handler& sleep = response.handlers(3);
  EXPECT_FALSE(sleep.blocking());
  ASSERT_EQ(sleep.arguments_size(), 2);
  EXPECT_EQ(sleep.arguments(0).name(), "duration");
  EXPECT_EQ(sleep.arguments(0).type(), weft::v1::ARGUMENT_TYPE_DURATION);
  EXPECT_TRUE(sleep.arguments(0).required());
  EXPECT_EQ(sleep.arguments(1).type(), weft::v1::ARGUMENT_TYPE_ANY);
  EXPECT_FALSE(sleep.arguments(1).required());
}

// The same request bytes again run from the plan compiled the first time:
// each run is a run of its own (its own times), and a request that differs
// in any field (here the outcome detail) is compiled on its own. (Every
// object here has one field: a message built anew may write a map's
// fields in another order, and other bytes are another entry.)
TEST(OrchestratorServiceTest, TheSameRequestAgainRunsAgainFromTheCachedPlan) {
  ServerFixture f;
  constexpr char kPlan[] = R"("plan": {"sequence": {"children": [
      {"id": "nap", "call": {"handler": "sleep", "args": {"duration": "0.01s"}}},
      {"id": "v", "call": {"handler": "value", "args": {"value": {"n": 7}}}}]}})";
  const service::PlanCache& cache = f.server().orchestrator().plan_cache();
  RunResponse first;
  ASSERT_TRUE(f.Run(absl::StrCat("{", kPlan, "}"), &first).ok());
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.hits(), 0);
  RunResponse second;
  ASSERT_TRUE(f.Run(absl::StrCat("{", kPlan, "}"), &second).ok());
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(second.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(common::AssembleValue(second.outcome())),
            ToJson(common::AssembleValue(first.outcome())));
  ASSERT_EQ(second.outcome().children_size(), 2);
  EXPECT_GE(ToTime(second.outcome().start_time()),
            ToTime(first.outcome().end_time()));
  EXPECT_NE(second.outcome().children(0).start_time().SerializeAsString(),
            first.outcome().children(0).start_time().SerializeAsString());

  RunResponse root_only;
  ASSERT_TRUE(
      f.Run(absl::StrCat(R"({"detail": "OUTCOME_DETAIL_ROOT", )", kPlan, "}"),
            &root_only)
          .ok());
  EXPECT_EQ(root_only.outcome().children_size(), 0);
  EXPECT_EQ(ToJson(common::AssembleValue(root_only.outcome())),
            R"([null,{"n":7}])");
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.misses(), 2);

  // Refused requests are not kept, and are refused again: a plan that does
  // not compile, and one that compiles with an outcome detail the API does
  // not define.
  RunResponse refused;
  auto bad_detail =
      FromJson<weft::v1::RunRequest>(absl::StrCat("{", kPlan, "}"));
  bad_detail.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  for (int i = 0; i < 2; ++i) {
    grpc::Status s = f.Run(
        R"({"plan": {"call": {"handler": "nope", "args": {}}}})", &refused);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("unknown handler"));
    grpc::ClientContext context;
    s = f.orchestrator().Run(&context, bad_detail, &refused);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("detail"));
  }
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 6);
}

// Runs of one cached plan at once share its compiled nodes (ThreadSanitizer
// runs this too): each gets its own outcome.
TEST(OrchestratorServiceTest, ConcurrentRunsOfOneCachedPlanEachGetTheirOwn) {
  ServerFixture f;
  constexpr char kRequest[] = R"({"plan": {"parallel": {"children": [
      {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
      {"id": "b", "retry": {"max_attempts": 2, "initial_backoff": "0.001s"},
       "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "x"}}},
      {"id": "c", "timeout": "5s", "call": {"handler": "sleep", "args": {"duration": "0.001s", "value": 3}}}],
      "join": "JOIN_ALL_SETTLED"}}})";
  // One message, so every call sends the same bytes (a message built anew
  // may write the args' fields in another order).
  const auto request = FromJson<weft::v1::RunRequest>(kRequest);
  constexpr int kThreads = 4;
  constexpr int kRuns = 10;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRuns; ++i) {
        RunResponse r;
        grpc::ClientContext context;
        if (!f.orchestrator().Run(&context, request, &r).ok()) continue;
        const NodeOutcome& root = r.outcome();
        if (root.children_size() == 3 &&
            root.children(0).state() == weft::v1::NODE_STATE_SUCCEEDED &&
            root.children(1).state() == weft::v1::NODE_STATE_FAILED &&
            root.children(1).attempts() == 2 &&
            root.children(2).state() == weft::v1::NODE_STATE_SUCCEEDED) {
          good++;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), kThreads * kRuns);
  // Every run looked; at most each thread's first compiled the plan again.
  const service::PlanCache& cache = f.server().orchestrator().plan_cache();
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.hits() + cache.misses(), kThreads * kRuns);
  EXPECT_GE(cache.hits(), kThreads * kRuns - kThreads);
}

// A plan with a $secret is compiled on every Run, against the secrets in
// force: one whose secret was taken away (SIGHUP) is refused, not run from
// a plan compiled when it was there.
TEST(OrchestratorServiceTest,
     APlanWithASecretIsCheckedAgainstTheSecretsInForce) {
  auto table = plan::SecretTable::Create({{"api_key", "s3cr3t"}});
  ASSERT_TRUE(table.ok());
  weftd::ServerOptions options;
  options.secrets = std::make_shared<plan::Secrets>(*table);
  std::shared_ptr<plan::Secrets> secrets = options.secrets;
  ServerFixture f(std::move(options));
  constexpr char kRequest[] = R"({"plan": {"call": {"handler": "value",
      "args": {"value": {"$secret": "api_key"}}}}})";
  RunResponse response;
  ASSERT_TRUE(f.Run(kRequest, &response).ok());
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(f.server().orchestrator().plan_cache().size(), 0u);

  auto other = plan::SecretTable::Create({{"other", "x"}});
  ASSERT_TRUE(other.ok());
  secrets->Replace(*other);
  grpc::Status s = f.Run(kRequest, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("\"api_key\" is not a secret this weftd knows"));
}

}  // namespace
}  // namespace weft::testing
