// The code examples at the top of the engine's headers, compiled and run as
// the headers show them (header_examples.cmake copies them out of the
// comments). What the examples call but do not define is below: stand-ins
// that finish at once, and Show(), which records what the example shows.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/async_lazy.h"
#include "server/engine/background_tasks.h"
#include "server/engine/event_loop.h"
#include "server/engine/race.h"
#include "server/engine/sleep.h"
#include "server/engine/sync.h"
#include "server/engine/task_group.h"
#include "server/engine/thread_pool.h"
#include "tests/testing/sync.h"

namespace weft::engine {
namespace {

using ::testing::AnyOf;
using ::testing::ElementsAre;

Mutex shown_mu;
std::vector<std::string> shown ABSL_GUARDED_BY(shown_mu);

void Record(std::string line) {
  MutexLock lock(&shown_mu);
  shown.push_back(std::move(line));
}

std::vector<std::string> Shown() {
  MutexLock lock(&shown_mu);
  return shown;
}

struct Stats {
  int posts = 0;
};

struct Item {
  std::string name;
};

void Show(const absl::StatusOr<Stats>& s) {
  Record(s.ok() ? absl::StrCat("stats: ", s->posts) : s.status().ToString());
}
void Show(const absl::Status& s) { Record(s.ToString()); }
void Show(BackgroundTasks::State state) {
  Record(state == BackgroundTasks::State::kRunning ? "running" : "finished");
}
void Show(int n) { Record(absl::StrCat("active: ", n)); }
void Show(int winner, const absl::Status& s) {
  Record(absl::StrCat("winner ", winner, ": ", s.ToString()));
}

void ComputeStats(const CancellationToken&, AsyncLazy<Stats>::Callback done) {
  std::move(done)(Stats{1234});
}

// Runs until cancelled, as a newsletter of many mails would.
Env* newsletter_env = nullptr;
void SendNewsletter(const CancellationToken& token, Done done) {
  SleepFor(*newsletter_env, token, absl::Hours(1), std::move(done));
}

// The primary mirror is down; the backup answers.
RaceTask FetchFrom(std::string mirror) {
  return [mirror](const CancellationToken&, Done done) {
    std::move(done)(mirror == "primary"
                        ? absl::UnavailableError("primary is down")
                        : absl::OkStatus());
  };
}

void Fetch(const Item& item, const CancellationToken&, Done done) {
  std::move(done)(absl::OkStatus());
}

absl::Status Resize(const CancellationToken&) { return absl::OkStatus(); }

// The names the examples use for what their surroundings would give them.
struct ExampleScope {
  EventLoop& loop;
  Env& env;
  CancellationToken token;
  CancellationToken caller_token;
  CancellationToken parent_token;
  std::vector<Item> items;
};

#include "header_examples.inc"

class HeaderExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MutexLock lock(&shown_mu);
    shown.clear();
    newsletter_env = &loop_;
  }

  // What the example showed, once it has shown `n` things.
  std::vector<std::string> ShownAfter(size_t n) {
    EXPECT_TRUE(testing::WaitFor([&] { return Shown().size() >= n; }));
    return Shown();
  }

  EventLoop loop_{2};
  ExampleScope scope_{loop_, loop_, {}, {}, {}, {{"a"}, {"b"}, {"c"}}};
};

TEST_F(HeaderExamplesTest, AsyncLazy) {
  Example_async_lazy(scope_);
  EXPECT_THAT(ShownAfter(1), ElementsAre("stats: 1234"));
}

TEST_F(HeaderExamplesTest, BackgroundTasks) {
  Example_background_tasks(scope_);
  // The newsletter runs until cancelled; Cancel ends it on the loop, so
  // active() may still count it.
  EXPECT_THAT(ShownAfter(2),
              ElementsAre("running", AnyOf("active: 0", "active: 1")));
}

TEST_F(HeaderExamplesTest, Race) {
  Example_race(scope_);
  // The primary fails, so the backup starts at once rather than after the
  // hedge delay, and wins.
  EXPECT_THAT(ShownAfter(1), ElementsAre("winner 1: OK"));
}

TEST_F(HeaderExamplesTest, TaskGroup) {
  Example_task_group(scope_);
  EXPECT_THAT(ShownAfter(1), ElementsAre("OK"));
}

TEST_F(HeaderExamplesTest, ThreadPool) {
  Example_thread_pool(scope_);
  EXPECT_THAT(ShownAfter(1), ElementsAre("OK"));
}

}  // namespace
}  // namespace weft::engine
