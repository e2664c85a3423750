#include "server/engine/cancellation.h"

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::testing::HasSubstr;

TEST(CancellationTest, DefaultTokenIsNeverCancelled) {
  CancellationToken token;
  EXPECT_FALSE(token.cancelled());
  EXPECT_TRUE(token.reason().ok());
  bool ran = false;
  CancellationCallback cb(token, [&](const absl::Status&) { ran = true; });
  EXPECT_FALSE(ran);
}

TEST(CancellationTest, CancelRunsEachCallbackOnceWithTheReason) {
  CancellationSource source;
  std::vector<std::string> seen;
  CancellationCallback a(source.token(), [&](const absl::Status& r) {
    seen.push_back("a:" + std::string(r.message()));
  });
  CancellationCallback b(source.token(), [&](const absl::Status& r) {
    seen.push_back("b:" + std::string(r.message()));
  });
  EXPECT_TRUE(source.Cancel(absl::CancelledError("stop")));
  EXPECT_FALSE(source.Cancel(absl::CancelledError("again")));
  EXPECT_THAT(seen, ::testing::ElementsAre("a:stop", "b:stop"));
  EXPECT_TRUE(source.token().cancelled());
  EXPECT_EQ(source.token().reason(), absl::CancelledError("stop"));
}

TEST(CancellationTest, CallbackRegisteredAfterCancelRunsAtOnce) {
  CancellationSource source;
  source.Cancel(absl::CancelledError("early"));
  absl::Status got;
  CancellationCallback cb(source.token(),
                          [&](const absl::Status& r) { got = r; });
  EXPECT_EQ(got, absl::CancelledError("early"));
}

TEST(CancellationTest, DestroyedCallbackNeverRuns) {
  CancellationSource source;
  bool ran = false;
  {
    CancellationCallback cb(source.token(),
                            [&](const absl::Status&) { ran = true; });
  }
  source.Cancel(absl::CancelledError("x"));
  EXPECT_FALSE(ran);
}

TEST(CancellationTest, LinkedScopeIsCancelledWithTheParentsReason) {
  CancellationSource parent;
  CancellationSource child(parent.token());
  absl::Status got;
  CancellationCallback cb(child.token(),
                          [&](const absl::Status& r) { got = r; });
  parent.Cancel(absl::CancelledError("parent went away"));
  EXPECT_TRUE(child.cancelled());
  EXPECT_EQ(got, absl::CancelledError("parent went away"));
  EXPECT_FALSE(child.cancelled_here());
  EXPECT_TRUE(parent.cancelled_here());
}

TEST(CancellationTest, CancellingAChildLeavesTheParentRunning) {
  CancellationSource parent;
  CancellationSource child(parent.token());
  child.Cancel(absl::CancelledError("just me"));
  EXPECT_TRUE(child.cancelled_here());
  EXPECT_FALSE(parent.cancelled());
}

TEST(CancellationTest, ChildOfACancelledParentStartsCancelled) {
  CancellationSource parent;
  parent.Cancel(absl::CancelledError("gone"));
  CancellationSource child(parent.token());
  EXPECT_TRUE(child.cancelled());
  EXPECT_EQ(child.token().reason(), absl::CancelledError("gone"));
}

TEST(CancellationTest, CancellationReachesTheEndOfADeepChain) {
  CancellationSource root;
  std::vector<CancellationSource> chain;
  chain.reserve(1000);
  CancellationToken parent = root.token();
  for (int i = 0; i < 1000; ++i) {
    chain.emplace_back(parent);
    parent = chain.back().token();
  }
  root.Cancel(absl::CancelledError("deep"));
  EXPECT_TRUE(chain.back().cancelled());
  EXPECT_THAT(chain.back().token().reason().message(), HasSubstr("deep"));
}

TEST(CancellationTest, ScopeOutlivesItsSourceWhileATokenHoldsIt) {
  CancellationToken token;
  {
    CancellationSource parent;
    CancellationSource child(parent.token());
    token = child.token();
    parent.Cancel(absl::CancelledError("done"));
  }
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(token.reason(), absl::CancelledError("done"));
}

