#include "server/tasks/registry.h"

#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/engine/event_loop.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::tasks {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;
using ::weft::testing::ToTime;
using weft::v1::Task;

constexpr char kSleep1s[] =
    R"({"call": {"handler": "sleep", "args": {"duration": "1s", "value": "done"}}})";

class TaskRegistryTest : public ::testing::Test {
 protected:
  TaskRegistryTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(handlers_).ok());
  }
  ~TaskRegistryTest() override {
    if (registry_ != nullptr) {
      registry_->StopAccepting(absl::CancelledError("test over"));
      registry_->CancelRunning(absl::CancelledError("test over"));
    }
  }

  TaskRegistry& registry(TaskOptions options = {}) {
    if (registry_ == nullptr) {
      registry_ = std::make_unique<TaskRegistry>(env_, store_, options);
    }
    return *registry_;
  }

  NewTask Plan(absl::string_view json,
               std::map<std::string, std::string> labels = {},
               std::string request_id = "") {
    auto source = std::shared_ptr<const weft::v1::PlanNode>(
        weft::testing::PlanFromJson(json).release());
    auto compiled =
        plan::Compile(source.get(), source, "plan", handlers_, plan::Limits());
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    NewTask t;
    t.plan = *std::move(compiled);
    t.source = source;
    t.labels = std::move(labels);
    t.request_id = std::move(request_id);
    return t;
  }

  Task Create(absl::string_view json,
              std::map<std::string, std::string> labels = {}) {
    absl::StatusOr<Task> t = registry().Create(Plan(json, std::move(labels)));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }

  Task Get(const std::string& name) {
    absl::StatusOr<Task> t = registry().Get(name, false, true);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }

  engine::ManualEnv env_;
  handlers::HandlerRegistry handlers_;
  store::InMemoryTaskStore store_;
  std::unique_ptr<TaskRegistry> registry_;
};

TEST_F(TaskRegistryTest, TaskRunsInTheBackgroundToSucceeded) {
  const absl::Time t0 = env_.Now();
  Task t = Create(kSleep1s, {{"job", "newsletter"}});
  EXPECT_THAT(t.name(), ::testing::MatchesRegex("tasks/[0-9a-f]{32}"));
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(t.progress().leaves_total(), 1);
  EXPECT_EQ(t.progress().leaves_running(), 1);
  EXPECT_EQ(t.labels().at("job"), "newsletter");
  env_.AdvanceBy(absl::Seconds(1));
  t = Get(t.name());
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(t.outcome().value().string_value(), "done");
  EXPECT_EQ(t.progress().leaves_done(), 1);
  EXPECT_EQ(t.progress().leaves_running(), 0);
  EXPECT_EQ(ToTime(t.create_time()), t0);
  EXPECT_EQ(ToTime(t.start_time()), t0);
  EXPECT_EQ(ToTime(t.end_time()), t0 + absl::Seconds(1));
}

TEST_F(TaskRegistryTest, EachTerminalStateComesFromTheOutcome) {
  Task failed = Create(
      R"({"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}})");
  Task timed_out = Create(
      R"({"timeout": "0.5s", "call": {"handler": "sleep", "args": {"duration": "9s"}}})");
  Task cancelled = Create(kSleep1s);
  ASSERT_TRUE(registry().Cancel(cancelled.name()).ok());
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(failed.name()).state(), weft::v1::TASK_STATE_FAILED);
  EXPECT_EQ(Get(failed.name()).progress().leaves_failed(), 1);
  EXPECT_EQ(Get(timed_out.name()).state(), weft::v1::TASK_STATE_TIMED_OUT);
  Task c = Get(cancelled.name());
  EXPECT_EQ(c.state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(c.outcome().error().message(), "cancelled by CancelTask");
}

