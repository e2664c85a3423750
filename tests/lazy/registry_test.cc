#include "server/lazy/registry.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "server/engine/sleep.h"
#include "server/handlers/handler.h"
#include "server/plan/interpreter.h"
#include "tests/testing/json.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"

namespace weft::lazy {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::weft::testing::StatusIs;
using weft::v1::LazyValue;
using Result = absl::StatusOr<google::protobuf::Value>;

class LazyRegistryTest : public ::testing::Test {
 protected:
  LazyRegistryTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(handlers_).ok());
  }

  LazyRegistry& registry() {
    if (registry_ == nullptr) {
      registry_ = std::make_unique<LazyRegistry>(env_, options_);
    }
    return *registry_;
  }

  std::shared_ptr<const plan::CompiledPlan> CompilePlan(
      const weft::v1::PlanNode& plan) {
    auto source = std::make_shared<const weft::v1::PlanNode>(plan);
    auto compiled = plan::Compile(source.get(), source, "plan", handlers_,
                                  plan::Limits(), nullptr, &registry());
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled.ok()
               ? std::shared_ptr<const plan::CompiledPlan>(*std::move(compiled))
               : nullptr;
  }

  // Declares lazyValues/{id} from a LazyValue in JSON.
  absl::StatusOr<LazyValue> Create(absl::string_view id,
                                   absl::string_view json) {
    const LazyValue d = weft::testing::FromJson<LazyValue>(json);
    return registry().Create(id, d, CompilePlan(d.plan()));
  }
  void MustCreate(absl::string_view id, absl::string_view json) {
    absl::StatusOr<LazyValue> v = Create(id, json);
    ASSERT_TRUE(v.ok()) << v.status();
  }

  // Resolves; the result lands in the returned slot when it comes.
  std::shared_ptr<std::optional<Result>> Resolve(
      const std::string& name, engine::CancellationToken token = {}) {
    auto slot = std::make_shared<std::optional<Result>>();
    registry().Resolve(name, token, [slot](Result r) { *slot = std::move(r); });
    return slot;
  }

  // With the value (charged to a charge without a budget).
  LazyValue Get(absl::string_view name) {
    engine::MemoryCharge unlimited;
    absl::StatusOr<LazyValue> v = registry().Get(name, &unlimited);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : LazyValue();
  }

  engine::ManualEnv env_;
  handlers::HandlerRegistry handlers_;
  LazyRegistry::Options options_;
  std::unique_ptr<LazyRegistry> registry_;
};

// A computation of 1 s whose value says which generation computed it is not
// expressible in a plan; values are constant, so loads are counted instead.
constexpr char kSlowStats[] =
    R"({"plan": {"call": {"handler": "sleep",
        "args": {"duration": "1s", "value": {"visits": 42}}}}})";

TEST_F(LazyRegistryTest, AThousandResolversOfAColdValueCauseOneLoad) {
  MustCreate("daily_stats", kSlowStats);
  std::vector<std::shared_ptr<std::optional<Result>>> got;
  for (int i = 0; i < 1000; ++i)
    got.push_back(Resolve("lazyValues/daily_stats"));
  EXPECT_EQ(Get("lazyValues/daily_stats").state(),
            weft::v1::LAZY_VALUE_STATE_COMPUTING);
  env_.AdvanceBy(absl::Seconds(1));
  for (const auto& r : got) {
    ASSERT_TRUE(r->has_value());
    ASSERT_TRUE((*r)->ok()) << (*r)->status();
    EXPECT_EQ((**r)->struct_value().fields().at("visits").number_value(), 42);
  }
  LazyValue v = Get("lazyValues/daily_stats");
  EXPECT_EQ(v.state(), weft::v1::LAZY_VALUE_STATE_READY);
  EXPECT_EQ(v.stats().loads(), 1);
  EXPECT_EQ(v.stats().misses(), 1000);
  EXPECT_EQ(v.stats().last_load_duration().seconds(), 1);
  // Warm: answered inline.
  auto warm = Resolve("lazyValues/daily_stats");
  ASSERT_TRUE(warm->has_value());
  EXPECT_EQ(Get("lazyValues/daily_stats").stats().hits(), 1);
}

