#include "server/engine/sequence.h"

#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/sleep.h"
#include "tests/testing/manual_env.h"

namespace weft::engine {
namespace {

using ::testing::ElementsAre;

class SequenceTest : public ::testing::Test {
 protected:
  SequenceTask Step(int id, absl::Duration d, absl::Status result) {
    return [this, id, d, result](const CancellationToken& token, Done done) {
      started_.push_back(id);
      SleepFor(env_, token, d,
               [result, done = std::move(done)](absl::Status s) mutable {
                 std::move(done)(s.ok() ? result : s);
               });
    };
  }
  void Run(std::vector<SequenceTask> tasks,
           const CancellationToken& token = {}) {
    RunInSequence(token, std::move(tasks),
                  [this](SequenceResult r) { result_ = r; });
  }

  ManualEnv env_;
  std::vector<int> started_;
  std::optional<SequenceResult> result_;
};

TEST_F(SequenceTest, RunsStepsOneAfterAnother) {
  std::vector<SequenceTask> steps;
  steps.push_back(Step(0, absl::Seconds(1), absl::OkStatus()));
  steps.push_back(Step(1, absl::Seconds(1), absl::OkStatus()));
  Run(std::move(steps));
  EXPECT_THAT(started_, ElementsAre(0));
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_THAT(started_, ElementsAre(0, 1));
  EXPECT_FALSE(result_.has_value());
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
  EXPECT_EQ(result_->ran, 2);
}

TEST_F(SequenceTest, FirstFailureStopsItAndLaterStepsNeverStart) {
  std::vector<SequenceTask> steps;
  steps.push_back(Step(0, absl::Seconds(1), absl::OkStatus()));
  steps.push_back(Step(1, absl::Seconds(1), absl::NotFoundError("no")));
  steps.push_back(Step(2, absl::Seconds(1), absl::OkStatus()));
  Run(std::move(steps));
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status, absl::NotFoundError("no"));
  EXPECT_EQ(result_->ran, 2);
  EXPECT_THAT(started_, ElementsAre(0, 1));
}

TEST_F(SequenceTest, CancellationStopsTheRunningStepAndTheRest) {
  CancellationSource source;
  std::vector<SequenceTask> steps;
  steps.push_back(Step(0, absl::Hours(1), absl::OkStatus()));
  steps.push_back(Step(1, absl::Seconds(1), absl::OkStatus()));
  Run(std::move(steps), source.token());
  source.Cancel(absl::CancelledError("stop"));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status, absl::CancelledError("stop"));
  EXPECT_EQ(result_->ran, 1);
}

TEST_F(SequenceTest, ManyInlineStepsDoNotGrowTheStack) {
  std::vector<SequenceTask> steps;
  int ran = 0;
  for (int i = 0; i < 100'000; ++i) {
    steps.push_back([&ran](const CancellationToken&, Done done) {
      ++ran;
      std::move(done)(absl::OkStatus());
    });
  }
  Run(std::move(steps));
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(ran, 100'000);
  EXPECT_EQ(result_->ran, 100'000);
}

TEST_F(SequenceTest, EmptySequenceSucceedsAtOnce) {
  Run({});
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
  EXPECT_EQ(result_->ran, 0);
}

}  // namespace
}  // namespace weft::engine
