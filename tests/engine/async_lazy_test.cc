#include "server/engine/async_lazy.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/sleep.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using Lazy = AsyncLazy<std::string>;

class AsyncLazyTest : public ::testing::Test {
 protected:
  // A computation that takes 1 s and returns "v<n>" for its n-th run, or
  // fails when fail_ is set. Its token goes to tokens_.
  Lazy::Factory Factory() {
    return [this](const CancellationToken& token, Lazy::Callback done) {
      const int n = ++computations_;
      tokens_.push_back(token);
      SleepFor(env_, token, absl::Seconds(1),
               [this, n, done = std::move(done)](absl::Status s) mutable {
                 if (!s.ok()) return std::move(done)(s);
                 if (fail_)
                   return std::move(done)(absl::UnavailableError("down"));
                 std::move(done)("v" + std::to_string(n));
               });
    };
  }

  ManualEnv env_;
  int computations_ = 0;
  std::vector<CancellationToken> tokens_;  // Each computation's.
  bool fail_ = false;
};

TEST_F(AsyncLazyTest, ConcurrentCallersShareOneComputationThenTheCache) {
  Lazy lazy(Factory());
  std::vector<absl::StatusOr<std::string>> got;
  for (int i = 0; i < 100; ++i) {
    lazy.Get({}, [&](absl::StatusOr<std::string> v) { got.push_back(v); });
  }
  EXPECT_EQ(computations_, 1);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(got.size(), 100u);
  for (const auto& v : got) EXPECT_EQ(*v, "v1");
  // Cached: answered inline, no new computation.
  std::optional<absl::StatusOr<std::string>> later;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { later = v; });
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(**later, "v1");
  EXPECT_EQ(lazy.loads(), 1);
}

TEST_F(AsyncLazyTest, AWaiterThatLeavesDoesNotStopTheComputation) {
  Lazy lazy(Factory());
  CancellationSource leaving;
  std::optional<absl::StatusOr<std::string>> a, b;
  lazy.Get(leaving.token(), [&](absl::StatusOr<std::string> v) { a = v; });
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { b = v; });
  leaving.Cancel(absl::CancelledError("deadline"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->status(), absl::CancelledError("deadline"));
  ASSERT_EQ(tokens_.size(), 1u);
  EXPECT_FALSE(tokens_[0].cancelled());
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(**b, "v1");
  EXPECT_EQ(*lazy.Peek(), "v1");
}

TEST_F(AsyncLazyTest, FailuresReachEveryWaiterAndAreNotCached) {
  Lazy lazy(Factory());
  fail_ = true;
  std::vector<absl::Status> got;
  for (int i = 0; i < 3; ++i) {
    lazy.Get({},
             [&](absl::StatusOr<std::string> v) { got.push_back(v.status()); });
  }
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_THAT(got, ::testing::Each(absl::UnavailableError("down")));
  EXPECT_FALSE(lazy.Peek().has_value());
  fail_ = false;
  std::optional<absl::StatusOr<std::string>> next;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { next = v; });
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**next, "v2");
}

TEST_F(AsyncLazyTest, ResetDuringAComputationKeepsItsResultOutOfTheCache) {
  Lazy lazy(Factory());
  std::optional<absl::StatusOr<std::string>> early;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { early = v; });
  const uint64_t before = lazy.generation();
  lazy.Reset();
  EXPECT_EQ(lazy.generation(), before + 1);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**early, "v1");  // The waiter who joined before still gets it.
  EXPECT_FALSE(lazy.Peek().has_value());
  std::optional<absl::StatusOr<std::string>> next;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { next = v; });
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**next, "v2");
}

TEST_F(AsyncLazyTest, ResetAfterwardsMakesTheNextGetComputeAgain) {
  Lazy lazy(Factory());
  lazy.Get({}, [](absl::StatusOr<std::string>) {});
  env_.AdvanceBy(absl::Seconds(1));
  lazy.Reset();
  std::optional<absl::StatusOr<std::string>> next;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { next = v; });
  EXPECT_FALSE(next.has_value());
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**next, "v2");
  EXPECT_EQ(lazy.loads(), 2);
}

// Gets now; returns what it got, if it answered inline. (An answer that
// comes later lands in a slot the callback owns.)
std::optional<absl::StatusOr<std::string>> GetNow(Lazy& lazy) {
  auto got = std::make_shared<std::optional<absl::StatusOr<std::string>>>();
  lazy.Get({}, [got](absl::StatusOr<std::string> v) { *got = std::move(v); });
  return *got;
}

TEST_F(AsyncLazyTest, AGetAfterAResetStartsANewGenerationsComputation) {
  Lazy lazy(Factory());
  std::optional<absl::StatusOr<std::string>> early, late;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { early = v; });
  env_.AdvanceBy(absl::Milliseconds(500));
  lazy.Reset();
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { late = v; });
  EXPECT_EQ(computations_, 2);
  env_.AdvanceBy(absl::Milliseconds(500));
  EXPECT_EQ(**early, "v1");  // Joined before the reset.
  EXPECT_FALSE(late.has_value());
  EXPECT_FALSE(lazy.Peek().has_value());  // v1 stays out of the cache.
  env_.AdvanceBy(absl::Milliseconds(500));
  EXPECT_EQ(**late, "v2");
  EXPECT_EQ(*lazy.Peek(), "v2");
}