TEST_F(LazyRegistryTest, EveryResolveWaitsForTheRefresherFirst) {
  MustCreate("daily_stats", R"({"plan": {"call": {"handler": "value",
      "args": {"value": {"visits": 42}}}}})");
  // Without a refresher, Refresh runs its continuation at once.
  bool ran = false;
  registry().Refresh("lazyValues/daily_stats", [&ran] { ran = true; });
  EXPECT_TRUE(ran);

  std::vector<std::string> asked;
  std::vector<absl::AnyInvocable<void() &&>> held;
  registry().SetRefresher(
      [&](const std::string& name, absl::AnyInvocable<void() &&> then) {
        asked.push_back(name);
        held.push_back(std::move(then));
      });
  auto direct = Resolve("lazyValues/daily_stats");
  std::optional<absl::StatusOr<LazyRegistry::Resolved>> shared;
  registry().ResolveShared(
      "lazyValues/daily_stats", {},
      [&shared](absl::StatusOr<LazyRegistry::Resolved> r) { shared = r; });
  // Nothing resolves until the refresher lets it go on (here, a reset
  // another replica made is applied in between).
  EXPECT_THAT(asked, ::testing::ElementsAre("lazyValues/daily_stats",
                                            "lazyValues/daily_stats"));
  EXPECT_FALSE(direct->has_value());
  EXPECT_FALSE(shared.has_value());
  ASSERT_TRUE(registry().Reset("lazyValues/daily_stats").ok());
  for (auto& then : held) std::move(then)();
  ASSERT_TRUE(direct->has_value());
  EXPECT_EQ((**direct)->struct_value().fields().at("visits").number_value(),
            42);
  ASSERT_TRUE(shared.has_value() && shared->ok());
  EXPECT_EQ((*shared)->generation, 1);  // After the reset.

  // A name the registry does not have is still refreshed first (another
  // replica may have made it), then NOT_FOUND.
  held.clear();
  auto missing = Resolve("lazyValues/elsewhere");
  EXPECT_EQ(asked.back(), "lazyValues/elsewhere");
  std::move(held.at(0))();
  EXPECT_THAT(missing->value(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("elsewhere")));

  // Without it again, resolves go straight on.
  registry().SetRefresher(nullptr);
  asked.clear();
  EXPECT_TRUE(Resolve("lazyValues/daily_stats")->has_value());
  EXPECT_TRUE(asked.empty());
}

TEST_F(LazyRegistryTest, AResolverWhoLeavesDoesNotStopTheComputation) {
  MustCreate("daily_stats", kSlowStats);
  engine::CancellationSource leaving;
  auto left = Resolve("lazyValues/daily_stats", leaving.token());
  auto stays = Resolve("lazyValues/daily_stats");
  leaving.Cancel(absl::DeadlineExceededError("the caller's deadline passed"));
  ASSERT_TRUE(left->has_value());
  EXPECT_THAT(left->value(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                      "the caller's deadline passed"));
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(stays->has_value());
  EXPECT_TRUE(stays->value().ok());
  EXPECT_EQ(Get("lazyValues/daily_stats").state(),
            weft::v1::LAZY_VALUE_STATE_READY);
}

