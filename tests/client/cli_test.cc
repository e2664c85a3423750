#include "client/cli.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
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

namespace weft::cli {
namespace {

TEST(CallFailedTest, PrintsTheReasonTheFieldsTheResourceAndTheRetryDelay) {
  absl::Status s = common::WithRetryDelay(
      common::WithLimit(absl::ResourceExhaustedError("too many tasks waiting"),
                        common::kTaskQueueFull, "--max_queued_tasks", 10),
      absl::Milliseconds(1500));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(CallFailed(s), kExitCallFailed);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "weft: RESOURCE_EXHAUSTED: too many tasks waiting\n"
            "  reason: TASK_QUEUE_FULL (flag --max_queued_tasks, limit 10)\n"
            "  retry after: 1.5s\n");

  // A lone field's description is in the message already; a second one's
  // is printed beside its path.
  s = common::WithFieldViolation(
      common::FieldError("plan.call.handler", "unknown handler \"nope\"",
                         common::kUnknownHandler),
      "plan.timeout", "negative");
  ::testing::internal::CaptureStderr();
  CallFailed(s);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "weft: INVALID_ARGUMENT: plan.call.handler: unknown handler "
            "\"nope\"\n"
            "  reason: UNKNOWN_HANDLER\n"
            "  field: plan.call.handler\n"
            "  field: plan.timeout: negative\n");

  s = common::WithResource(
      common::WithReason(absl::NotFoundError("tasks/00ff: no such task"),
                         common::kTaskNotFound),
      "weft.v1.Task", "tasks/00ff");
  ::testing::internal::CaptureStderr();
  CallFailed(s);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "weft: NOT_FOUND: tasks/00ff: no such task\n"
            "  reason: TASK_NOT_FOUND\n"
            "  resource: weft.v1.Task tasks/00ff\n");

  // gRPC's own errors carry no details: the line alone.
  ::testing::internal::CaptureStderr();
  CallFailed(absl::DeadlineExceededError("Deadline Exceeded"));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "weft: DEADLINE_EXCEEDED: Deadline Exceeded\n");
}

}  // namespace
}  // namespace weft::cli
