#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/handlers/registry.h"
#include "tests/testing/json.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/status_matchers.h"

namespace weft::handlers {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using ::testing::HasSubstr;
using ::weft::testing::FromJson;
using ::weft::testing::StatusIs;

class BuiltinTest : public ::testing::Test {
 protected:
  BuiltinTest() { EXPECT_TRUE(RegisterBuiltinHandlers(registry_).ok()); }

  // Checks and prepares a call; args_ keeps the args alive.
  std::unique_ptr<Call> Prepare(absl::string_view handler,
                                absl::string_view args) {
    args_ = FromJson<Struct>(args);
    const Handler* h = registry_.Find(handler);
    EXPECT_NE(h, nullptr);
    EXPECT_TRUE(CheckArgs(h->info(), args_).ok());
    absl::StatusOr<std::unique_ptr<Call>> call = h->Prepare(args_);
    EXPECT_TRUE(call.ok());
    return *std::move(call);
  }

  // Starts `call`; the result lands in result_.
  void Start(const Call& call, const engine::CancellationToken& token = {}) {
    call.Start(CallContext{env_, token},
               [this](CallResult r) { result_.emplace(std::move(r)); });
  }

  engine::ManualEnv env_;
  HandlerRegistry registry_;
  Struct args_;
  std::optional<CallResult> result_;
};

TEST_F(BuiltinTest, RegistryListsTheBuiltinsByName) {
  EXPECT_EQ(registry_.Names(), "fail, hash, sleep, value");
  EXPECT_EQ(registry_.Find("nope"), nullptr);
}

TEST_F(BuiltinTest, RegisteringANameTwiceIsRefused) {
  HandlerRegistry fresh;
  EXPECT_TRUE(RegisterBuiltinHandlers(fresh).ok());
  class Dup : public Handler {
   public:
    const HandlerInfo& info() const override { return info_; }
    absl::StatusOr<std::unique_ptr<Call>> Prepare(
        const Struct&) const override {
      return absl::UnimplementedError("unused");
    }
    HandlerInfo info_{.name = "sleep"};
  };
  EXPECT_THAT(fresh.Register(std::make_unique<Dup>()),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("\"sleep\" is already registered")));
}

TEST_F(BuiltinTest, ValueReturnsItsArgumentInline) {
  auto call = Prepare("value", R"({"value": {"followers": 42}})");
  Start(*call);
  ASSERT_TRUE(result_.has_value());
  ASSERT_TRUE(result_->ok());
  EXPECT_EQ((*result_)->struct_value().fields().at("followers").number_value(),
            42);
}

TEST_F(BuiltinTest, SleepWaitsItsDurationThenReturnsItsValue) {
  auto call = Prepare("sleep", R"({"duration": "0.3s", "value": ["p1"]})");
  Start(*call);
  env_.AdvanceBy(absl::Milliseconds(299));
  EXPECT_FALSE(result_.has_value());
  env_.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(result_.has_value() && result_->ok());
  EXPECT_EQ((*result_)->list_value().values(0).string_value(), "p1");
}

TEST_F(BuiltinTest, SleepWithoutValueReturnsNull) {
  auto call = Prepare("sleep", R"({"duration": "1s"})");
  Start(*call);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result_.has_value() && result_->ok());
  EXPECT_TRUE((*result_)->has_null_value());
}

