#include "server/engine/deadline.h"

#include "gtest/gtest.h"
#include "tests/testing/manual_env.h"

namespace weft::engine {
namespace {

TEST(DeadlineTest, ExpiresAtItsTimeWithTheExpiryReason) {
  ManualEnv env;
  CancellationSource parent;
  Deadline deadline(env, parent.token(), env.Now() + absl::Seconds(2),
                    absl::DeadlineExceededError("too slow"));
  env.AdvanceBy(absl::Milliseconds(1999));
  EXPECT_FALSE(deadline.token().cancelled());
  EXPECT_FALSE(deadline.expired());
  env.AdvanceBy(absl::Milliseconds(1));
  EXPECT_TRUE(deadline.token().cancelled());
  EXPECT_TRUE(deadline.expired());
  EXPECT_EQ(deadline.token().reason(), absl::DeadlineExceededError("too slow"));
  EXPECT_FALSE(parent.cancelled());
}

TEST(DeadlineTest, ParentCancellationIsNotAnExpiry) {
  ManualEnv env;
  CancellationSource parent;
  Deadline deadline(env, parent.token(), env.Now() + absl::Seconds(2),
                    absl::DeadlineExceededError("too slow"));
  parent.Cancel(absl::CancelledError("caller left"));
  env.AdvanceBy(absl::Seconds(3));
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(deadline.token().reason(), absl::CancelledError("caller left"));
}

TEST(DeadlineTest, DestroyingItCancelsTheTimer) {
  ManualEnv env;
  {
    Deadline deadline(env, {}, env.Now() + absl::Seconds(2),
                      absl::DeadlineExceededError("x"));
    EXPECT_EQ(env.pending_timers(), 1u);
  }
  EXPECT_EQ(env.pending_timers(), 0u);
}

TEST(DeadlineTest, InfiniteDeadlineSchedulesNothing) {
  ManualEnv env;
  Deadline deadline(env, {}, absl::InfiniteFuture(),
                    absl::DeadlineExceededError("x"));
  EXPECT_EQ(env.pending_timers(), 0u);
  EXPECT_FALSE(deadline.token().cancelled());
}

}  // namespace
}  // namespace weft::engine
