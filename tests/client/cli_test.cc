#include "client/cli.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::cli {
namespace {

using ::testing::ElementsAre;
using ::weft::testing::StatusIs;

TEST(TakeRepeatedFlagTest, TakesEveryFormAndLeavesTheRest) {
  std::vector<std::string> args = {"weft",        "task",    "create",
                                   "--label",     "a=1",     "plan.json",
                                   "--label=b=2", "--watch", "--labels=x"};
  absl::StatusOr<std::vector<std::string>> labels =
      TakeRepeatedFlag(args, "label");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(*labels, ElementsAre("a=1", "b=2"));
  EXPECT_THAT(args, ElementsAre("weft", "task", "create", "plan.json",
                                "--watch", "--labels=x"));
}

TEST(TakeRepeatedFlagTest, StopsAtDoubleDashAndNeverTakesTheProgramName) {
  std::vector<std::string> args = {"--label", "--label", "a=1",
                                   "--",      "--label", "b=2"};
  absl::StatusOr<std::vector<std::string>> labels =
      TakeRepeatedFlag(args, "label");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(*labels, ElementsAre("a=1"));
  EXPECT_THAT(args, ElementsAre("--label", "--", "--label", "b=2"));
}

TEST(TakeRepeatedFlagTest, AFlagWithoutItsValueIsAnError) {
  std::vector<std::string> args = {"weft", "task", "list", "--state"};
  EXPECT_THAT(
      TakeRepeatedFlag(args, "state"),
      StatusIs(absl::StatusCode::kInvalidArgument, "--state needs a value"));
}

TEST(ReadInputTest, AMissingFileIsNamed) {
  EXPECT_THAT(ReadInput("/nonexistent/plan.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       "cannot read \"/nonexistent/plan.json\""));
}

}  // namespace
}  // namespace weft::cli
