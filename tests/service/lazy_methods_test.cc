// The lazy value methods of weft.v1.Orchestrator, over loopback.

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "server/engine/sync.h"
#include "tests/service/server_fixture.h"

namespace weft::testing {
namespace {

using ::testing::HasSubstr;
using weft::v1::LazyValue;

constexpr char kDailyStats[] = R"({"lazyValueId": "daily_stats", "lazyValue": {
    "ttl": "3600s",
    "plan": {"call": {"handler": "sleep",
             "args": {"duration": "0.3s", "value": {"visits": 42}}}}}})";

class LazyMethodsTest : public ::testing::Test {
 protected:
  grpc::Status Create(absl::string_view json, LazyValue* out) {
    grpc::ClientContext context;
    return f_.orchestrator().CreateLazyValue(
        &context, FromJson<weft::v1::CreateLazyValueRequest>(json), out);
  }
  void MustCreate(absl::string_view json) {
    LazyValue v;
    grpc::Status s = Create(json, &v);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  grpc::Status Resolve(const std::string& name, google::protobuf::Value* value,
                       absl::Duration timeout = absl::ZeroDuration()) {
    grpc::ClientContext context;
    if (timeout > absl::ZeroDuration()) {
      context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    }
    weft::v1::ResolveLazyValueRequest request;
    request.set_name(name);
    weft::v1::ResolveLazyValueResponse response;
    grpc::Status s =
        f_.orchestrator().ResolveLazyValue(&context, request, &response);
    *value = response.value();
    return s;
  }
  LazyValue Get(const std::string& name) {
    grpc::ClientContext context;
    weft::v1::GetLazyValueRequest request;
    request.set_name(name);
    LazyValue v;
    grpc::Status s = f_.orchestrator().GetLazyValue(&context, request, &v);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return v;
  }

  ServerFixture f_;
};

// The issue's "done when", in-process: 200 resolves at once of a cold value
// make one load and 200 identical answers; after a reset the next resolve
// computes again; the counters show it.
TEST_F(LazyMethodsTest, TwoHundredResolversShareOneLoadAndAResetComputesAgain) {
  MustCreate(kDailyStats);
  constexpr int kCallers = 200;
  engine::Mutex mu;
  std::multiset<std::string> answers;
  int errors = 0;
  BlockingCounter left(kCallers);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<weft::v1::ResolveLazyValueResponse> responses(kCallers);
  weft::v1::ResolveLazyValueRequest request;
  request.set_name("lazyValues/daily_stats");
  for (int i = 0; i < kCallers; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    f_.orchestrator().async()->ResolveLazyValue(
        contexts.back().get(), &request, &responses[i], [&, i](grpc::Status s) {
          {
            engine::MutexLock lock(&mu);
            if (s.ok()) {
              answers.insert(responses[i].value().DebugString());
            } else {
              ++errors;
            }
          }
          left.DecrementCount();
        });
  }
  ASSERT_TRUE(left.Wait());
  EXPECT_EQ(errors, 0);
  ASSERT_EQ(answers.size(), static_cast<size_t>(kCallers));
  EXPECT_EQ(answers.count(*answers.begin()), static_cast<size_t>(kCallers));
  LazyValue v = Get("lazyValues/daily_stats");
  EXPECT_EQ(v.stats().loads(), 1);
  EXPECT_EQ(v.stats().hits() + v.stats().misses(), kCallers);
  EXPECT_EQ(v.state(), weft::v1::LAZY_VALUE_STATE_READY);

  grpc::ClientContext context;
  weft::v1::ResetLazyValueRequest reset;
  reset.set_name("lazyValues/daily_stats");
  LazyValue after_reset;
  ASSERT_TRUE(
      f_.orchestrator().ResetLazyValue(&context, reset, &after_reset).ok());
  EXPECT_EQ(after_reset.state(), weft::v1::LAZY_VALUE_STATE_EMPTY);
  EXPECT_EQ(after_reset.generation(), 1);
  google::protobuf::Value value;
  ASSERT_TRUE(Resolve("lazyValues/daily_stats", &value).ok());
  EXPECT_EQ(value.struct_value().fields().at("visits").number_value(), 42);
  EXPECT_EQ(Get("lazyValues/daily_stats").stats().loads(), 2);

  grpc::ClientContext info_context;
  weft::v1::ServerInfo info;
  ASSERT_TRUE(f_.orchestrator().GetServerInfo(&info_context, {}, &info).ok());
  EXPECT_EQ(info.lazy_values().count(), 1);
  EXPECT_EQ(info.lazy_values().loads(), 2);
}

TEST_F(LazyMethodsTest,
       ACallerWhoseDeadlinePassesLeavesAndTheValueIsStillCached) {
  MustCreate(R"({"lazyValueId": "slow", "lazyValue": {"plan": {"call": {
      "handler": "sleep", "args": {"duration": "1s", "value": "ready"}}}}})");
  google::protobuf::Value value;
  grpc::Status s = Resolve("lazyValues/slow", &value, absl::Milliseconds(100));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(ServerFixture::WaitFor([&] {
    return Get("lazyValues/slow").state() == weft::v1::LAZY_VALUE_STATE_READY;
  }));
  ASSERT_TRUE(Resolve("lazyValues/slow", &value).ok());
  EXPECT_EQ(value.string_value(), "ready");
  EXPECT_EQ(Get("lazyValues/slow").stats().loads(), 1);
}

