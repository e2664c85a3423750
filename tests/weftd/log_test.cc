#include "server/weftd/log.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"

namespace weft::weftd {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(LogLimiterTest, LetsABurstThroughPerWindowAndCountsTheRest) {
  LogLimiter limiter(3, absl::Minutes(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  int64_t left_out = -1;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Allow(t0 + absl::Seconds(i), &left_out));
    EXPECT_EQ(left_out, 0);
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(limiter.Allow(t0 + absl::Seconds(10), &left_out));
  }
  // A new window: the count of what was left out comes with the first line.
  EXPECT_TRUE(limiter.Allow(t0 + absl::Seconds(61), &left_out));
  EXPECT_EQ(left_out, 100);
  EXPECT_TRUE(limiter.Allow(t0 + absl::Seconds(62), &left_out));
  EXPECT_EQ(left_out, 0);
}

TEST(LibraryLogsTest, ProtobufsComplaintsAboutBadInputAreRateLimited) {
  std::vector<std::string> lines;
  InstallLibraryLogs([&](absl::string_view line) { lines.emplace_back(line); });
  // A string field that is not UTF-8: protobuf logs an error on every parse.
  google::protobuf::Value with_string;
  with_string.set_string_value("ok");
  std::string wire = with_string.SerializeAsString();
  wire[wire.size() - 1] = '\xff';  // "o\xff": not UTF-8.
  google::protobuf::Value v;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(v.ParseFromString(wire));
  EXPECT_THAT(lines, SizeIs(20));
  EXPECT_THAT(lines[0], HasSubstr("protobuf: "));
  EXPECT_THAT(lines[0], HasSubstr("UTF-8"));
}

}  // namespace
}  // namespace weft::weftd