TEST_F(LazyRegistryTest, AFailureReachesEveryResolverAndIsNotCached) {
  MustCreate("flaky", R"({"plan": {"call": {"handler": "fail",
      "args": {"code": "UNAVAILABLE", "message": "warehouse down", "after": "1s"}}}})");
  auto a = Resolve("lazyValues/flaky");
  auto b = Resolve("lazyValues/flaky");
  env_.AdvanceBy(absl::Seconds(1));
  for (const auto& r : {a, b}) {
    EXPECT_THAT(r->value(), StatusIs(absl::StatusCode::kUnavailable,
                                     "lazyValues/flaky: warehouse down"));
  }
  LazyValue v = Get("lazyValues/flaky");
  EXPECT_EQ(v.state(), weft::v1::LAZY_VALUE_STATE_FAILED);
  EXPECT_EQ(v.error().code(), "UNAVAILABLE");
  EXPECT_EQ(v.error().reason(), "LAZY_COMPUTATION_FAILED");
  EXPECT_EQ(v.stats().load_failures(), 1);
  Resolve("lazyValues/flaky");  // Not cached: computes again.
  EXPECT_EQ(Get("lazyValues/flaky").stats().loads(), 2);
}

TEST_F(LazyRegistryTest, FailuresAreCachedWhenAsked) {
  MustCreate("flaky", R"({"cacheFailuresFor": "10s", "plan": {"call": {
      "handler": "fail", "args": {"code": "UNAVAILABLE"}}}})");
  EXPECT_THAT(Resolve("lazyValues/flaky")->value(),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_THAT(Resolve("lazyValues/flaky")->value(),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  LazyValue v = Get("lazyValues/flaky");
  EXPECT_EQ(v.stats().loads(), 1);
  EXPECT_EQ(v.stats().hits(), 1);
  EXPECT_TRUE(v.has_expire_time());
  env_.AdvanceBy(absl::Seconds(10));
  Resolve("lazyValues/flaky");
  EXPECT_EQ(Get("lazyValues/flaky").stats().loads(), 2);
}

TEST_F(LazyRegistryTest, AResetDuringAComputationKeepsItOutOfTheCache) {
  MustCreate("daily_stats", kSlowStats);
  auto before = Resolve("lazyValues/daily_stats");
  env_.AdvanceBy(absl::Milliseconds(500));
  absl::StatusOr<LazyValue> reset = registry().Reset("lazyValues/daily_stats");
  ASSERT_TRUE(reset.ok());
  EXPECT_EQ(reset->generation(), 1);
  auto after = Resolve("lazyValues/daily_stats");  // The new generation's.
  env_.AdvanceBy(absl::Milliseconds(500));
  ASSERT_TRUE(before->has_value());
  EXPECT_TRUE(before->value().ok());  // Joined before the reset: answered.
  EXPECT_FALSE(after->has_value());
  EXPECT_EQ(Get("lazyValues/daily_stats").state(),
            weft::v1::LAZY_VALUE_STATE_COMPUTING);  // ...but not cached.
  env_.AdvanceBy(absl::Milliseconds(500));
  ASSERT_TRUE(after->has_value());
  LazyValue v = Get("lazyValues/daily_stats");
  EXPECT_EQ(v.state(), weft::v1::LAZY_VALUE_STATE_READY);
  EXPECT_EQ(v.stats().loads(), 2);
  EXPECT_EQ(v.generation(), 1);
}

TEST_F(LazyRegistryTest, ValuesExpireAfterTheirTtl) {
  MustCreate("daily_stats", absl::StrCat(R"({"ttl": "60s", )",
                                         std::string(kSlowStats).substr(1)));
  Resolve("lazyValues/daily_stats");
  env_.AdvanceBy(absl::Seconds(1));
  LazyValue v = Get("lazyValues/daily_stats");
  EXPECT_EQ(v.expire_time().seconds() - v.compute_time().seconds(), 60);
  env_.AdvanceBy(absl::Seconds(60));
  EXPECT_EQ(Get("lazyValues/daily_stats").state(),
            weft::v1::LAZY_VALUE_STATE_EMPTY);
  EXPECT_FALSE(Resolve("lazyValues/daily_stats")->has_value());
  EXPECT_EQ(Get("lazyValues/daily_stats").stats().loads(), 2);
}

TEST_F(LazyRegistryTest, RefreshAheadServesTheOldValueWhileOneRefreshRuns) {
  MustCreate("daily_stats",
             absl::StrCat(R"({"ttl": "60s", "refreshAfter": "10s", )",
                          std::string(kSlowStats).substr(1)));
  Resolve("lazyValues/daily_stats");
  env_.AdvanceBy(absl::Seconds(11));
  for (int i = 0; i < 10; ++i) {
    auto r = Resolve("lazyValues/daily_stats");
    ASSERT_TRUE(r->has_value());  // At once, from the cache.
  }
  LazyValue v = Get("lazyValues/daily_stats");
  EXPECT_TRUE(v.refreshing());
  EXPECT_EQ(v.stats().loads(), 2);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_FALSE(Get("lazyValues/daily_stats").refreshing());
}

// "watched_sleep": sleeps 1 s as "sleep" does (ended at once by
// cancellation), and records each call's token and how its sleep ended.
class WatchedSleepHandler : public handlers::Handler {
 public:
  struct Calls {
    std::vector<engine::CancellationToken> tokens;
    std::vector<absl::Status> ended;
  };

  explicit WatchedSleepHandler(Calls* calls) : calls_(calls) {
    info_.name = "watched_sleep";
    info_.description = "test";
  }
  const handlers::HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      const google::protobuf::Struct&) const override {
    return std::unique_ptr<handlers::Call>(new WatchedCall(calls_));
  }

 private:
  class WatchedCall : public handlers::Call {
   public:
    explicit WatchedCall(Calls* calls) : calls_(calls) {}
    void Start(const handlers::CallContext& ctx,
               handlers::CallDone done) const override {
      calls_->tokens.push_back(ctx.token);
      engine::SleepFor(
          ctx.env, ctx.token, absl::Seconds(1),
          [calls = calls_, done = std::move(done)](absl::Status s) mutable {
            calls->ended.push_back(s);
            if (!s.ok()) return std::move(done)(std::move(s));
            std::move(done)(google::protobuf::Value());
          });
    }

   private:
    Calls* const calls_;
  };

  Calls* const calls_;
  handlers::HandlerInfo info_;
};

