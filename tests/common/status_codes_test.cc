#include "server/common/status_codes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::common {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

TEST(StatusCodesTest, EveryCanonicalNameRoundTrips) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    absl::StatusOr<absl::StatusCode> parsed =
        common::ParseCodeName(common::CodeName(code));
    ASSERT_TRUE(parsed.ok()) << common::CodeName(code);
    EXPECT_EQ(*parsed, code);
  }
  EXPECT_EQ(common::CodeName(absl::StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_EQ(common::CodeName(absl::StatusCode::kDeadlineExceeded),
            "DEADLINE_EXCEEDED");
}

TEST(StatusCodesTest, UnknownOrMiscasedNameIsRefusedWithTheChoices) {
  EXPECT_THAT(common::ParseCodeName("unavailable"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"unavailable\" is not a status code name")));
  EXPECT_THAT(common::ParseCodeName("NOPE"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED")));
}

}  // namespace
}  // namespace weft::common
