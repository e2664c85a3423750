#include "server/common/duration.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::common {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

TEST(DurationTest, ParsesTheJsonFormOfDurations) {
  EXPECT_EQ(*common::ParseJsonDuration("2s"), absl::Seconds(2));
  EXPECT_EQ(*common::ParseJsonDuration("0.3s"), absl::Milliseconds(300));
  EXPECT_EQ(*common::ParseJsonDuration("1.000000001s"),
            absl::Seconds(1) + absl::Nanoseconds(1));
  EXPECT_EQ(*common::ParseJsonDuration("-1.5s"), absl::Milliseconds(-1500));
  EXPECT_EQ(*common::ParseJsonDuration("0s"), absl::ZeroDuration());
}

TEST(DurationTest, RefusesOtherFormsAndSaysWhatToWrite) {
  for (const char* bad : {"", "s", "1", "1ms", "1.s", ".5s", "1.0000000001s",
                          "abc", "1 s", "+1s", "1e3s", "--1s"}) {
    EXPECT_THAT(common::ParseJsonDuration(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("like \"1.5s\"")))
        << bad;
  }
  EXPECT_THAT(common::ParseJsonDuration("999999999999s"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("longer than the largest duration")));
}

TEST(DurationTest, FormatsLikeProtobufsJsonPrinter) {
  EXPECT_EQ(common::FormatJsonDuration(absl::Seconds(2)), "2s");
  EXPECT_EQ(common::FormatJsonDuration(absl::Milliseconds(300)), "0.300s");
  EXPECT_EQ(common::FormatJsonDuration(absl::Microseconds(1500001)),
            "1.500001s");
  EXPECT_EQ(common::FormatJsonDuration(absl::Nanoseconds(1)), "0.000000001s");
  EXPECT_EQ(common::FormatJsonDuration(absl::Milliseconds(-1500)), "-1.500s");
  EXPECT_EQ(common::FormatJsonDuration(absl::Minutes(10)), "600s");
}

}  // namespace
}  // namespace weft::common
