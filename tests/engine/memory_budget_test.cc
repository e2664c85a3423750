#include "server/engine/memory_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace weft::engine {
namespace {

TEST(MemoryBudgetTest, TakesBytesUpToItsLimitAndRefusesWhatWouldPassIt) {
  MemoryBudget budget(100);
  EXPECT_TRUE(budget.TryAdd(60));
  EXPECT_TRUE(budget.TryAdd(40));
  EXPECT_FALSE(budget.TryAdd(1));
  EXPECT_EQ(budget.used(), 100);
  EXPECT_EQ(budget.refusals(), 1);
  budget.Remove(30);
  EXPECT_TRUE(budget.TryAdd(30));
  EXPECT_FALSE(budget.TryAdd(31));
  EXPECT_EQ(budget.peak(), 100);
}

TEST(MemoryBudgetTest, ARefusedRequestAddsNothing) {
  MemoryBudget budget(10);
  EXPECT_FALSE(budget.TryAdd(11));
  EXPECT_EQ(budget.used(), 0);
  EXPECT_TRUE(budget.TryAdd(10));
}

TEST(MemoryChargeTest, GivesItsBytesBackWhenDestroyed) {
  MemoryBudget budget(100);
  {
    MemoryCharge charge(&budget);
    EXPECT_TRUE(charge.TryAdd(70));
    EXPECT_EQ(charge.bytes(), 70);
    EXPECT_EQ(budget.used(), 70);
    MemoryCharge other(&budget);
    EXPECT_FALSE(other.TryAdd(31));
    EXPECT_EQ(other.bytes(), 0);
  }
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryChargeTest, RemovesNoMoreThanItHolds) {
  MemoryBudget budget(100);
  MemoryCharge a(&budget);
  MemoryCharge b(&budget);
  ASSERT_TRUE(a.TryAdd(10));
  ASSERT_TRUE(b.TryAdd(20));
  a.Remove(50);  // More than it holds: b's bytes stay counted.
  EXPECT_EQ(a.bytes(), 0);
  EXPECT_EQ(budget.used(), 20);
}

TEST(MemoryChargeTest, MovingTransfersTheBytes) {
  MemoryBudget budget(100);
  MemoryCharge a(&budget);
  ASSERT_TRUE(a.TryAdd(40));
  MemoryCharge b(std::move(a));
  EXPECT_EQ(b.bytes(), 40);
  EXPECT_EQ(budget.used(), 40);
  MemoryCharge c(&budget);
  ASSERT_TRUE(c.TryAdd(5));
  c = std::move(b);  // c's own 5 bytes go back.
  EXPECT_EQ(c.bytes(), 40);
  EXPECT_EQ(budget.used(), 40);
  c.Reset();
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryChargeTest, WithoutABudgetItOnlyCounts) {
  MemoryCharge charge;
  EXPECT_TRUE(charge.TryAdd(int64_t{1} << 40));
  EXPECT_EQ(charge.bytes(), int64_t{1} << 40);
}

TEST(MemoryBudgetTest, ARefusalSaysWhatItHoldsItsFlagAndWhatWasNeeded) {
  MemoryBudget budget(1000, "the runs in flight", "--max_inflight_bytes");
  ASSERT_TRUE(budget.TryAdd(600));
  const absl::Status s = budget.Refusal(500, "this run");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "weftd holds 600 bytes for the runs in flight and may hold 1000 "
            "(--max_inflight_bytes); this run needs 500 more. Retry later");
  MemoryCharge none;
  EXPECT_EQ(none.Refusal(5, "this answer").code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(MemoryBudgetTest, ConcurrentChargesNeverPassTheLimit) {
  MemoryBudget budget(1000);
  std::vector<std::thread> threads;
  std::atomic<int64_t> granted{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        MemoryCharge c(&budget);
        if (c.TryAdd(7)) {
          granted.fetch_add(1);
          EXPECT_LE(budget.used(), 1000);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(budget.used(), 0);
  EXPECT_LE(budget.peak(), 1000);
  EXPECT_GT(granted.load(), 0);
}

}  // namespace
}  // namespace weft::engine