TEST_F(LazyRegistryTest, DeleteWhileComputingAbortsItsResolvers) {
  WatchedSleepHandler::Calls calls;
  ASSERT_TRUE(
      handlers_.Register(std::make_unique<WatchedSleepHandler>(&calls)).ok());
  MustCreate("daily_stats",
             R"({"plan": {"call": {"handler": "watched_sleep"}}})");
  auto waiting = Resolve("lazyValues/daily_stats");
  ASSERT_EQ(calls.tokens.size(), 1u);
  EXPECT_FALSE(calls.tokens[0].cancelled());
  ASSERT_TRUE(registry().Delete("lazyValues/daily_stats").ok());
  ASSERT_TRUE(waiting->has_value());
  EXPECT_THAT(waiting->value(), StatusIs(absl::StatusCode::kAborted,
                                         "lazyValues/daily_stats was deleted"));
  EXPECT_THAT(registry().Get("lazyValues/daily_stats"),
              StatusIs(absl::StatusCode::kNotFound,
                       "lazyValues/daily_stats: no such lazy value"));
  // Its computation was cancelled, with the resolvers' reason, and so ended
  // at once.
  EXPECT_THAT(calls.tokens[0].reason(),
              StatusIs(absl::StatusCode::kAborted,
                       "lazyValues/daily_stats was deleted"));
  ASSERT_EQ(calls.ended.size(), 1u);
  EXPECT_EQ(calls.ended[0], calls.tokens[0].reason());
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(calls.ended.size(), 1u);
}

