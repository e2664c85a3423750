#include "server/handlers/json.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::handlers {
namespace {

using google::protobuf::Value;
using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

class ParseJsonTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParseJsonTest, GivesWhatProtobufsOwnParserGives) {
  Value expected;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(GetParam(), &expected).ok());
  absl::StatusOr<Value> got = ParseJson(GetParam());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(*got, expected))
      << got->DebugString() << " vs " << expected.DebugString();
}

INSTANTIATE_TEST_SUITE_P(
    Documents, ParseJsonTest,
    ::testing::Values(
        "null", "true", "false", "0", "-0.5", "1e3", "2.5E-3", "123456789012",
        "\"\"", "\"plain\"", R"("esc \" \\ \/ \b \f \n \r \t")",
        R"("\u00e9\u20ac\ud83d\ude00")", "\"caf\xc3\xa9\"", "[]", "{}",
        " [ 1 , [ 2 , [ 3 ] ] , { } ] ",
        R"({"a": 1, "b": {"c": [true, null, "x"]}, "d": -1.5e-10})"));

TEST(ParseJsonTest, ADuplicateKeyKeepsTheLastValue) {
  absl::StatusOr<Value> v = ParseJson(R"({"dup": [1, 2], "dup": 3})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->struct_value().fields().at("dup").number_value(), 3);
}

TEST(ParseJsonTest, SaysWhatIsWrongAndWhere) {
  EXPECT_THAT(ParseJson("{\"a\": 1,\n  \"b\" 2}"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "line 2, column 7: expected ':' after the key"));
  EXPECT_THAT(ParseJson("[1, 2"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "line 1, column 6: expected ',' or ']' in the list"));
  EXPECT_THAT(ParseJson("[1, "),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected a value, got the end")));
  EXPECT_THAT(ParseJson("{} x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "line 1, column 4: unexpected text after the value"));
  EXPECT_THAT(ParseJson("\"open"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("a string that never ends")));
  EXPECT_THAT(ParseJson("01"), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("unexpected text")));
  EXPECT_THAT(ParseJson("1e999"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("beyond the range of a double")));
  EXPECT_THAT(ParseJson("\"\\ud800\""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lone UTF-16 surrogate")));
  EXPECT_THAT(
      ParseJson("\"\xff\""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not UTF-8")));
  EXPECT_THAT(ParseJson("\"tab\there\""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("control character")));
  EXPECT_THAT(ParseJson(""), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("expected a value")));
  EXPECT_THAT(ParseJson("tru"), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("expected a value")));
}

TEST(ParseJsonTest, RefusesNestingPastItsLimitWhereItHappens) {
  const std::string ok = std::string(32, '[') + std::string(32, ']');
  EXPECT_TRUE(ParseJson(ok).ok());
  const std::string deep = std::string(33, '[') + std::string(33, ']');
  EXPECT_THAT(ParseJson(deep),
              StatusIs(absl::StatusCode::kOutOfRange,
                       "line 1, column 33: nested deeper than 32 levels of "
                       "objects and lists"));
  EXPECT_TRUE(ParseJson(deep, 33).ok());
}

TEST(ParseJsonTest, AHostileBodyIsRefusedAfterReadingOnlyItsStart) {
  // 100,000 levels (200 KB): protobuf's parser took minutes on this; the
  // limit stops at level 33.
  const std::string body =
      std::string(100'000, '[') + std::string(100'000, ']');
  EXPECT_THAT(ParseJson(body),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("column 33")));
  const std::string objects = [] {
    std::string s;
    for (int i = 0; i < 100'000; ++i) s += "{\"a\":";
    return s;
  }();
  EXPECT_THAT(ParseJson(objects), StatusIs(absl::StatusCode::kOutOfRange,
                                           HasSubstr("nested deeper")));
}

TEST(ParseJsonTest, ALargeFlatDocumentParses) {
  std::string doc = "[";
  for (int i = 0; i < 100'000; ++i) {
    if (i > 0) doc += ',';
    doc += "{\"id\":" + std::to_string(i) + ",\"name\":\"n\"}";
  }
  doc += "]";
  absl::StatusOr<Value> v = ParseJson(doc);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->list_value().values_size(), 100'000);
}

TEST(JsonDepthTest, CountsTheDeepestNestingIgnoringStrings) {
  EXPECT_EQ(JsonDepth("1"), 0);
  EXPECT_EQ(JsonDepth("{\"a\": [[1], {\"b\": \"[[[[\"}]}"), 3);
  EXPECT_EQ(JsonDepth(std::string(500, '[')), 500);
}

}  // namespace
}  // namespace weft::handlers
