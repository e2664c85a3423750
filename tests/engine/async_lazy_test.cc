#include "server/engine/async_lazy.h"

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/manual_env.h"
#include "server/engine/sleep.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using Lazy = AsyncLazy<std::string>;

class AsyncLazyTest : public ::testing::Test {
 protected:
  // A computation that takes 1 s and returns "v<n>" for its n-th run, or
  // fails when fail_ is set.
  Lazy::Factory Factory() {
    return [this](const CancellationToken& token, Lazy::Callback done) {
      const int n = ++computations_;
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