TEST_F(TaskRegistryTest, SameRequestIdAndPlanIsTheSameTask) {
  auto first = registry().Create(Plan(kSleep1s, {}, "req-1"));
  auto again = registry().Create(Plan(kSleep1s, {}, "req-1"));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->name(), again->name());
  auto other = registry().Create(Plan(
      R"({"call": {"handler": "value", "args": {"value": 2}}})", {}, "req-1"));
  EXPECT_THAT(
      other,
      StatusIs(absl::StatusCode::kAlreadyExists,
               HasSubstr(absl::StrCat("request_id \"req-1\" was used for ",
                                      first->name(), " with another plan"))));
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(TaskRegistryTest, AdmissionQueuesThenRefusesWithARetryDelay) {
  TaskOptions options;
  options.max_running_tasks = 1;
  options.max_queued_tasks = 1;
  registry(options);
  Task a = Create(kSleep1s);
  Task b = Create(kSleep1s);
  EXPECT_EQ(a.state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(b.state(), weft::v1::TASK_STATE_QUEUED);
  EXPECT_THAT(
      registry().Create(Plan(kSleep1s)),
      StatusIs(
          absl::StatusCode::kResourceExhausted,
          HasSubstr(
              "(--max_queued_tasks, --max_running_tasks); retry after 1s")));
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(a.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(Get(b.name()).state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(ToTime(Get(b.name()).start_time()),
            ToTime(Get(a.name()).end_time()));
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(b.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(TaskRegistryTest, CancelWorksOnQueuedRunningAndFinishedTasks) {
  TaskOptions options;
  options.max_running_tasks = 1;
  registry(options);
  Task running = Create(kSleep1s);
  Task queued = Create(kSleep1s);
  auto c = registry().Cancel(queued.name());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(c->outcome().error().message(),
            "cancelled before it started (CancelTask)");
  EXPECT_FALSE(c->has_start_time());
  // Idempotent.
  EXPECT_EQ(registry().Cancel(queued.name())->state(),
            weft::v1::TASK_STATE_CANCELLED);
  c = registry().Cancel(running.name());
  EXPECT_EQ(c->state(), weft::v1::TASK_STATE_CANCELLED);
  // A finished task is returned unchanged.
  Task done = Create(R"({"call": {"handler": "value", "args": {"value": 1}}})");
  EXPECT_EQ(done.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(registry().Cancel(done.name())->state(),
            weft::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(TaskRegistryTest, NamesThatAreUnknownExpiredOrDeletedAreToldApart) {
  EXPECT_THAT(registry().Get("tasks/nope", false, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name: \"tasks/nope\" is not a task name")));
  const std::string unknown = "tasks/" + std::string(32, 'a');
  EXPECT_THAT(
      registry().Get(unknown, false, true),
      StatusIs(absl::StatusCode::kNotFound, unknown + ": no such task"));
  Task t = Create(kSleep1s);
  EXPECT_THAT(
      registry().Delete(t.name()),
      StatusIs(
          absl::StatusCode::kFailedPrecondition,
          HasSubstr(
              "is TASK_STATE_RUNNING; only a finished task can be deleted")));
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_TRUE(registry().Delete(t.name()).ok());
  EXPECT_THAT(
      registry().Get(t.name(), false, true),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted (DeleteTask)")));
  EXPECT_THAT(registry().Delete(t.name()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted")));
}

TEST_F(TaskRegistryTest, FinishedTasksExpireByAge) {
  TaskOptions options;
  options.task_retention = absl::Minutes(10);
  registry(options);
  Task t = Create(R"({"call": {"handler": "value", "args": {"value": 1}}})");
  env_.AdvanceBy(absl::Minutes(9));
  EXPECT_TRUE(registry().Get(t.name(), false, true).ok());
  env_.AdvanceBy(absl::Minutes(1));
  EXPECT_THAT(registry().Get(t.name(), false, true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(TaskRegistryTest, FinishedTasksExpireByCountOldestFirst) {
  TaskOptions options;
  options.max_retained_tasks = 2;
  registry(options);
  std::vector<Task> tasks;
  for (int i = 0; i < 4; ++i) {
    tasks.push_back(
        Create(R"({"call": {"handler": "value", "args": {"value": 1}}})"));
    env_.AdvanceBy(absl::Seconds(1));
  }
  EXPECT_THAT(registry().Get(tasks[0].name(), false, true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));
  EXPECT_THAT(registry().Get(tasks[1].name(), false, true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));
  EXPECT_TRUE(registry().Get(tasks[2].name(), false, true).ok());
  EXPECT_TRUE(registry().Get(tasks[3].name(), false, true).ok());
  EXPECT_EQ(registry().Counts().at(weft::v1::TASK_STATE_SUCCEEDED), 2);
}

TEST_F(TaskRegistryTest, ListIsNewestFirstFilteredAndPagedStably) {
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    names.push_back(
        Create(i % 2
                   ? kSleep1s
                   : R"({"call": {"handler": "value", "args": {"value": 1}}})",
               {{"job", i < 4 ? "a" : "b"}})
            .name());
  }
  weft::v1::ListTasksRequest request;
  request.set_page_size(2);
  (*request.mutable_labels())["job"] = "a";
  auto page1 = registry().List(request);
  ASSERT_TRUE(page1.ok()) << page1.status();
  ASSERT_EQ(page1->tasks.size(), 2u);
  EXPECT_EQ(page1->tasks[0].name(), names[3]);
  EXPECT_EQ(page1->tasks[1].name(), names[2]);
  // New tasks between pages do not shift the next page.
  Create(kSleep1s, {{"job", "a"}});
  request.set_page_token(page1->next_page_token);
  auto page2 = registry().List(request);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->tasks.size(), 2u);
  EXPECT_EQ(page2->tasks[0].name(), names[1]);
  EXPECT_EQ(page2->tasks[1].name(), names[0]);
  EXPECT_TRUE(page2->next_page_token.empty());
  // By state.
  weft::v1::ListTasksRequest running;
  running.add_states(weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(registry().List(running)->tasks.size(), 3u);
  // A token with other filters is refused.
  running.set_page_token(page1->next_page_token);
  EXPECT_THAT(
      registry().List(running),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  weft::v1::ListTasksRequest big;
  big.set_page_size(5000);
  EXPECT_THAT(registry().List(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("page_size")));
}

TEST_F(TaskRegistryTest, WaitAnswersAtTheEndOrAtItsDeadline) {
  Task t = Create(kSleep1s);
  std::optional<Task> got;
  auto handle = registry().Wait(t.name(), env_.Now() + absl::Milliseconds(300),
                                [&](Task task) { got = task; });
  ASSERT_TRUE(handle.ok());
  env_.AdvanceBy(absl::Milliseconds(300));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state(), weft::v1::TASK_STATE_RUNNING);
  got.reset();
  auto second = registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                                [&](Task task) { got = task; });
  env_.AdvanceBy(absl::Milliseconds(700));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Terminal already: at once.
  got.reset();
  auto third = registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                               [&](Task task) { got = task; });
  EXPECT_TRUE(got.has_value());
}

TEST_F(TaskRegistryTest, AWaiterThatLeavesIsNeverCalled) {
  Task t = Create(kSleep1s);
  bool called = false;
  {
    auto handle = registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                                  [&](Task) { called = true; });
  }
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_FALSE(called);
}

TEST_F(TaskRegistryTest, WatchersHearOfProgressAndTheEnd) {
  Task t = Create(R"({"parallel": {"children": [
      {"call": {"handler": "sleep", "args": {"duration": "1s"}}},
      {"call": {"handler": "sleep", "args": {"duration": "2s"}}}]}})");
  int changes = 0;
  auto handle = registry().Watch(t.name(), [&] { ++changes; });
  ASSERT_TRUE(handle.ok());
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_GE(changes, 1);
  EXPECT_EQ(Get(t.name()).progress().leaves_done(), 1);
  const int before = changes;
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_GT(changes, before);
  EXPECT_EQ(Get(t.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(TaskRegistryTest, ShutdownCancelsQueuedAtOnceAndRunningWhenAsked) {
  TaskOptions options;
  options.max_running_tasks = 1;
  registry(options);
  Task running = Create(kSleep1s);
  Task queued = Create(kSleep1s);
  registry().StopAccepting(common::WithReason(
      absl::CancelledError("server shutting down"), common::kShuttingDown));
  const absl::StatusOr<Task> refused = registry().Create(Plan(kSleep1s));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("server shutting down")));
  EXPECT_EQ(common::Reason(refused.status()), "SHUTTING_DOWN");
  EXPECT_EQ(common::RetryDelay(refused.status()), absl::Seconds(1));
  EXPECT_EQ(Get(queued.name()).state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(Get(queued.name()).outcome().error().message(),
            "server shutting down");
  EXPECT_EQ(Get(queued.name()).outcome().error().reason(), "SHUTTING_DOWN");
  EXPECT_EQ(registry().running(), 1);
  registry().CancelRunning(absl::CancelledError("server shutting down"));
  Task r = Get(running.name());
  EXPECT_EQ(r.state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(r.outcome().error().message(), "server shutting down");
}

TEST(TaskRegistryThreadsTest, ThousandConcurrentCreatesAreAllAccountedFor) {
  engine::EventLoop loop(2);
  handlers::HandlerRegistry handlers;
  EXPECT_TRUE(handlers::RegisterBuiltinHandlers(handlers).ok());
  store::InMemoryTaskStore store;
  TaskOptions options;
  options.max_running_tasks = 50;
  options.max_queued_tasks = 2000;
  TaskRegistry registry(loop, store, options);
  auto source = std::shared_ptr<const weft::v1::PlanNode>(
      weft::testing::PlanFromJson(
          R"({"call": {"handler": "sleep", "args": {"duration": "0.001s"}}})")
          .release());
  std::shared_ptr<const plan::CompiledPlan> plan =
      *plan::Compile(source.get(), source, "plan", handlers, plan::Limits());
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> names(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        absl::StatusOr<Task> task =
            registry.Create(NewTask{plan, source, {}, "", true});
        if (task.ok()) names[t].push_back(task->name());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : names) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), 1000u);
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    auto counts = registry.Counts();
    return counts[weft::v1::TASK_STATE_SUCCEEDED] == 1000;
  }));
  for (const std::string& name : all) {
    ASSERT_EQ(registry.Get(name, false, false)->state(),
              weft::v1::TASK_STATE_SUCCEEDED);
  }
  registry.StopAccepting(absl::CancelledError("done"));
}

// A task whose plan returns a string of `bytes` bytes at once.
std::string ValueTask(int bytes) {
  return absl::StrCat(R"({"call": {"handler": "value", "args": {"value": ")",
                      std::string(bytes, 'q'), R"("}}})");
}

