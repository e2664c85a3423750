#include "server/engine/retry.h"

#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_env.h"

namespace weft::engine {
namespace {

using ::testing::ElementsAre;

RetryPolicy Policy(int attempts) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff = absl::Milliseconds(100);
  p.max_backoff = absl::Seconds(1);
  p.multiplier = 2;
  p.jitter = 0;
  p.retryable = [](const absl::Status& s, int) {
    return s.code() == absl::StatusCode::kUnavailable;
  };
  return p;
}

class RetryTest : public ::testing::Test {
 protected:
  // Attempts that fail with `results[n-1]` (the last repeats), recording
  // when each one started.
  Attempt Fails(std::vector<absl::Status> results) {
    return [this, results](const CancellationToken&, int n, Done done) {
      starts_.push_back(env_.Now() - t0_);
      std::move(done)(results[std::min<size_t>(n - 1, results.size() - 1)]);
    };
  }
  void Run(RetryPolicy p, Attempt a, const CancellationToken& token = {}) {
    Retry(env_, token, std::move(p), std::move(a),
          [this](absl::Status s, int n) {
            status_ = s;
            attempts_ = n;
          });
  }

  ManualEnv env_;
  const absl::Time t0_ = env_.Now();
  std::vector<absl::Duration> starts_;
  std::optional<absl::Status> status_;
  int attempts_ = 0;
};

TEST_F(RetryTest, RetriesWithExponentialBackoffUntilSuccess) {
  Run(Policy(5), Fails({absl::UnavailableError("1"),
                        absl::UnavailableError("2"), absl::OkStatus()}));
  env_.AdvanceBy(absl::Seconds(10));
  ASSERT_TRUE(status_.has_value());
  EXPECT_TRUE(status_->ok());
  EXPECT_EQ(attempts_, 3);
  EXPECT_THAT(starts_,
              ElementsAre(absl::ZeroDuration(), absl::Milliseconds(100),
                          absl::Milliseconds(300)));
}

TEST_F(RetryTest, StopsAfterMaxAttemptsWithTheLastError) {
  Run(Policy(3),
      Fails({absl::UnavailableError("1"), absl::UnavailableError("2"),
             absl::UnavailableError("3")}));
  env_.AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(*status_, absl::UnavailableError("3"));
  EXPECT_EQ(attempts_, 3);
}

TEST_F(RetryTest, NonRetryableFailureEndsAtOnce) {
  Run(Policy(5), Fails({absl::NotFoundError("gone")}));
  ASSERT_TRUE(status_.has_value());
  EXPECT_EQ(*status_, absl::NotFoundError("gone"));
  EXPECT_EQ(attempts_, 1);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST_F(RetryTest, CancellationStopsABackoffWaitAtOnce) {
  CancellationSource source;
  RetryPolicy p = Policy(5);
  p.initial_backoff = absl::Hours(1);
  p.max_backoff = absl::Hours(1);
  Run(p, Fails({absl::UnavailableError("x")}), source.token());
  EXPECT_EQ(env_.pending_timers(), 1u);
  source.Cancel(absl::CancelledError("caller left"));
  ASSERT_TRUE(status_.has_value());
  EXPECT_EQ(*status_, absl::CancelledError("caller left"));
  EXPECT_EQ(attempts_, 1);
  EXPECT_EQ(env_.pending_timers(), 0u);
}

TEST(BackoffTest, GrowsByTheMultiplierUpToTheCapWithJitterAround) {
  RetryPolicy p = Policy(10);
  EXPECT_EQ(Backoff(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(Backoff(p, 2, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(Backoff(p, 4, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(Backoff(p, 5, 0.5), absl::Seconds(1));  // Capped.
  p.jitter = 0.5;
  EXPECT_EQ(Backoff(p, 1, 0.0), absl::Milliseconds(50));
  EXPECT_EQ(Backoff(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_NEAR(absl::ToDoubleMilliseconds(Backoff(p, 1, 0.999)), 150, 0.1);
}

}  // namespace
}  // namespace weft::engine
