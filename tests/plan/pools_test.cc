#include "server/plan/pools.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::plan {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

TEST(PoolsTest, ParsesNamesThreadsAndQueues) {
  auto specs = ParsePoolSpecs("default=2:1000, images=1:64");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[1].name, "images");
  EXPECT_EQ((*specs)[1].threads, 1);
  EXPECT_EQ((*specs)[1].queue, 64);
  PoolSet pools(*specs);
  EXPECT_EQ(pools.Names(), "default, images");
  EXPECT_EQ(pools.Find("images")->threads(), 1);
  EXPECT_EQ(pools.Find("images")->queue_capacity(), 64);
  EXPECT_EQ(pools.Find("gpu"), nullptr);
}

TEST(PoolsTest, BadSpecsSayWhatIsWrong) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"images=1:64", "has no pool named default"},
      {"default", "\"default\": no '='"},
      {"default=2", "no ':' between threads and queue"},
      {"default=0:10", "threads must be a number from 1 to 256"},
      {"default=2:x", "the queue must be a number from 0 to 1000000"},
      {"def ault=2:1", "a pool name is 1 to 64 letters"},
      {"default=1:1,default=2:2", "the pool is named twice"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        ParsePoolSpecs(c.text),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.text;
  }
}

}  // namespace
}  // namespace weft::plan
