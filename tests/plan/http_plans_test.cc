// Plans of http calls against the local HTTP fixture, on the real event
// loop: the dashboard, failover between a failing and a slow mirror, retries
// on 503, node timeouts, and the guard's refusals never retried.

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "server/engine/event_loop.h"
#include "server/handlers/http.h"
#include "server/plan/compiler.h"
#include "server/plan/interpreter.h"
#include "tests/fixture/http_fixture.h"
#include "tests/testing/json.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/sync.h"

namespace weft::plan {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::HttpFixture;
using ::weft::testing::ToJson;
using weft::v1::NodeOutcome;

struct Result {
  weft::testing::Notification done;
  std::optional<NodeOutcome> outcome;
};

class HttpPlansTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fixture = HttpFixture::Start();
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *std::move(fixture);
    handlers::HttpOptions options;
    options.allow = *handlers::AllowList::Parse(
        absl::StrCat("127.0.0.1:", fixture_->port()));
    client_ = *handlers::HttpClient::Create(std::move(options));
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
    EXPECT_TRUE(handlers::RegisterHttpHandler(registry_, *client_).ok());
  }

  // Runs `json`, where FIXTURE stands for the fixture's "http://host:port".
  NodeOutcome Run(absl::string_view json) {
    const std::string plan_json =
        absl::StrReplaceAll(json, {{"FIXTURE", fixture_->Url("")}});
    auto plan = plan::Compile(weft::testing::PlanFromJson(plan_json), "plan",
                              registry_, Limits());
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return NodeOutcome();
    auto result = std::make_shared<Result>();
    RunOptions options;
    options.env = &loop_;
    Execute(*std::move(plan), std::move(options), [result](NodeOutcome o) {
      result->outcome = std::move(o);
      result->done.Notify();
    });
    EXPECT_TRUE(
        result->done.WaitForNotificationWithTimeout(weft::testing::kWait));
    return result->outcome.value_or(NodeOutcome());
  }

  static std::string Body(const NodeOutcome& o) {
    return ToJson(common::AssembleValue(o).struct_value().fields().at("body"));
  }

  engine::EventLoop loop_{2};
  std::unique_ptr<HttpFixture> fixture_;
  std::unique_ptr<handlers::HttpClient> client_;
  handlers::HandlerRegistry registry_;
};

TEST_F(HttpPlansTest, TheDashboardFetchesThreeSourcesAtOnceResultsById) {
  NodeOutcome o = Run(R"({"parallel": {"children": [
    {"id": "user",        "call": {"handler": "http", "args": {"url": "FIXTURE/users/42?delay=200"}}},
    {"id": "recentPosts", "call": {"handler": "http", "args": {"url": "FIXTURE/users/42/posts?delay=200"}}},
    {"id": "statistics",  "call": {"handler": "http", "args": {"url": "FIXTURE/stats/42?delay=200"}}}
  ]}})");
  ASSERT_EQ(o.state(), weft::v1::NODE_STATE_SUCCEEDED) << o.DebugString();
  const google::protobuf::Value value = common::AssembleValue(o);
  const auto& v = value.struct_value().fields();
  EXPECT_EQ(ToJson(v.at("user").struct_value().fields().at("body")),
            R"({"id":42,"name":"Ada Lovelace"})");
  EXPECT_THAT(ToJson(v.at("recentPosts").struct_value().fields().at("body")),
              HasSubstr("Notes on the Analytical Engine"));
  EXPECT_EQ(ToJson(v.at("statistics").struct_value().fields().at("body")),
            R"({"followers":1843,"posts":2})");
  // All three were in flight together: the fixture held three requests.
  EXPECT_EQ(fixture_->requests(), 3);
}

TEST_F(HttpPlansTest, ADashboardSourceFailingCancelsTheOthersAndSaysWhich) {
  NodeOutcome o = Run(R"({"parallel": {"children": [
    {"id": "user",  "call": {"handler": "http", "args": {"url": "FIXTURE/users/42?hang=1"}}},
    {"id": "stats", "call": {"handler": "http", "args": {"url": "FIXTURE/stats/42?status=500&delay=50"}}}
  ]}})");
  EXPECT_EQ(o.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(o.error().code(), "UNAVAILABLE");
  EXPECT_THAT(o.error().message(), HasSubstr("stats"));
  EXPECT_THAT(o.error().message(), HasSubstr("answered 500"));
  EXPECT_EQ(o.children(0).state(), weft::v1::NODE_STATE_CANCELLED);
  // The hanging request's connection was closed, not left open.
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
}

TEST_F(HttpPlansTest, FailoverTheFailingPrimaryIsToleratedTheSlowBackupWins) {
  NodeOutcome o = Run(R"({"race": {"children": [
    {"id": "primary",  "call": {"handler": "http", "args": {"url": "FIXTURE/search?server=a&status=503"}}},
    {"id": "backup",   "call": {"handler": "http", "args": {"url": "FIXTURE/search?server=b&delay=200"}}},
    {"id": "fallback", "timeout": "2s", "call": {"handler": "http", "args": {"url": "FIXTURE/search?server=c&hang=1"}}}
  ]}})");
  ASSERT_EQ(o.state(), weft::v1::NODE_STATE_SUCCEEDED) << o.DebugString();
  EXPECT_EQ(o.winner(), "backup");
  EXPECT_EQ(Body(o),
            R"({"hits":["weft","weft.v1.Orchestrator"],"server":"b"})");
  EXPECT_EQ(o.children(0).error().code(), "UNAVAILABLE");
  EXPECT_EQ(o.children(2).state(), weft::v1::NODE_STATE_CANCELLED);
  // The loser's request was abandoned on the wire.
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
}

TEST_F(HttpPlansTest, RetriesCarryACallThroughA503) {
  NodeOutcome o =
      Run(R"({"retry": {"maxAttempts": 3, "initialBackoff": "0.01s"},
    "call": {"handler": "http", "args": {"method": "POST",
      "url": "FIXTURE/send?fail_first=2&key=ada", "body": {"to": "ada@example.com"}}}})");
  ASSERT_EQ(o.state(), weft::v1::NODE_STATE_SUCCEEDED) << o.DebugString();
  EXPECT_EQ(o.attempts(), 3);
  EXPECT_EQ(fixture_->requests(), 3);
}

TEST_F(HttpPlansTest, ARefusedDestinationIsNeverRetriedWhateverTheCodesSay) {
  NodeOutcome o = Run(R"({"retry": {"maxAttempts": 5, "initialBackoff": "0.01s",
      "retryableCodes": ["PERMISSION_DENIED", "UNAVAILABLE"]},
    "call": {"handler": "http", "args": {"url": "http://10.255.255.1/x"}}})");
  EXPECT_EQ(o.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(o.error().code(), "PERMISSION_DENIED");
  EXPECT_THAT(o.error().message(),
              HasSubstr("10.255.255.1 port 80 is not allowed by --http_allow"));
  EXPECT_EQ(o.attempts(), 1);
}

TEST_F(HttpPlansTest, ANodeTimeoutAbortsTheTransfer) {
  NodeOutcome o = Run(R"({"timeout": "0.1s",
    "call": {"handler": "http", "args": {"url": "FIXTURE/slow?hang=1"}}})");
  EXPECT_EQ(o.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(o.error().code(), "DEADLINE_EXCEEDED");
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
  EXPECT_TRUE(weft::testing::WaitFor([&] { return client_->active() == 0; }));
}

}  // namespace
}  // namespace weft::plan
