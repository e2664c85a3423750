#include "server/handlers/value_size.h"

#include <string>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace weft::handlers {
namespace {

using google::protobuf::Value;

Value Json(const std::string& json) {
  Value v;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &v).ok())
      << json;
  return v;
}

class MeasureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MeasureTest, WireSizeIsExactlyWhatProtobufSerializes) {
  const Value v = Json(GetParam());
  EXPECT_EQ(Measure(v).wire, static_cast<int64_t>(v.ByteSizeLong()));
}

TEST_P(MeasureTest, MemoryIsAtLeastWhatProtobufAllocates) {
  const Value v = Json(GetParam());
  EXPECT_GE(Measure(v).memory, static_cast<int64_t>(v.SpaceUsedLong()));
  EXPECT_GE(Measure(v).memory, Measure(v).wire);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MeasureTest,
    ::testing::Values("null", "true", "false", "0", "1.5", "\"\"", "\"short\"",
                      "\"" + std::string(200, 's') + "\"",
                      "\"" + std::string(70'000, 'l') + "\"", "[]", "{}",
                      "[1, \"a\", null, [], {}]", "{\"\": {}}",
                      "{\"a\": 1, \"b\": [true, {\"c\": \"d\"}]}",
                      "[[[[[[[[[[\"deep\"]]]]]]]]]]",
                      "{\"k\": {\"k\": {\"k\": {\"k\": {\"k\": 1}}}}}"));

TEST(MeasureTest, ManySmallElementsCountTheirObjects) {
  Value v;
  auto* list = v.mutable_list_value();
  for (int i = 0; i < 10'000; ++i) list->add_values()->set_number_value(i);
  const ValueSize size = Measure(v);
  EXPECT_EQ(size.wire, static_cast<int64_t>(v.ByteSizeLong()));
  EXPECT_GE(size.memory, static_cast<int64_t>(v.SpaceUsedLong()));
  // The estimate is not wildly above what protobuf allocates either.
  EXPECT_LE(size.memory, 3 * static_cast<int64_t>(v.SpaceUsedLong()));
}

TEST(CompositeSizeTest, SizesAListOrAnObjectFromItsParts) {
  const Value a = Json("{\"x\": [1, 2, 3]}");
  const Value b = Json("\"" + std::string(300, 'b') + "\"");
  Value list;
  *list.mutable_list_value()->add_values() = a;
  *list.mutable_list_value()->add_values() = b;
  CompositeSize l;
  l.AddItem(Measure(a));
  l.AddItem(Measure(b));
  EXPECT_EQ(l.AsList().wire, static_cast<int64_t>(list.ByteSizeLong()));

  Value object;
  (*object.mutable_struct_value()->mutable_fields())["first"] = a;
  (*object.mutable_struct_value()->mutable_fields())["second"] = b;
  CompositeSize o;
  o.AddField(5, Measure(a));
  o.AddField(6, Measure(b));
  EXPECT_EQ(o.AsObject().wire, static_cast<int64_t>(object.ByteSizeLong()));
  EXPECT_EQ(o.AsObject().wire, Measure(object).wire);
}

TEST(CompositeSizeTest, EmptyCompositesAreTwoBytes) {
  EXPECT_EQ(CompositeSize().AsList().wire, Json("[]").ByteSizeLong());
  EXPECT_EQ(CompositeSize().AsObject().wire, Json("{}").ByteSizeLong());
}

}  // namespace
}  // namespace weft::handlers