TEST_F(BuiltinTest, SleepEndsAtOnceWhenCancelledAndHoldsNoTimer) {
  auto call = Prepare("sleep", R"({"duration": "60s"})");
  engine::CancellationSource source;
  Start(*call, source.token());
  EXPECT_EQ(env_.pending_timers(), 1u);
  source.Cancel(absl::CancelledError("sibling failed"));
  ASSERT_TRUE(result_.has_value());
  EXPECT_THAT(*result_,
              StatusIs(absl::StatusCode::kCancelled, "sibling failed"));
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(BuiltinTest, FailFailsAtOnceWithItsCodeAndMessage) {
  auto call = Prepare("fail", R"({"code": "UNAVAILABLE", "message": "down"})");
  Start(*call);
  ASSERT_TRUE(result_.has_value());
  EXPECT_THAT(*result_, StatusIs(absl::StatusCode::kUnavailable, "down"));
}

TEST_F(BuiltinTest, FailWithoutMessageSaysItWasAsked) {
  auto call = Prepare("fail", R"({"code": "INTERNAL"})");
  Start(*call);
  EXPECT_THAT(*result_, StatusIs(absl::StatusCode::kInternal,
                                 HasSubstr("handler \"fail\"")));
}

TEST_F(BuiltinTest, FailAfterWaitsFirstAndCanBeCancelled) {
  auto call = Prepare("fail", R"({"code": "NOT_FOUND", "after": "0.5s"})");
  Start(*call);
  env_.AdvanceBy(absl::Milliseconds(499));
  EXPECT_FALSE(result_.has_value());
  env_.AdvanceBy(absl::Milliseconds(1));
  EXPECT_THAT(*result_,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fail")));

  result_.reset();
  engine::CancellationSource source;
  Start(*call, source.token());
  source.Cancel(absl::CancelledError("stop"));
  EXPECT_THAT(*result_, StatusIs(absl::StatusCode::kCancelled, "stop"));
}

TEST_F(BuiltinTest, ACallCanBeStartedAgainForAnotherAttempt) {
  auto call = Prepare("value", R"({"value": 7})");
  for (int i = 0; i < 3; ++i) {
    result_.reset();
    Start(*call);
    ASSERT_TRUE(result_.has_value() && result_->ok());
    EXPECT_EQ((*result_)->number_value(), 7);
  }
}

TEST_F(BuiltinTest, OnlyHashBlocksAndEveryBuiltinIsDescribed) {
  for (const Handler* h : registry_.List()) {
    EXPECT_EQ(h->info().blocking, h->info().name == "hash") << h->info().name;
    EXPECT_FALSE(h->info().description.empty()) << h->info().name;
    for (const ArgSpec& a : h->info().args) {
      EXPECT_FALSE(a.description.empty()) << h->info().name << "." << a.name;
    }
  }
}

TEST_F(BuiltinTest, HashIsSha256RepeatedRoundsTimes) {
  // sha256("abc"), a published test vector.
  auto once = Prepare("hash", R"({"data": "abc"})");
  Start(*once);
  ASSERT_TRUE(result_.has_value() && result_->ok());
  EXPECT_EQ((*result_)->string_value(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Two rounds: sha256 of that digest's 32 bytes.
  result_.reset();
  auto twice = Prepare("hash", R"({"data": "abc", "rounds": 2})");
  Start(*twice);
  EXPECT_EQ((*result_)->string_value(),
            "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358");
}

TEST_F(BuiltinTest, HashStopsBetweenRoundsWhenCancelled) {
  auto call = Prepare("hash", R"({"data": "x", "rounds": 100000000})");
  engine::CancellationSource source;
  source.Cancel(absl::CancelledError("lost the race"));
  Start(*call, source.token());
  ASSERT_TRUE(result_.has_value());
  EXPECT_THAT(*result_,
              StatusIs(absl::StatusCode::kCancelled, "lost the race"));
}

TEST_F(BuiltinTest, HashRoundsAreBounded) {
  const Handler* h = registry_.Find("hash");
  EXPECT_THAT(
      CheckArgs(h->info(), FromJson<Struct>(R"({"data": "x", "rounds": 0})")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "args.rounds: must be between 1 and 100000000, got 0"));
  EXPECT_THAT(
      CheckArgs(h->info(), FromJson<Struct>(R"({"data": "x", "rounds": 1e9})")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("args.rounds: must be between 1 and 100000000")));
  // The number as it was written, not 1e+08.
  EXPECT_THAT(
      CheckArgs(h->info(),
                FromJson<Struct>(R"({"data": "x", "rounds": 100000001})")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "args.rounds: must be between 1 and 100000000, got 100000001"));
}

TEST(RegisterBuiltinHandlersTest, ANameTakenIsAlreadyExists) {
  HandlerRegistry registry;
  ASSERT_TRUE(RegisterBuiltinHandlers(registry).ok());
  const absl::Status again = RegisterBuiltinHandlers(registry);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(std::string(again.message()), ::testing::HasSubstr("value"));
}

}  // namespace
}  // namespace weft::handlers