TEST(CancellationTest, CallbackMayDestroyItselfFromItsFunction) {
  CancellationSource source;
  auto cb = std::make_unique<std::optional<CancellationCallback>>();
  bool ran = false;
  cb->emplace(source.token(), [&](const absl::Status&) {
    ran = true;
    cb->reset();
  });
  source.Cancel(absl::CancelledError("x"));
  EXPECT_TRUE(ran);
  EXPECT_FALSE(cb->has_value());
}

// What a callback's function holds may use the scope when it is destroyed
// (here it reads the reason): that must not deadlock on the scope's lock.
TEST(CancellationTest, FunctionStateMayUseTheScopeWhenDestroyed) {
  CancellationSource source;
  struct ReadsReasonOnDestruction {
    CancellationToken token;
    absl::Status* seen;
    ~ReadsReasonOnDestruction() {
      if (seen != nullptr) *seen = token.reason();
    }
    ReadsReasonOnDestruction(CancellationToken t, absl::Status* s)
        : token(std::move(t)), seen(s) {}
    ReadsReasonOnDestruction(ReadsReasonOnDestruction&& o) noexcept
        : token(o.token), seen(std::exchange(o.seen, nullptr)) {}
  };
  absl::Status seen;
  CancellationCallback cb(source.token(),
                          [holder = ReadsReasonOnDestruction(
                               source.token(), &seen)](const absl::Status&) {});
  source.Cancel(absl::CancelledError("bye"));
  EXPECT_EQ(seen, absl::CancelledError("bye"));
}

TEST(CancellationTest, DestroyingACallbackWaitsForItsRunningFunction) {
  CancellationSource source;
  weft::testing::Notification running;
  weft::testing::Notification release;
  std::atomic<bool> finished{false};
  auto cb = std::make_unique<CancellationCallback>(
      source.token(), [&](const absl::Status&) {
        running.Notify();
        release.WaitForNotification();
        finished = true;
      });
  std::thread canceller([&] { source.Cancel(absl::CancelledError("x")); });
  running.WaitForNotification();
  release.Notify();
  cb.reset();  // Must not return before the function has.
  EXPECT_TRUE(finished);
  canceller.join();
}

// A scope dropped on one thread while its parent cancels on another: the
// link must neither run on a freed scope nor bring a dying one back.
TEST(CancellationTest, ChildScopeMayDieWhileItsParentCancels) {
  for (int round = 0; round < 2000; ++round) {
    CancellationSource parent;
    auto child = std::make_unique<CancellationSource>(parent.token());
    std::atomic<int> ran{0};
    auto cb = std::make_unique<CancellationCallback>(
        child->token(), [&](const absl::Status&) { ran++; });
    weft::testing::Notification go;
    std::thread canceller([&] {
      go.WaitForNotification();
      parent.Cancel(absl::CancelledError("x"));
    });
    go.Notify();
    cb.reset();
    child.reset();
    canceller.join();
    ASSERT_LE(ran.load(), 1);
  }
}

class CancellationConcurrencyTest : public ::testing::TestWithParam<int> {};

TEST_P(CancellationConcurrencyTest,
       KeptCallbacksRunExactlyOnceOthersAtMostOnce) {
  const int threads = GetParam();
  constexpr int kPerThread = 2000;
  CancellationSource source;
  std::vector<std::atomic<int>> runs(threads * kPerThread);
  std::vector<std::vector<std::unique_ptr<CancellationCallback>>> kept(threads);
  std::vector<std::thread> workers;
  weft::testing::Notification go;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      go.WaitForNotification();
      for (int i = 0; i < kPerThread; ++i) {
        std::atomic<int>* slot = &runs[t * kPerThread + i];
        auto cb = std::make_unique<CancellationCallback>(
            source.token(), [slot](const absl::Status&) { (*slot)++; });
        // Keep the even ones registered; drop the odd ones at once.
        if (i % 2 == 0) kept[t].push_back(std::move(cb));
      }
    });
  }
  go.Notify();
  source.Cancel(absl::CancelledError("now"));
  for (auto& w : workers) w.join();
  for (int i = 0; i < threads * kPerThread; ++i) {
    if ((i % kPerThread) % 2 == 0) {
      ASSERT_EQ(runs[i].load(), 1) << "kept callback " << i;
    } else {
      ASSERT_LE(runs[i].load(), 1) << "dropped callback " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, CancellationConcurrencyTest,
                         ::testing::Values(1, 2, 8));

}  // namespace
}  // namespace weft::engine
