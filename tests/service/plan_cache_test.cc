#include "server/service/plan_cache.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace weft::service {
namespace {

std::shared_ptr<const PlanCache::Entry> EntryOf(int64_t bytes) {
  auto entry = std::make_shared<PlanCache::Entry>();
  entry->bytes = bytes;
  return entry;
}

TEST(PlanCacheTest, FindsWhatWasInsertedByItsExactBytes) {
  PlanCache cache(1 << 20);
  auto entry = EntryOf(100);
  cache.Insert("request a", entry);
  EXPECT_EQ(cache.Find("request a"), entry);
  EXPECT_EQ(cache.Find("request b"), nullptr);
  EXPECT_EQ(cache.Find("request a "), nullptr);
  EXPECT_EQ(cache.Find(std::string("request a\0", 10)), nullptr);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), 100 + 9);
}

TEST(PlanCacheTest, KeepsTheFirstEntryForABytesItAlreadyHas) {
  PlanCache cache(1 << 20);
  auto first = EntryOf(10);
  cache.Insert("same", first);
  cache.Insert("same", EntryOf(10));
  EXPECT_EQ(cache.Find("same"), first);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), 10 + 4);
}

TEST(PlanCacheTest, EvictsTheLeastRecentlyUsedBeyondItsBytes) {
  // Each entry costs 100 + 1 bytes: three fit.
  PlanCache cache(303);
  cache.Insert("a", EntryOf(100));
  cache.Insert("b", EntryOf(100));
  cache.Insert("c", EntryOf(100));
  ASSERT_NE(cache.Find("a"), nullptr);  // Now b is the least recent.
  cache.Insert("d", EntryOf(100));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.bytes(), 303);
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_NE(cache.Find("c"), nullptr);
  EXPECT_NE(cache.Find("d"), nullptr);
}

TEST(PlanCacheTest, AnEvictedEntryStaysValidForWhoeverHoldsIt) {
  PlanCache cache(101);
  cache.Insert("a", EntryOf(100));
  std::shared_ptr<const PlanCache::Entry> held = cache.Find("a");
  cache.Insert("b", EntryOf(100));
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(held->bytes, 100);
}

TEST(PlanCacheTest, KeepsNothingTooLargeOrWhenDisabled) {
  PlanCache cache(1 << 20);
  cache.Insert(std::string(PlanCache::kMaxRequestBytes + 1, 'x'), EntryOf(1));
  cache.Insert("large plan", EntryOf(1 << 20));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0);

  PlanCache off(0);
  EXPECT_FALSE(off.enabled());
  off.Insert("a", EntryOf(1));
  EXPECT_EQ(off.Find("a"), nullptr);
  EXPECT_EQ(off.size(), 0u);
}

}  // namespace
}  // namespace weft::service
