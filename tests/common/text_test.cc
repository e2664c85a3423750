#include "server/common/text.h"

#include <string>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/handlers/handler.h"

namespace weft::common {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(QuoteTest, QuotesShortTextWhole) {
  EXPECT_EQ(common::Quote("slep"), "\"slep\"");
  EXPECT_EQ(common::Quote(""), "\"\"");
  EXPECT_EQ(common::Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(QuoteTest, QuotesAShortPrefixOfLongTextAndSaysHowLongItWas) {
  const std::string q = common::Quote(std::string(10'000, 'x'));
  EXPECT_EQ(
      q, "\"" + std::string(common::kQuoteBytes, 'x') + "\"... (10000 bytes)");
}

TEST(QuoteTest, EscapesQuotesControlCharactersAndBytesThatAreNotUtf8) {
  EXPECT_EQ(common::Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(common::Quote("line\nnext\x01"), "\"line\\nnext\\x01\"");
  EXPECT_EQ(common::Quote("\xff\xfe"), "\"\\xff\\xfe\"");
}

TEST(QuoteTest, NeverCutsACharacterInTwo) {
  // 63 ASCII bytes, then a two-byte character that would end at byte 65.
  const std::string s = std::string(63, 'a') + "\xc3\xa9" + "tail";
  const std::string q = common::Quote(s);
  EXPECT_EQ(q, "\"" + std::string(63, 'a') + "\"... (69 bytes)");
  EXPECT_TRUE(common::IsValidUtf8(q));
}

TEST(AbbreviateTest, KeepsShortMessagesAndCutsLongOnes) {
  EXPECT_EQ(common::Abbreviate("short"), "short");
  const std::string long_message(100'000, 'm');
  const std::string cut = common::Abbreviate(long_message);
  EXPECT_LE(cut.size(), common::kMaxMessageBytes);
  EXPECT_THAT(cut, StartsWith("mmmm"));
  EXPECT_THAT(cut, EndsWith("... (100000 bytes in all)"));
}

TEST(AbbreviateTest, KeepsAStatusCodeAndItsPayloads) {
  absl::Status s = absl::PermissionDeniedError(std::string(5000, 'p'));
  s.SetPayload("weft.test/payload", absl::Cord("kept"));
  absl::Status cut = common::Abbreviate(s);
  EXPECT_EQ(cut.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_LE(cut.message().size(), common::kMaxMessageBytes);
  EXPECT_EQ(cut.GetPayload("weft.test/payload"), absl::Cord("kept"));
  EXPECT_THAT(std::string(cut.message()), HasSubstr("5000 bytes in all"));
}

TEST(IsValidUtf8Test, AcceptsUtf8AndRefusesTheRest) {
  EXPECT_TRUE(common::IsValidUtf8("plain"));
  EXPECT_TRUE(common::IsValidUtf8("\xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(common::IsValidUtf8("\xc3"));          // Cut short.
  EXPECT_FALSE(common::IsValidUtf8("\xc0\xaf"));      // Overlong.
  EXPECT_FALSE(common::IsValidUtf8("\xed\xa0\x80"));  // A surrogate.
  EXPECT_FALSE(common::IsValidUtf8("\xff"));
}

}  // namespace
}  // namespace weft::common

namespace weft::common {
namespace {

TEST(FormatNumberTest, NumbersReadAsTheCallerWroteThem) {
  EXPECT_EQ(common::FormatNumber(100000001), "100000001");
  EXPECT_EQ(common::FormatNumber(-3), "-3");
  EXPECT_EQ(common::FormatNumber(0.1), "0.1");
  EXPECT_EQ(common::FormatNumber(2.5), "2.5");
  EXPECT_EQ(common::FormatNumber(1e300), "1e+300");
  EXPECT_EQ(common::FormatNumber(1.0 / 3), "0.3333333333333333");
}

}  // namespace
}  // namespace weft::common