TEST_F(AsyncLazyTest, ValuesExpireAfterTheirTtl) {
  Lazy lazy(Factory(), {.env = &env_, .ttl = absl::Seconds(10)});
  EXPECT_FALSE(GetNow(lazy).has_value());
  env_.AdvanceBy(absl::Seconds(1));  // Computed at 1 s: served until 11 s.
  env_.AdvanceBy(absl::Seconds(10) - absl::Nanoseconds(1));
  EXPECT_EQ(**GetNow(lazy), "v1");
  env_.AdvanceBy(absl::Nanoseconds(1));
  EXPECT_FALSE(lazy.Peek().has_value());
  EXPECT_FALSE(GetNow(lazy).has_value());  // Expired: computes again.
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**GetNow(lazy), "v2");
  EXPECT_EQ(lazy.loads(), 2);
}

TEST_F(AsyncLazyTest, RefreshAheadServesTheOldValueWhileOneRefreshRuns) {
  Lazy lazy(Factory(), {.env = &env_,
                        .ttl = absl::Seconds(100),
                        .refresh_after = absl::Seconds(10)});
  GetNow(lazy);
  env_.AdvanceBy(absl::Seconds(1));
  env_.AdvanceBy(absl::Seconds(10));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(**GetNow(lazy), "v1");
  EXPECT_EQ(computations_, 2);  // Exactly one refresh.
  EXPECT_TRUE(lazy.Snapshot().refreshing);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**GetNow(lazy), "v2");
  EXPECT_FALSE(lazy.Snapshot().refreshing);
}

TEST_F(AsyncLazyTest, AFailedRefreshKeepsTheOldValue) {
  Lazy lazy(Factory(), {.env = &env_,
                        .ttl = absl::Seconds(100),
                        .refresh_after = absl::Seconds(10)});
  GetNow(lazy);
  env_.AdvanceBy(absl::Seconds(11));
  fail_ = true;
  EXPECT_EQ(**GetNow(lazy), "v1");
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**GetNow(lazy), "v1");
  const LazySnapshot<std::string> snap = lazy.Snapshot();
  EXPECT_EQ(snap.state, LazyState::kReady);
  EXPECT_EQ(snap.error, absl::UnavailableError("down"));
  EXPECT_EQ(snap.stats.load_failures, 1);
}

TEST_F(AsyncLazyTest, FailuresAreCachedOnlyWhenAskedAndOnlyForThatLong) {
  fail_ = true;
  Lazy lazy(Factory(), {.env = &env_, .cache_failures_for = absl::Seconds(5)});
  GetNow(lazy);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(GetNow(lazy)->status(), absl::UnavailableError("down"));
  EXPECT_EQ(computations_, 1);  // Served from the negative cache.
  EXPECT_EQ(lazy.Snapshot().state, LazyState::kFailed);
  env_.AdvanceBy(absl::Seconds(5));
  fail_ = false;
  EXPECT_FALSE(GetNow(lazy).has_value());
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(**GetNow(lazy), "v2");
}

TEST_F(AsyncLazyTest, AResetCancelsARefreshNobodyWaitsFor) {
  // The first computation answers at once; the refresh ends only when its
  // token is cancelled, and records why.
  int computations = 0;
  std::vector<absl::Status> refresh_ends;
  std::vector<std::unique_ptr<CancellationCallback>> watching;
  Lazy lazy(
      [&](const CancellationToken& token, Lazy::Callback done) {
        if (++computations == 1) return std::move(done)(std::string("v"));
        auto pending = std::make_shared<Lazy::Callback>(std::move(done));
        watching.push_back(std::make_unique<CancellationCallback>(
            token, [&refresh_ends, pending](const absl::Status& reason) {
              refresh_ends.push_back(reason);
              std::move (*pending)(reason);
            }));
      },
      {.env = &env_, .refresh_after = absl::Seconds(5)});
  GetNow(lazy);
  env_.AdvanceBy(absl::Seconds(6));
  GetNow(lazy);  // Starts a refresh.
  EXPECT_EQ(computations, 2);
  EXPECT_TRUE(refresh_ends.empty());
  lazy.Reset();
  ASSERT_EQ(refresh_ends.size(), 1u);
  EXPECT_EQ(refresh_ends[0], absl::CancelledError("reset"));
  EXPECT_EQ(lazy.Snapshot().stats.load_failures, 0);  // Not this generation's.
}