TEST_F(LazyRegistryTest, AComputationEveryoneLeftStillEndsAtTheTimeout) {
  options_.compute_timeout = absl::Minutes(1);
  MustCreate("forever", R"({"plan": {"call": {"handler": "sleep",
      "args": {"duration": "3600s"}}}})");
  engine::CancellationSource caller;
  Resolve("lazyValues/forever", caller.token());
  caller.Cancel(absl::CancelledError("gone"));
  env_.AdvanceBy(absl::Minutes(1));
  LazyValue v = Get("lazyValues/forever");
  EXPECT_EQ(v.state(), weft::v1::LAZY_VALUE_STATE_FAILED);
  EXPECT_EQ(v.error().code(), "DEADLINE_EXCEEDED");
  EXPECT_THAT(v.error().message(), HasSubstr("--lazy_compute_timeout"));
}

TEST_F(LazyRegistryTest, AValueThatResolvesItselfFailsNamingTheCycle) {
  MustCreate("a", R"({"plan": {"lazy": {"name": "lazyValues/b"}}})");
  MustCreate("b", R"({"plan": {"parallel": {"children": [
      {"call": {"handler": "value", "args": {"value": 1}}},
      {"lazy": {"name": "lazyValues/a"}}]}}})");
  MustCreate("self", R"({"plan": {"lazy": {"name": "lazyValues/self"}}})");
  MustCreate("above", R"({"plan": {"lazy": {"name": "lazyValues/a"}}})");
  EXPECT_THAT(
      Resolve("lazyValues/a")->value(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("lazyValues/a -> lazyValues/b -> lazyValues/a")));
  EXPECT_THAT(Resolve("lazyValues/self")->value(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("lazyValues/self -> lazyValues/self")));
  // Reaching a cycle is as bad as being in one.
  EXPECT_THAT(
      Resolve("lazyValues/above")->value(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("lazyValues/a -> lazyValues/b -> lazyValues/a")));
}

TEST_F(LazyRegistryTest, PlansShareTheValueThroughLazyNodes) {
  MustCreate("daily_stats", kSlowStats);
  auto plan = CompilePlan(weft::testing::FromJson<weft::v1::PlanNode>(
      R"({"parallel": {"children": [
          {"id": "stats", "lazy": {"name": "lazyValues/daily_stats"}},
          {"id": "again", "lazy": {"name": "lazyValues/daily_stats"}}]}})"));
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->leaves(), 2);
  EXPECT_EQ(plan->lazy_names(),
            std::vector<std::string>{"lazyValues/daily_stats"});
  std::optional<weft::v1::NodeOutcome> outcome;
  plan::RunOptions run;
  run.env = &env_;
  plan::Execute(plan, run,
                [&](weft::v1::NodeOutcome o) { outcome = std::move(o); });
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(outcome->children(0).kind(), weft::v1::NODE_KIND_LAZY);
  EXPECT_EQ(common::AssembleValue(*outcome)
                .struct_value()
                .fields()
                .at("again")
                .struct_value()
                .fields()
                .at("visits")
                .number_value(),
            42);
  EXPECT_EQ(Get("lazyValues/daily_stats").stats().loads(), 1);
}

TEST_F(LazyRegistryTest, AnUnknownLazyValueFailsItsNode) {
  auto r = Resolve("lazyValues/nope");
  EXPECT_THAT(r->value(), StatusIs(absl::StatusCode::kNotFound,
                                   "lazyValues/nope: no such lazy value"));
}

TEST_F(LazyRegistryTest, CreateIsIdempotentForTheSameDefinitionOnly) {
  MustCreate("daily_stats", kSlowStats);
  Resolve("lazyValues/daily_stats");
  absl::StatusOr<LazyValue> again = Create("daily_stats", kSlowStats);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state(), weft::v1::LAZY_VALUE_STATE_COMPUTING);
  EXPECT_THAT(
      Create("daily_stats", absl::StrCat(R"({"ttl": "5s", )",
                                         std::string(kSlowStats).substr(1))),
      StatusIs(absl::StatusCode::kAlreadyExists,
               HasSubstr("lazyValues/daily_stats exists with another "
                         "definition")));
}