TEST_F(TaskRegistryTest, CreateAnswersWithoutTheOutcomeEvenWhenItIsDone) {
  Task t = Create(ValueTask(1000));
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_FALSE(t.has_outcome());
  EXPECT_EQ(Get(t.name()).outcome().value().string_value().size(), 1000u);
}

TEST_F(TaskRegistryTest, ATaskOutcomeOverTheLimitFailsWithResourceExhausted) {
  TaskOptions options;
  options.max_outcome_bytes = 10'000;
  registry(options);
  Task t = Create(ValueTask(20'000));
  Task got = Get(t.name());
  EXPECT_EQ(got.state(), weft::v1::TASK_STATE_FAILED);
  EXPECT_EQ(got.outcome().error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(got.outcome().error().message(),
              HasSubstr("--max_outcome_bytes"));
}

TEST_F(TaskRegistryTest, OldFinishedTasksMakeRoomForNewOnesWithinTheBytes) {
  TaskOptions options;
  options.max_retained_bytes = 400'000;
  registry(options);
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i)
    names.push_back(Create(ValueTask(100'000)).name());
  EXPECT_LE(registry().memory().used(), 400'000);
  // The newest are kept; the oldest were forgotten early, and NOT_FOUND
  // says why.
  EXPECT_EQ(Get(names.back()).outcome().value().string_value().size(),
            100'000u);
  EXPECT_THAT(registry().Get(names.front(), false, true),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("--max_retained_task_bytes")));
}

TEST_F(TaskRegistryTest, WhenLiveTasksFillTheBytesCreateIsRefused) {
  TaskOptions options;
  options.max_retained_bytes = 100'000;
  registry(options);
  NewTask first = Plan(kSleep1s);
  first.request_bytes = 60'000;
  ASSERT_TRUE(registry().Create(std::move(first)).ok());
  NewTask second = Plan(kSleep1s);
  second.request_bytes = 60'000;
  EXPECT_THAT(registry().Create(std::move(second)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("(--max_retained_task_bytes), and 1 of them "
                                 "are still queued or running")));
  env_.AdvanceBy(absl::Seconds(1));  // The first ends: it can go now.
  NewTask third = Plan(kSleep1s);
  third.request_bytes = 60'000;
  EXPECT_TRUE(registry().Create(std::move(third)).ok());
}

TEST_F(TaskRegistryTest, AnOutcomeThatCannotBeKeptBecomesItsRootWithTheReason) {
  TaskOptions options;
  options.max_retained_bytes = 200'000;
  registry(options);
  // A queued-forever task holds most of the bytes; the outcome of a second
  // does not fit beside it.
  NewTask hog =
      Plan(R"({"call": {"handler": "sleep", "args": {"duration": "3600s"}}})");
  hog.request_bytes = 150'000;
  ASSERT_TRUE(registry().Create(std::move(hog)).ok());
  Task t = Create(ValueTask(100'000));
  Task got = Get(t.name());
  EXPECT_EQ(got.state(), weft::v1::TASK_STATE_FAILED);
  EXPECT_EQ(got.outcome().error().code(), "RESOURCE_EXHAUSTED");
  EXPECT_THAT(got.outcome().error().message(),
              HasSubstr("(--max_retained_task_bytes)"));
  EXPECT_LE(registry().memory().used(), 200'000);
}

TEST_F(TaskRegistryTest, ARunningTaskChargesItsValuesToTheInflightBudget) {
  engine::MemoryBudget inflight(1 << 20);
  TaskOptions options;
  options.inflight = &inflight;
  registry(options);
  Task t = Create(R"({"sequence": {"children": [
    {"call": {"handler": "value", "args": {"value": ")" +
                  std::string(200'000, 'i') + R"("}}},
    {"call": {"handler": "sleep", "args": {"duration": "1s"}}}]}})");
  EXPECT_GT(inflight.used(), 200'000);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(t.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Ended: the outcome counts as a retained task's now.
  EXPECT_EQ(inflight.used(), 0);
  EXPECT_GT(registry().memory().used(), 200'000);
}

TEST_F(TaskRegistryTest, CopiesOutAreChargedFirstAndRefusedWhenTheyDoNotFit) {
  Task t = Create(ValueTask(100'000));
  engine::MemoryBudget small(50'000);
  engine::MemoryCharge charge(&small);
  EXPECT_THAT(registry().Get(t.name(), false, true, &charge),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("ask for TASK_VIEW_BASIC")));
  EXPECT_TRUE(registry().Get(t.name(), false, false, &charge).ok());
  engine::MemoryBudget roomy(1 << 20);
  engine::MemoryCharge fits(&roomy);
  EXPECT_TRUE(registry().Get(t.name(), false, true, &fits).ok());
  EXPECT_GT(fits.bytes(), 100'000);
}

TEST_F(TaskRegistryTest, ListPagesEndBeforeTheyPassTheirBytes) {
  for (int i = 0; i < 5; ++i) Create(ValueTask(100'000));
  weft::v1::ListTasksRequest request;
  request.set_view(weft::v1::TASK_VIEW_FULL);
  std::set<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<TaskRegistry::ListResult> r =
        registry().List(request, 250'000);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->tasks.size(), 2u);
    for (const Task& t : r->tasks) {
      EXPECT_EQ(t.outcome().value().string_value().size(), 100'000u);
      seen.insert(t.name());
    }
    if (r->next_page_token.empty()) break;
    request.set_page_token(r->next_page_token);
  }
  EXPECT_EQ(seen.size(), 5u);
}

}  // namespace
}  // namespace weft::tasks