TEST_F(LazyMethodsTest, PlansResolveLazyValuesByName) {
  MustCreate(kDailyStats);
  weft::v1::RunResponse response;
  grpc::Status s = f_.Run(R"({"plan": {"parallel": {"children": [
      {"id": "stats", "lazy": {"name": "lazyValues/daily_stats"}},
      {"id": "user", "call": {"handler": "value", "args": {"value": "ada"}}}]}}})",
                          &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(response.outcome().children(0).kind(), weft::v1::NODE_KIND_LAZY);
  EXPECT_EQ(common::AssembleValue(response.outcome())
                .struct_value()
                .fields()
                .at("stats")
                .struct_value()
                .fields()
                .at("visits")
                .number_value(),
            42);
  // An unknown one fails its node, not the request.
  s = f_.Run(R"({"plan": {"lazy": {"name": "lazyValues/nope"}}})", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.outcome().error().code(), "NOT_FOUND");
  EXPECT_EQ(response.outcome().error().message(),
            "lazyValues/nope: no such lazy value");
}

TEST_F(LazyMethodsTest, ErrorsNameWhatIsWrong) {
  LazyValue v;
  grpc::Status s = Create(R"({"lazyValueId": "x", "lazyValue": {}})", &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "lazy_value.plan: missing; a request needs a plan");
  s = Create(
      R"({"lazyValueId": "x", "lazyValue": {"plan": {"call": {"handler": "slep"}}}})",
      &v);
  EXPECT_THAT(s.error_message(),
              HasSubstr("lazy_value.plan.call.handler: unknown handler"));
  s = Create(
      R"({"lazyValueId": "Bad Id", "lazyValue": {"plan": {"call": {"handler": "value", "args": {"value": 1}}}}})",
      &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lazy_value_id: \"Bad Id\""));

  MustCreate(kDailyStats);
  MustCreate(kDailyStats);  // The same definition again: a no-op.
  s = Create(
      R"({"lazyValueId": "daily_stats", "lazyValue": {"plan": {"call": {"handler": "value", "args": {"value": 1}}}}})",
      &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  google::protobuf::Value value;
  s = Resolve("lazyValues/nope", &value);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "lazyValues/nope: no such lazy value");
  s = Resolve("nope", &value);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Over 256 KiB, a definition goes through the same intake as Run and
// CreateTask (parsed and compiled on the large-request thread).
TEST_F(LazyMethodsTest, ALargeDefinitionIsTakenLikeASmallOne) {
  const std::string big(300 << 10, 'x');
  MustCreate(absl::StrCat(
      R"({"lazyValueId": "big", "lazyValue": {"plan": {"call": {)",
      R"("handler": "value", "args": {"value": ")", big, R"("}}}}})"));
  google::protobuf::Value value;
  grpc::Status s = Resolve("lazyValues/big", &value);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(value.string_value(), big);
  // A bad large definition is refused the same way as a small one.
  LazyValue v;
  s = Create(absl::StrCat(
                 R"({"lazyValueId": "bad", "lazyValue": {"plan": {"call": {)",
                 R"("handler": "slep", "args": {"value": ")", big, R"("}}}}})"),
             &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("lazy_value.plan.call.handler: unknown handler"));
}

TEST_F(LazyMethodsTest, AFailedComputationIsTheResolversErrorWithThePlansCode) {
  MustCreate(R"({"lazyValueId": "broken", "lazyValue": {"plan": {"call": {
      "handler": "fail", "args": {"code": "UNAVAILABLE", "message": "warehouse down"}}}}})");
  google::protobuf::Value value;
  grpc::Status s = Resolve("lazyValues/broken", &value);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "lazyValues/broken: warehouse down");
  EXPECT_EQ(Get("lazyValues/broken").state(),
            weft::v1::LAZY_VALUE_STATE_FAILED);
}

TEST_F(LazyMethodsTest, ListThenDelete) {
  MustCreate(kDailyStats);
  MustCreate(R"({"lazyValueId": "another", "lazyValue": {"plan": {"call": {
      "handler": "value", "args": {"value": 1}}}}})");
  grpc::ClientContext context;
  weft::v1::ListLazyValuesResponse listed;
  ASSERT_TRUE(f_.orchestrator().ListLazyValues(&context, {}, &listed).ok());
  ASSERT_EQ(listed.lazy_values_size(), 2);
  EXPECT_EQ(listed.lazy_values(0).name(), "lazyValues/another");
  EXPECT_EQ(listed.lazy_values(1).name(), "lazyValues/daily_stats");

  grpc::ClientContext delete_context;
  weft::v1::DeleteLazyValueRequest request;
  request.set_name("lazyValues/another");
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      f_.orchestrator().DeleteLazyValue(&delete_context, request, &empty).ok());
  grpc::ClientContext again;
  EXPECT_EQ(
      f_.orchestrator().DeleteLazyValue(&again, request, &empty).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace weft::testing