TEST_F(LazyRegistryTest, BadIdsNamesAndDurationsAreNamed) {
  EXPECT_THAT(Create("Daily Stats", kSlowStats),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lazy_value_id: \"Daily Stats\" is not a "
                                 "lazy value id")));
  EXPECT_THAT(
      Create(
          "x",
          R"({"ttl": "-1s", "plan": {"call": {"handler": "value", "args": {"value": 1}}}})"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("lazy_value.ttl: must be from 0s")));
  EXPECT_THAT(
      Create(
          "x",
          R"({"ttl": "10s", "refreshAfter": "10s", "plan": {"call": {"handler": "value", "args": {"value": 1}}}})"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("lazy_value.refresh_after: must be shorter "
                         "than ttl")));
  EXPECT_THAT(registry().Get("daily_stats"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name: \"daily_stats\" is not a lazy value "
                                 "name")));
}

TEST_F(LazyRegistryTest, TooManyValuesIsResourceExhausted) {
  options_.max_values = 2;
  MustCreate("a", kSlowStats);
  MustCreate("b", kSlowStats);
  EXPECT_THAT(Create("c", kSlowStats),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("--max_lazy_values")));
}

TEST_F(LazyRegistryTest, ListPagesByName) {
  for (const char* id : {"c", "a", "b", "d", "e"}) MustCreate(id, kSlowStats);
  absl::StatusOr<LazyRegistry::Page> page = registry().List(2, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->values.size(), 2u);
  EXPECT_EQ(page->values[0].name(), "lazyValues/a");
  EXPECT_EQ(page->values[1].name(), "lazyValues/b");
  ASSERT_TRUE(registry().Delete("lazyValues/b").ok());  // Pages stay put.
  page = registry().List(2, page->next_page_token);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->values[0].name(), "lazyValues/c");
  EXPECT_EQ(page->values[1].name(), "lazyValues/d");
  page = registry().List(2, page->next_page_token);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->values.size(), 1u);
  EXPECT_TRUE(page->next_page_token.empty());
  EXPECT_THAT(
      registry().List(2, "garbage"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  LazyRegistry::Totals t = registry().totals();
  EXPECT_EQ(t.count, 4);
}

// A lazy value whose plan returns a string of `bytes` bytes.
std::string BigValue(int bytes) {
  return absl::StrCat(
      R"({"plan": {"call": {"handler": "value", "args": {"value": ")",
      std::string(bytes, 'z'), R"("}}}})");
}

TEST_F(LazyRegistryTest, AValueOverTheOutcomeLimitFailsItsComputation) {
  options_.max_value_bytes = 1000;
  MustCreate("big", BigValue(2000));
  const int64_t definitions = registry().memory().used();
  auto got = Resolve("lazyValues/big");
  ASSERT_TRUE(got->has_value());
  EXPECT_THAT(**got, StatusIs(absl::StatusCode::kResourceExhausted,
                              HasSubstr("--max_outcome_bytes")));
  EXPECT_EQ(registry().memory().used(), definitions);
}

