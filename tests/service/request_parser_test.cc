#include "server/service/request_parser.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/deep.h"
#include "tests/testing/status_matchers.h"
#include "weft/v1/orchestrator.pb.h"

namespace weft::service {
namespace {

using ::weft::testing::DeepArgsBytes;
using ::weft::testing::DeepPlanBytes;

using ::testing::HasSubstr;
using ::weft::testing::IsOk;
using ::weft::testing::StatusIs;

// weftd's defaults.
constexpr int kPlanDepth = 16;
constexpr int kValueDepth = 16;

TEST(RequestParserTest, ParsesAPlanWithinTheDepthLimit) {
  weft::v1::RunRequest request;
  EXPECT_THAT(
      ParseRequestBytes(DeepPlanBytes(16), kPlanDepth, kValueDepth, &request),
      IsOk());
  EXPECT_TRUE(request.plan().has_parallel());
}

TEST(RequestParserTest, PlanOverTheLimitButWithinTheParserIsLeftToTheCompiler) {
  weft::v1::RunRequest request;
  EXPECT_THAT(
      ParseRequestBytes(DeepPlanBytes(17), kPlanDepth, kValueDepth, &request),
      IsOk());
}

TEST(RequestParserTest, PlanTooDeepToParseNamesTheLimitAndWhereItIsCrossed) {
  for (int depth : {100, 5000}) {
    weft::v1::RunRequest request;
    absl::Status s = ParseRequestBytes(DeepPlanBytes(depth), kPlanDepth,
                                       kValueDepth, &request);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("nested deeper than 16 levels, the limit "
                                      "(--max_plan_depth)")))
        << depth;
    // The path counts 17 plan nodes: the root and 16 children[0].
    std::string expected = "plan";
    for (int i = 0; i < 16; ++i)
      absl::StrAppend(&expected, ".parallel.children[0]");
    EXPECT_THAT(std::string(s.message()),
                ::testing::StartsWith(expected + ":"));
  }
}

TEST(RequestParserTest, TruncatedBytesAreNotAValidRequest) {
  std::string bytes = DeepPlanBytes(3);
  bytes.resize(bytes.size() - 2);
  weft::v1::RunRequest request;
  EXPECT_THAT(
      ParseRequestBytes(bytes, kPlanDepth, kValueDepth, &request),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "the request is not a valid weft.v1.RunRequest message"));
}

TEST(RequestParserTest, RepeatedSiblingsAreCountedInThePath) {
  weft::v1::RunRequest deep;
  ASSERT_TRUE(deep.ParseFromString(DeepPlanBytes(20)));
  weft::v1::RunRequest request;
  auto* children = request.mutable_plan()->mutable_parallel();
  children->add_children()->mutable_call()->set_handler("value");
  children->add_children()->mutable_call()->set_handler("value");
  weft::v1::PlanNode* node = children->add_children();
  for (int i = 0; i < 200; ++i) node = node->mutable_parallel()->add_children();
  weft::v1::RunRequest parsed;
  absl::Status s = ParseRequestBytes(request.SerializeAsString(), kPlanDepth,
                                     kValueDepth, &parsed);
  EXPECT_THAT(
      std::string(s.message()),
      ::testing::StartsWith("plan.parallel.children[2].parallel.children[0]"));
}

TEST(RequestParserTest, ArgumentsTooDeepToParseAreNamed) {
  weft::v1::RunRequest request;
  // A list level is two message levels: 30 lists parse (the compiler then
  // refuses them by their depth, naming it), 200 do not.
  EXPECT_THAT(
      ParseRequestBytes(DeepArgsBytes(30), kPlanDepth, kValueDepth, &request),
      IsOk());
  EXPECT_THAT(
      ParseRequestBytes(DeepArgsBytes(200), kPlanDepth, kValueDepth, &request),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "plan.call.args: arguments nest deeper than values may: at "
               "most 16 levels of lists and objects (--max_value_depth)"));
}

TEST(RequestParserTest, ParsesTheDeepestRequestTheLimitsAllow) {
  // A plan at --max_plan_depth whose call's argument is an object nesting
  // --max_value_depth levels: the most message levels a request may take.
  weft::v1::CreateLazyValueRequest request;
  weft::v1::PlanNode* node = request.mutable_lazy_value()->mutable_plan();
  for (int i = 1; i < kPlanDepth; ++i) {
    node = node->mutable_parallel()->add_children();
  }
  node->mutable_call()->set_handler("value");
  google::protobuf::Value* v =
      &(*node->mutable_call()->mutable_args()->mutable_fields())["value"];
  for (int i = 0; i < kValueDepth; ++i) {
    v = &(*v->mutable_struct_value()->mutable_fields())["a"];
  }
  v->set_number_value(1);
  weft::v1::CreateLazyValueRequest parsed;
  EXPECT_THAT(ParseRequestBytes(request.SerializeAsString(), kPlanDepth,
                                kValueDepth, &parsed),
              IsOk());
  // One level more does not parse.
  v->mutable_struct_value();
  EXPECT_THAT(ParseRequestBytes(request.SerializeAsString(), kPlanDepth,
                                kValueDepth, &parsed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--max_value_depth")));
}

}  // namespace
}  // namespace weft::service
