#include "server/handlers/text.h"

#include <string>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/handlers/handler.h"

namespace weft::handlers {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(QuoteTest, QuotesShortTextWhole) {
  EXPECT_EQ(Quote("slep"), "\"slep\"");
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(QuoteTest, QuotesAShortPrefixOfLongTextAndSaysHowLongItWas) {
  const std::string q = Quote(std::string(10'000, 'x'));
  EXPECT_EQ(q, "\"" + std::string(kQuoteBytes, 'x') + "\"... (10000 bytes)");
}

TEST(QuoteTest, EscapesQuotesControlCharactersAndBytesThatAreNotUtf8) {
  EXPECT_EQ(Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quote("line\nnext\x01"), "\"line\\nnext\\x01\"");
  EXPECT_EQ(Quote("\xff\xfe"), "\"\\xff\\xfe\"");
}

TEST(QuoteTest, NeverCutsACharacterInTwo) {
  // 63 ASCII bytes, then a two-byte character that would end at byte 65.
  const std::string s = std::string(63, 'a') + "\xc3\xa9" + "tail";
  const std::string q = Quote(s);
  EXPECT_EQ(q, "\"" + std::string(63, 'a') + "\"... (69 bytes)");
  EXPECT_TRUE(IsValidUtf8(q));
}

TEST(AbbreviateTest, KeepsShortMessagesAndCutsLongOnes) {
  EXPECT_EQ(Abbreviate("short"), "short");
  const std::string long_message(100'000, 'm');
  const std::string cut = Abbreviate(long_message);
  EXPECT_LE(cut.size(), kMaxMessageBytes);
  EXPECT_THAT(cut, StartsWith("mmmm"));
  EXPECT_THAT(cut, EndsWith("... (100000 bytes in all)"));
}

TEST(AbbreviateTest, KeepsAStatusCodeAndItsPayloads) {
  absl::Status s =
      Permanent(absl::PermissionDeniedError(std::string(5000, 'p')));
  absl::Status cut = Abbreviate(s);
  EXPECT_EQ(cut.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_LE(cut.message().size(), kMaxMessageBytes);
  EXPECT_TRUE(IsPermanent(cut));
  EXPECT_THAT(std::string(cut.message()), HasSubstr("5000 bytes in all"));
}

TEST(IsValidUtf8Test, AcceptsUtf8AndRefusesTheRest) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // Cut short.
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // A surrogate.
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

}  // namespace
}  // namespace weft::handlers

namespace weft::handlers {
namespace {

TEST(FormatNumberTest, NumbersReadAsTheCallerWroteThem) {
  EXPECT_EQ(FormatNumber(100000001), "100000001");
  EXPECT_EQ(FormatNumber(-3), "-3");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
  EXPECT_EQ(FormatNumber(2.5), "2.5");
  EXPECT_EQ(FormatNumber(1e300), "1e+300");
  EXPECT_EQ(FormatNumber(1.0 / 3), "0.3333333333333333");
}

}  // namespace
}  // namespace weft::handlers
