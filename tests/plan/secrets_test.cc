// Secrets in plans: {"$secret": "NAME"} checked when the plan compiles,
// filled in when its call starts (from the secrets in force then), and
// redacted from what the call returns.

#include "server/plan/secrets.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth/principals.h"
#include "server/common/errors.h"
#include "server/engine/event_loop.h"
#include "server/plan/compiler.h"
#include "server/plan/interpreter.h"
#include "tests/testing/json.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::plan {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::weft::testing::PlanFromJson;
using ::weft::testing::StatusIs;
using ::weft::testing::ToJson;
using weft::v1::NodeOutcome;

constexpr char kKey[] = "sk-live-4f9a1c";

std::shared_ptr<const SecretTable> Table(
    const std::map<std::string, std::string>& values) {
  absl::StatusOr<std::shared_ptr<const SecretTable>> t =
      SecretTable::Create(values);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : nullptr;
}

class SecretsTest : public ::testing::Test {
 protected:
  SecretsTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
  }

  absl::StatusOr<std::unique_ptr<const CompiledPlan>> TryCompile(
      absl::string_view json, const Secrets* secrets) {
    return plan::Compile(PlanFromJson(json), "plan", registry_, Limits(),
                         &pools_, nullptr, secrets);
  }

  // Compiles `json` with `secrets` and runs it to its end; a plan that does
  // not compile fails the test (and gives an empty outcome).
  NodeOutcome CompileAndRun(absl::string_view json, const Secrets* secrets) {
    absl::StatusOr<std::unique_ptr<const CompiledPlan>> plan =
        TryCompile(json, secrets);
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? Run(*std::move(plan)) : NodeOutcome();
  }

  // Runs a compiled plan to its end (the hash handler runs on a pool).
  NodeOutcome Run(std::shared_ptr<const CompiledPlan> plan) {
    engine::EventLoop loop(1);
    weft::testing::Notification done;
    NodeOutcome outcome;
    RunOptions options;
    options.env = &loop;
    Execute(std::move(plan), std::move(options), [&](NodeOutcome o) {
      outcome = std::move(o);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return outcome;
  }

  handlers::HandlerRegistry registry_;
  PoolSet pools_{{{"default", 1, 10}}};
  Secrets secrets_{Table({{"api_key", kKey}, {"other", "unused-value"}})};
};

TEST(SecretNamesTest, NamesAreShortIdentifiers) {
  EXPECT_TRUE(IsSecretName("api_key"));
  EXPECT_TRUE(IsSecretName("_x.y-z9"));
  EXPECT_FALSE(IsSecretName(""));
  EXPECT_FALSE(IsSecretName("9lives"));
  EXPECT_FALSE(IsSecretName("has space"));
  EXPECT_FALSE(IsSecretName(std::string(129, 'a')));
  EXPECT_TRUE(IsSecretName(std::string(128, 'a')));
}

TEST(SecretTableTest, ABadEntryIsNamedNeverItsValue) {
  EXPECT_THAT(
      SecretTable::Create({{"bad name", "hunter2"}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("secrets[\"bad name\"]: a secret's name"),
                     Not(HasSubstr("hunter2")))));
  EXPECT_THAT(SecretTable::Create({{"empty", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "secrets[\"empty\"]: the value is empty"));
  auto table = Table({{"a", "1"}});
  ASSERT_NE(table->Find("a"), nullptr);
  EXPECT_EQ(table->Find("a")->string_value(), "1");
  EXPECT_EQ(table->Find("b"), nullptr);
}

TEST(RedactTest, EveryOccurrenceInTextStringsAndKeysIsReplaced) {
  const UsedSecrets used = {{"api_key", "s3cr3t"}, {"user", "ada"}};
  EXPECT_EQ(Redact(used, "Bearer s3cr3t for ada, s3cr3t again"),
            "Bearer [secret api_key] for [secret user], [secret api_key] "
            "again");
  google::protobuf::Value v = weft::testing::FromJson<google::protobuf::Value>(
      R"({"headers": {"authorization": "Bearer s3cr3t", "s3cr3t": ["x", "s3cr3t"]},
          "n": 1, "ok": "nothing here"})");
  EXPECT_TRUE(Redact(used, &v));
  EXPECT_EQ(ToJson(v),
            R"({"headers":{"[secret api_key]":["x","[secret api_key]"],)"
            R"("authorization":"Bearer [secret api_key]"},"n":1,)"
            R"("ok":"nothing here"})");
  // A secret that holds another is replaced whole.
  EXPECT_EQ(Redact({{"short", "abcdefgh"}, {"long", "abcdefgh-ijkl"}},
                   "x abcdefgh-ijkl y abcdefgh"),
            "x [secret long] y [secret short]");
  // Cut short or escaped, as a quote in a message may be: withheld whole.
  EXPECT_EQ(Redact(used, "got \"s3cr3t...\" (900 bytes in all)"),
            "got \"[secret api_key]...\" (900 bytes in all)");
  EXPECT_EQ(
      Redact({{"k", "0123456789abcdef"}}, "url \"x?key=0123456789ab...\""),
      "[withheld: it held part of secret k]");
  google::protobuf::Value clean =
      weft::testing::FromJson<google::protobuf::Value>(R"(["a", 2])");
  EXPECT_FALSE(Redact(used, &clean));
}

TEST_F(SecretsTest, AnUnknownNameIsRefusedBeforeAnythingRuns) {
  EXPECT_THAT(
      TryCompile(
          R"({"call": {"handler": "value", "args": {"value": {"$secret": "nope"}}}})",
          &secrets_),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "plan.call.args.value.$secret: \"nope\" is not a secret this "
               "weftd knows (--secrets)"));
  auto refused = TryCompile(
      R"({"call": {"handler": "value", "args": {"value": {"$secret": "api_key"}}}})",
      nullptr);
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("this weftd has no secrets (--secrets is not "
                                 "set)")));
  EXPECT_EQ(common::Reason(refused.status()), "UNKNOWN_SECRET");
}