TEST_F(AsyncLazyTest, CloseEndsWaitersAndEveryLaterGet) {
  Lazy lazy(Factory());
  std::optional<absl::StatusOr<std::string>> waiting;
  lazy.Get({}, [&](absl::StatusOr<std::string> v) { waiting = v; });
  lazy.Close(absl::AbortedError("deleted"));
  EXPECT_EQ(waiting->status(), absl::AbortedError("deleted"));
  EXPECT_EQ(GetNow(lazy)->status(), absl::AbortedError("deleted"));
  // The computation was cancelled with the reason, and its sleep ended at
  // once.
  ASSERT_EQ(tokens_.size(), 1u);
  EXPECT_EQ(tokens_[0].reason(), absl::AbortedError("deleted"));
  EXPECT_EQ(env_.pending_timers(), 0u);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_FALSE(lazy.Peek().has_value());
}

TEST_F(AsyncLazyTest, GetAnsweredSaysCacheOrComputationGenerationAndWhen) {
  Lazy lazy(Factory());
  using Got = std::pair<absl::StatusOr<std::string>, LazyAnswer>;
  auto get = [&](std::optional<Got>* out) {
    lazy.GetAnswered({}, [out](absl::StatusOr<std::string> v,
                               const LazyAnswer& how) { *out = Got(v, how); });
  };
  std::optional<Got> first, second;
  get(&first);
  get(&second);  // Joins the same computation.
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(first.has_value() && second.has_value());
  for (const Got* g : {&*first, &*second}) {
    EXPECT_EQ(*g->first, "v1");
    EXPECT_FALSE(g->second.from_cache);
    EXPECT_EQ(g->second.generation, 0u);
    // The time Snapshot() reports.
    EXPECT_EQ(g->second.computed_at, lazy.Snapshot().computed_at);
  }
  env_.AdvanceBy(absl::Seconds(5));
  std::optional<Got> cached;
  get(&cached);
  ASSERT_TRUE(cached.has_value());
  EXPECT_TRUE(cached->second.from_cache);
  EXPECT_EQ(cached->second.computed_at, first->second.computed_at);

  // A computation started before a Reset answers its waiter with its own
  // generation; the next one computes for the new generation.
  lazy.Reset();
  std::optional<Got> before_reset, after_reset;
  get(&before_reset);
  lazy.Reset();
  get(&after_reset);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(before_reset.has_value() && after_reset.has_value());
  EXPECT_EQ(before_reset->second.generation, 1u);
  EXPECT_FALSE(before_reset->second.from_cache);
  EXPECT_EQ(after_reset->second.generation, 2u);

  // A waiter that leaves was answered by neither.
  CancellationSource leaving;
  lazy.Reset();
  std::optional<Got> left;
  lazy.GetAnswered(leaving.token(),
                   [&](absl::StatusOr<std::string> v, const LazyAnswer& how) {
                     left = Got(v, how);
                   });
  leaving.Cancel(absl::CancelledError("gone"));
  ASSERT_TRUE(left.has_value());
  EXPECT_FALSE(left->second.from_cache);
  EXPECT_EQ(left->second.computed_at, absl::InfinitePast());
  env_.AdvanceBy(absl::Seconds(1));
}

TEST_F(AsyncLazyTest, SnapshotShowsStateGenerationAndCounters) {
  Lazy lazy(Factory(), {.env = &env_, .ttl = absl::Seconds(60)});
  EXPECT_EQ(lazy.Snapshot().state, LazyState::kEmpty);
  GetNow(lazy);
  GetNow(lazy);
  EXPECT_EQ(lazy.Snapshot().state, LazyState::kComputing);
  const absl::Time start = env_.Now();
  env_.AdvanceBy(absl::Seconds(1));
  GetNow(lazy);
  LazySnapshot<std::string> snap = lazy.Snapshot();
  EXPECT_EQ(snap.state, LazyState::kReady);
  EXPECT_EQ(*snap.value, "v1");
  EXPECT_EQ(snap.computed_at, start + absl::Seconds(1));
  EXPECT_EQ(snap.expires_at, start + absl::Seconds(61));
  EXPECT_EQ(snap.stats.misses, 2);
  EXPECT_EQ(snap.stats.hits, 1);
  EXPECT_EQ(snap.stats.loads, 1);
  EXPECT_EQ(snap.stats.last_load_duration, absl::Seconds(1));
  lazy.Reset();
  snap = lazy.Snapshot();
  EXPECT_EQ(snap.state, LazyState::kEmpty);
  EXPECT_EQ(snap.generation, 1u);
}

TEST(AsyncLazyThreadsTest, ManyThreadsGetOneComputation) {
  EventLoop loop(2);
  std::atomic<int> computations{0};
  AsyncLazy<int> lazy(
      [&](const CancellationToken& token, AsyncLazy<int>::Callback done) {
        computations++;
        SleepFor(loop, token, absl::Milliseconds(50),
                 [done = std::move(done)](absl::Status) mutable {
                   std::move(done)(42);
                 });
      });
  constexpr int kCallers = 1000;
  weft::testing::BlockingCounter left(kCallers);
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCallers / 4; ++i) {
        lazy.Get({}, [&](absl::StatusOr<int> v) {
          if (v.ok() && *v == 42) right++;
          left.DecrementCount();
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(left.Wait());
  EXPECT_EQ(right.load(), kCallers);
  EXPECT_EQ(computations.load(), 1);
}

}  // namespace
}  // namespace weft::engine