TEST_F(LazyRegistryTest, AValueTheCacheCannotHoldFailsNamingTheCacheLimit) {
  // Room for both definitions (each holds its 60 KB value twice, as the
  // request's copy and its encoding) and one value of 60 KB, not two.
  options_.max_bytes = 2 * 122'200 + 90'000;
  MustCreate("first", BigValue(60'000));
  MustCreate("second", BigValue(60'000));
  const int64_t definitions = registry().memory().used();
  auto first = Resolve("lazyValues/first");
  ASSERT_TRUE(first->has_value());
  ASSERT_TRUE((*first)->ok()) << (*first)->status();
  auto second = Resolve("lazyValues/second");
  ASSERT_TRUE(second->has_value());
  EXPECT_THAT(
      **second,
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr("(--max_lazy_bytes); lazyValues/second's "
                               "value needs"),
                     HasSubstr("Reset or delete other lazy values"))));
  // Resetting the first makes room.
  ASSERT_TRUE(registry().Reset("lazyValues/first").ok());
  first->reset();
  EXPECT_EQ(registry().memory().used(), definitions);
  second = Resolve("lazyValues/second");
  ASSERT_TRUE(second->has_value());
  EXPECT_TRUE((*second)->ok()) << (*second)->status();
}

TEST_F(LazyRegistryTest, EveryResolverSharesTheOneCachedValue) {
  MustCreate("shared", BigValue(100'000));
  const int64_t definition = registry().memory().used();
  std::vector<absl::StatusOr<LazyRegistry::Resolved>> got(100);
  for (auto& slot : got) {
    registry().ResolveShared("lazyValues/shared", {},
                             [&slot](absl::StatusOr<LazyRegistry::Resolved> v) {
                               slot = std::move(v);
                             });
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const auto& v = got[i];
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->cached.get(), got[0]->cached.get());
    // The first computed it; the others found it cached.
    EXPECT_EQ(v->cache_hit, i > 0) << i;
    EXPECT_EQ(v->generation, 0);
    EXPECT_EQ(v->computed_at, got[0]->computed_at);
  }
  const int64_t cached = registry().memory().used() - definition;
  EXPECT_GT(cached, 100'000);
  EXPECT_LT(cached, 200'000);
  // Deleted and answered: nothing is held any more.
  ASSERT_TRUE(registry().Delete("lazyValues/shared").ok());
  got.clear();
  EXPECT_EQ(registry().memory().used(), 0);
}

TEST_F(LazyRegistryTest, ADefinitionThatDoesNotFitIsRefused) {
  options_.max_bytes = 50'000;
  EXPECT_THAT(
      Create("huge", BigValue(40'000)),
      StatusIs(
          absl::StatusCode::kResourceExhausted,
          HasSubstr("(--max_lazy_bytes); lazyValues/huge's definition needs")));
  EXPECT_EQ(registry().memory().used(), 0);
  EXPECT_THAT(registry().Get("lazyValues/huge"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such")));
}

TEST_F(LazyRegistryTest, GetWithAChargeRefusesWhatItsBudgetCannotTake) {
  MustCreate("v", BigValue(50'000));
  ASSERT_TRUE(Resolve("lazyValues/v")->has_value());
  engine::MemoryBudget budget(10'000, "answers", "--max_inflight_bytes");
  engine::MemoryCharge charge(&budget);
  EXPECT_THAT(registry().Get("lazyValues/v", &charge),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("--max_inflight_bytes")));
  engine::MemoryBudget roomy(1 << 20);
  engine::MemoryCharge fits(&roomy);
  absl::StatusOr<LazyValue> v = registry().Get("lazyValues/v", &fits);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value().string_value().size(), 50'000u);
  EXPECT_GT(fits.bytes(), 50'000);
}

TEST_F(LazyRegistryTest, ListPagesEndBeforeTheyPassTheirByteLimit) {
  for (const char* id : {"a", "b", "c", "d"}) {
    MustCreate(id, BigValue(40'000));
    ASSERT_TRUE(Resolve(absl::StrCat("lazyValues/", id))->has_value());
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<LazyRegistry::Page> page =
        registry().List(0, token, 100'000);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->values.size(), 2u);
    for (const LazyValue& v : page->values) seen.push_back(v.name());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_THAT(seen, ::testing::ElementsAre("lazyValues/a", "lazyValues/b",
                                           "lazyValues/c", "lazyValues/d"));
  // A single value larger than the limit still comes, alone.
  absl::StatusOr<LazyRegistry::Page> one = registry().List(0, "", 10);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->values.size(), 1u);
}

}  // namespace
}  // namespace weft::lazy