TEST_F(SecretsTest, MalformedSecretObjectsAreBadReferences) {
  for (
      const char* json : {
          R"({"call": {"handler": "value", "args": {"value": {"$secret": 5}}}})",
          R"({"call": {"handler": "value", "args": {"value": {"$secret": "a b"}}}})",
          R"({"call": {"handler": "value", "args": {"value": {"$secret": "api_key", "x": 1}}}})",
          R"({"map": {"items": [{"$secret": "api_key"}],
                "child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
      }) {
    auto plan = TryCompile(json, &secrets_);
    EXPECT_THAT(plan, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("$secret")))
        << json;
    EXPECT_EQ(common::Reason(plan.status()), "BAD_REFERENCE") << json;
  }
}

TEST_F(SecretsTest, TheCallGetsTheValueAndItsOutcomeNeverShowsIt) {
  // `value` returns what it is given: the outcome shows the name instead.
  NodeOutcome out =
      CompileAndRun(R"({"call": {"handler": "value", "args": {"value":
      {"header": {"$secret": "api_key"}, "list": [{"$secret": "api_key"}]}}}})",
                    &secrets_);
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(out.value()),
            R"({"header":"[secret api_key]","list":["[secret api_key]"]})");

  // `hash` (on a pool) shows the call was given the value itself.
  out = CompileAndRun(R"({"call": {"handler": "hash", "args": {
      "data": {"$secret": "api_key"}, "rounds": 1}}})",
                      &secrets_);
  EXPECT_EQ(out.value().string_value(), auth::TokenSha256(kKey));
}

TEST_F(SecretsTest, AnErrorQuotingTheValueIsRedacted) {
  // A negative duration: the handler's message quotes what it got, whole.
  Secrets secrets(Table({{"d", "-1234567s"}}));
  NodeOutcome out = CompileAndRun(R"({"call": {"handler": "sleep", "args": {
      "duration": {"$secret": "d"}}}})",
                                  &secrets);
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_THAT(out.error().message(), Not(HasSubstr("1234567")));
  EXPECT_THAT(out.error().message(),
              HasSubstr("must not be negative, got \"[secret d]\""));
  // One the parser explains in its own words, which hold parts of it:
  // withheld whole.
  Secrets other(Table({{"d", "not-a-duration-x7"}}));
  out = CompileAndRun(R"({"call": {"handler": "sleep", "args": {
      "duration": {"$secret": "d"}}}})",
                      &other);
  EXPECT_THAT(out.error().message(), Not(HasSubstr("duration-x")));
  EXPECT_THAT(out.error().message(),
              HasSubstr("[withheld: it held part of secret d]"));
}

TEST_F(SecretsTest, AnErrorQuotingALongSecretCutShortIsWithheld) {
  // The handler quotes 64 bytes of what it got: the cut copy does not
  // match the secret, but holds enough of it to be withheld.
  const std::string long_value = "not-a-duration-" + std::string(100, 'q');
  Secrets secrets(Table({{"d", long_value}}));
  NodeOutcome out = CompileAndRun(R"({"call": {"handler": "sleep", "args": {
      "duration": {"$secret": "d"}}}})",
                                  &secrets);
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_THAT(out.error().message(), Not(HasSubstr("qqqqqqqq")));
  EXPECT_THAT(out.error().message(),
              HasSubstr("[withheld: it held part of secret d]"));
}

TEST_F(SecretsTest, TheValueIsTheOneInForceWhenTheCallStarts) {
  Secrets secrets(Table({{"k", "first"}}));
  auto plan = TryCompile(R"({"call": {"handler": "hash", "args": {
      "data": {"$secret": "k"}, "rounds": 1}}})",
                         &secrets);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::shared_ptr<const CompiledPlan> compiled = *std::move(plan);
  secrets.Replace(Table({{"k", "second"}}));
  EXPECT_EQ(Run(compiled).value().string_value(), auth::TokenSha256("second"));
  // Removed since: the node fails, saying so, and is not retried.
  secrets.Replace(Table({{"other", "x"}}));
  NodeOutcome out = Run(compiled);
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.error().code(), "FAILED_PRECONDITION");
  EXPECT_EQ(out.error().reason(), "UNKNOWN_SECRET");
  EXPECT_THAT(out.error().message(),
              HasSubstr("\"k\" is no longer a secret this weftd knows"));
}

}  // namespace
}  // namespace weft::plan
