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

TEST(RequestParserTest, ParsesAPlanWithinTheDepthLimit) {
  weft::v1::RunRequest request;
  EXPECT_THAT(ParseRequestBytes(DeepPlanBytes(32), 32, &request), IsOk());
  EXPECT_TRUE(request.plan().has_parallel());
}

TEST(RequestParserTest, PlanOverTheLimitButWithinTheParserIsLeftToTheCompiler) {
  weft::v1::RunRequest request;
  EXPECT_THAT(ParseRequestBytes(DeepPlanBytes(33), 32, &request), IsOk());
}

TEST(RequestParserTest, PlanTooDeepToParseNamesTheLimitAndWhereItIsCrossed) {
  for (int depth : {100, 5000}) {
    weft::v1::RunRequest request;
    absl::Status s = ParseRequestBytes(DeepPlanBytes(depth), 32, &request);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("nested deeper than 32 levels, the limit "
                                      "(--max_plan_depth)")))
        << depth;
    // The path counts 33 plan nodes: the root and 32 children[0].
    std::string expected = "plan";
    for (int i = 0; i < 32; ++i)
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
      ParseRequestBytes(bytes, 32, &request),
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
  absl::Status s = ParseRequestBytes(request.SerializeAsString(), 32, &parsed);
  EXPECT_THAT(
      std::string(s.message()),
      ::testing::StartsWith("plan.parallel.children[2].parallel.children[0]"));
}

TEST(RequestParserTest, ArgumentsTooDeepToParseAreNamed) {
  weft::v1::RunRequest request;
  EXPECT_THAT(ParseRequestBytes(DeepArgsBytes(40), 32, &request), IsOk());
  EXPECT_THAT(ParseRequestBytes(DeepArgsBytes(200), 32, &request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "plan.call.args: arguments nested deeper than the 100 "
                       "levels the parser allows"));
}

}  // namespace
}  // namespace weft::service
