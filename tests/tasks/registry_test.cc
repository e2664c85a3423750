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
#include "tests/testing/failing_task_store.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::tasks {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::FailingTaskStore;
using ::weft::testing::StatusIs;
using ::weft::testing::ToTime;
using weft::v1::Task;

constexpr char kSleep1s[] =
    R"({"call": {"handler": "sleep", "args": {"duration": "1s", "value": "done"}}})";

// Create's answer, which the memory store gives before Create returns.
absl::StatusOr<Task> CreateNow(TaskRegistry& registry, NewTask task) {
  std::optional<absl::StatusOr<Task>> got;
  registry.Create(std::move(task),
                  [&](absl::StatusOr<Task> t) { got = std::move(t); });
  EXPECT_TRUE(got.has_value()) << "the memory store answers inline";
  if (!got.has_value()) return absl::InternalError("Create did not answer");
  return *std::move(got);
}

// Delete's answer, which the memory and failing stores give inline.
absl::Status DeleteNow(TaskRegistry& registry, absl::string_view name) {
  std::optional<absl::Status> got;
  registry.Delete(name, [&](absl::Status s) { got = std::move(s); });
  EXPECT_TRUE(got.has_value()) << "the store answers inline";
  return got.value_or(absl::InternalError("Delete did not answer"));
}

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

  // Made on first use, with `options` or else options_.
  TaskRegistry& registry(std::optional<TaskOptions> options = std::nullopt) {
    if (registry_ == nullptr) {
      registry_ = std::make_unique<TaskRegistry>(env_, *store_ptr_,
                                                 options.value_or(options_));
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
    absl::StatusOr<Task> t =
        CreateNow(registry(), Plan(json, std::move(labels)));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }

  // A one-second sleep created by `creator` (a principal; quotas count it).
  absl::StatusOr<Task> CreateBy(const std::string& creator) {
    NewTask t = Plan(kSleep1s);
    t.creator = creator;
    return CreateNow(registry(), std::move(t));
  }

  Task Get(const std::string& name) {
    absl::StatusOr<Task> t = registry().Get(name, TaskParts::kWithOutcome);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }

  engine::ManualEnv env_;
  handlers::HandlerRegistry handlers_;
  store::InMemoryTaskStore store_;
  // What the registry keeps its tasks in, and its options (a subclass may
  // change them).
  store::TaskStore* store_ptr_ = &store_;
  TaskOptions options_;
  std::unique_ptr<TaskRegistry> registry_;
};

TEST_F(TaskRegistryTest, ProgressCountsAMapsChildrenOnceItKnowsItsItems) {
  // One leaf known up front (the list); the map adds one per item when it
  // starts, after the list's second.
  Task t = Create(R"({"sequence": {"children": [
    {"id": "list", "call": {"handler": "sleep", "args": {"duration": "1s", "value": [1, 2, 3]}}},
    {"map": {"items": {"$ref": "list"}, "max_concurrency": 2,
      "child": {"call": {"handler": "sleep", "args": {"duration": "1s"}}}}}]}})");
  EXPECT_EQ(t.progress().leaves_total(), 1);
  env_.AdvanceBy(absl::Seconds(1));
  t = Get(t.name());
  EXPECT_EQ(t.progress().leaves_total(), 4);
  EXPECT_EQ(t.progress().leaves_done(), 1);
  EXPECT_EQ(t.progress().leaves_running(), 2);
  env_.AdvanceBy(absl::Seconds(2));
  t = Get(t.name());
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(t.progress().leaves_total(), 4);
  EXPECT_EQ(t.progress().leaves_done(), 4);
}

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
  auto first = CreateNow(registry(), Plan(kSleep1s, {}, "req-1"));
  auto again = CreateNow(registry(), Plan(kSleep1s, {}, "req-1"));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->name(), again->name());
  auto other =
      CreateNow(registry(),
                Plan(R"({"call": {"handler": "value", "args": {"value": 2}}})",
                     {}, "req-1"));
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
      CreateNow(registry(), Plan(kSleep1s)),
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

// Quotas are per creator: one principal at its quota does not hold back
// another's tasks. (Admission and start order only: no timing.)
TEST_F(TaskRegistryTest, APrincipalAtItsQuotaWaitsWhileAnothersTasksStart) {
  TaskOptions options;
  options.max_running_tasks = 3;
  options.max_running_per_principal = 1;
  options.max_queued_per_principal = 1;
  registry(options);
  absl::StatusOr<Task> a1 = CreateBy("alice");
  absl::StatusOr<Task> a2 = CreateBy("alice");
  ASSERT_TRUE(a1.ok() && a2.ok());
  EXPECT_EQ(a1->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(a2->state(), weft::v1::TASK_STATE_QUEUED);
  const absl::StatusOr<Task> refused = CreateBy("alice");
  EXPECT_THAT(
      refused,
      StatusIs(absl::StatusCode::kResourceExhausted,
               HasSubstr("principal \"alice\" has 1 tasks running and "
                         "1 waiting, the most allowed for one "
                         "principal (--max_running_tasks_per_principal=1, "
                         "--max_queued_tasks_per_principal=1); retry "
                         "after 1s")));
  EXPECT_EQ(common::Reason(refused.status()), "PRINCIPAL_QUOTA");
  EXPECT_EQ(common::RetryDelay(refused.status()), absl::Seconds(1));
  EXPECT_EQ(common::ReasonMetadata(refused.status(), "principal"), "alice");
  EXPECT_EQ(common::ReasonMetadata(refused.status(), "flag"),
            "--max_queued_tasks_per_principal");

  // Bob's task starts although alice's queued one is older; his second
  // waits for his own quota, not for alice's.
  absl::StatusOr<Task> b1 = CreateBy("bob");
  absl::StatusOr<Task> b2 = CreateBy("bob");
  ASSERT_TRUE(b1.ok() && b2.ok());
  EXPECT_EQ(b1->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(b2->state(), weft::v1::TASK_STATE_QUEUED);
  // Tasks without a creator (no --auth_tokens) have no quota.
  Task anonymous = Create(kSleep1s);
  EXPECT_EQ(anonymous.state(), weft::v1::TASK_STATE_RUNNING);

  // Cancelling alice's queued task gives her its place back.
  ASSERT_TRUE(registry().Cancel(a2->name()).ok());
  absl::StatusOr<Task> a3 = CreateBy("alice");
  ASSERT_TRUE(a3.ok()) << a3.status();
  EXPECT_EQ(a3->state(), weft::v1::TASK_STATE_QUEUED);

  // As slots free, the queued tasks start oldest first: alice's a3, then
  // bob's b2.
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(a1->name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(Get(a3->name()).state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(Get(b2->name()).state(), weft::v1::TASK_STATE_RUNNING);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(Get(a3->name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(Get(b2->name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Their counts went back to zero: alice may queue again.
  absl::StatusOr<Task> a4 = CreateBy("alice");
  absl::StatusOr<Task> a5 = CreateBy("alice");
  ASSERT_TRUE(a4.ok() && a5.ok());
  EXPECT_EQ(a4->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(a5->state(), weft::v1::TASK_STATE_QUEUED);
}

// While no running slot is free at all, a principal's tasks all wait, and
// its queue quota counts them.
TEST_F(TaskRegistryTest, WhileEverySlotIsTakenAPrincipalsQueueQuotaCounts) {
  TaskOptions options;
  options.max_running_tasks = 1;
  options.max_running_per_principal = 5;
  options.max_queued_per_principal = 1;
  registry(options);
  ASSERT_EQ(CreateBy("alice")->state(), weft::v1::TASK_STATE_RUNNING);
  absl::StatusOr<Task> b1 = CreateBy("bob");
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(b1->state(), weft::v1::TASK_STATE_QUEUED);
  EXPECT_THAT(CreateBy("bob"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("principal \"bob\" has 0 tasks running and "
                                 "1 waiting")));
  // Another principal still gets its one place in the queue.
  EXPECT_EQ(CreateBy("carol")->state(), weft::v1::TASK_STATE_QUEUED);
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
  EXPECT_THAT(registry().Get("tasks/nope", TaskParts::kWithOutcome),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name: \"tasks/nope\" is not a task name")));
  const std::string unknown = "tasks/" + std::string(32, 'a');
  EXPECT_THAT(
      registry().Get(unknown, TaskParts::kWithOutcome),
      StatusIs(absl::StatusCode::kNotFound, unknown + ": no such task"));
  Task t = Create(kSleep1s);
  EXPECT_THAT(
      DeleteNow(registry(), t.name()),
      StatusIs(
          absl::StatusCode::kFailedPrecondition,
          HasSubstr(
              "is TASK_STATE_RUNNING; only a finished task can be deleted")));
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_TRUE(DeleteNow(registry(), t.name()).ok());
  EXPECT_THAT(
      registry().Get(t.name(), TaskParts::kWithOutcome),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted (DeleteTask)")));
  EXPECT_THAT(DeleteNow(registry(), t.name()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted")));
}

TEST_F(TaskRegistryTest, FinishedTasksExpireByAge) {
  TaskOptions options;
  options.task_retention = absl::Minutes(10);
  registry(options);
  Task t = Create(R"({"call": {"handler": "value", "args": {"value": 1}}})");
  env_.AdvanceBy(absl::Minutes(9));
  EXPECT_TRUE(registry().Get(t.name(), TaskParts::kWithOutcome).ok());
  env_.AdvanceBy(absl::Minutes(1));
  EXPECT_THAT(registry().Get(t.name(), TaskParts::kWithOutcome),
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
  EXPECT_THAT(registry().Get(tasks[0].name(), TaskParts::kWithOutcome),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));
  EXPECT_THAT(registry().Get(tasks[1].name(), TaskParts::kWithOutcome),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));
  EXPECT_TRUE(registry().Get(tasks[2].name(), TaskParts::kWithOutcome).ok());
  EXPECT_TRUE(registry().Get(tasks[3].name(), TaskParts::kWithOutcome).ok());
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
  ListQuery request;
  request.page_size = 2;
  request.labels["job"] = "a";
  auto page1 = registry().List(request);
  ASSERT_TRUE(page1.ok()) << page1.status();
  ASSERT_EQ(page1->tasks.size(), 2u);
  EXPECT_EQ(page1->tasks[0].name(), names[3]);
  EXPECT_EQ(page1->tasks[1].name(), names[2]);
  // New tasks between pages do not shift the next page.
  Create(kSleep1s, {{"job", "a"}});
  request.page_token = page1->next_page_token;
  auto page2 = registry().List(request);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->tasks.size(), 2u);
  EXPECT_EQ(page2->tasks[0].name(), names[1]);
  EXPECT_EQ(page2->tasks[1].name(), names[0]);
  EXPECT_TRUE(page2->next_page_token.empty());
  // By state.
  ListQuery running;
  running.states = {weft::v1::TASK_STATE_RUNNING};
  EXPECT_EQ(registry().List(running)->tasks.size(), 3u);
  // A token with other filters is refused.
  running.page_token = page1->next_page_token;
  EXPECT_THAT(
      registry().List(running),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  ListQuery big;
  big.page_size = 5000;
  EXPECT_THAT(registry().List(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("page_size")));
}

TEST_F(TaskRegistryTest, WaitAnswersAtTheEndOrAtItsDeadline) {
  Task t = Create(kSleep1s);
  std::optional<Task> got;
  auto handle =
      registry().Wait(t.name(), env_.Now() + absl::Milliseconds(300),
                      [&](absl::StatusOr<Task> task) { got = *task; });
  ASSERT_TRUE(handle.ok());
  env_.AdvanceBy(absl::Milliseconds(300));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state(), weft::v1::TASK_STATE_RUNNING);
  got.reset();
  auto second =
      registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                      [&](absl::StatusOr<Task> task) { got = *task; });
  env_.AdvanceBy(absl::Milliseconds(700));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Terminal already: at once.
  got.reset();
  auto third = registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                               [&](absl::StatusOr<Task> task) { got = *task; });
  EXPECT_TRUE(got.has_value());
}

TEST_F(TaskRegistryTest, AWaiterThatLeavesIsNeverCalled) {
  Task t = Create(kSleep1s);
  bool called = false;
  {
    auto handle = registry().Wait(t.name(), env_.Now() + absl::Hours(1),
                                  [&](absl::StatusOr<Task>) { called = true; });
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
  const absl::StatusOr<Task> refused = CreateNow(registry(), Plan(kSleep1s));
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
  engine::Mutex names_mu;
  weft::testing::BlockingCounter answered(1000);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        // Answered on this thread, or on the one writing to the store.
        registry.Create(NewTask{plan, source, {}, "", true},
                        [&, t](absl::StatusOr<Task> task) {
                          EXPECT_TRUE(task.ok()) << task.status();
                          if (task.ok()) {
                            engine::MutexLock lock(&names_mu);
                            names[t].push_back(task->name());
                          }
                          answered.DecrementCount();
                        });
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(answered.Wait());
  engine::MutexLock lock(&names_mu);
  std::set<std::string> all;
  for (const auto& v : names) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), 1000u);
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    auto counts = registry.Counts();
    return counts[weft::v1::TASK_STATE_SUCCEEDED] == 1000;
  }));
  for (const std::string& name : all) {
    ASSERT_EQ(registry.Get(name, TaskParts::kBasic)->state(),
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
  EXPECT_THAT(registry().Get(names.front(), TaskParts::kWithOutcome),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("--max_retained_task_bytes")));
}

TEST_F(TaskRegistryTest, WhenLiveTasksFillTheBytesCreateIsRefused) {
  TaskOptions options;
  options.max_retained_bytes = 100'000;
  registry(options);
  NewTask first = Plan(kSleep1s);
  first.request_bytes = 60'000;
  ASSERT_TRUE(CreateNow(registry(), std::move(first)).ok());
  NewTask second = Plan(kSleep1s);
  second.request_bytes = 60'000;
  EXPECT_THAT(CreateNow(registry(), std::move(second)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("(--max_retained_task_bytes), and 1 of them "
                                 "are still queued or running")));
  env_.AdvanceBy(absl::Seconds(1));  // The first ends: it can go now.
  NewTask third = Plan(kSleep1s);
  third.request_bytes = 60'000;
  EXPECT_TRUE(CreateNow(registry(), std::move(third)).ok());
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
  ASSERT_TRUE(CreateNow(registry(), std::move(hog)).ok());
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
  EXPECT_THAT(registry().Get(t.name(), TaskParts::kWithOutcome, &charge),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("ask for TASK_VIEW_BASIC")));
  EXPECT_TRUE(registry().Get(t.name(), TaskParts::kBasic, &charge).ok());
  engine::MemoryBudget roomy(1 << 20);
  engine::MemoryCharge fits(&roomy);
  EXPECT_TRUE(registry().Get(t.name(), TaskParts::kWithOutcome, &fits).ok());
  EXPECT_GT(fits.bytes(), 100'000);
}

TEST_F(TaskRegistryTest, ListPagesEndBeforeTheyPassTheirBytes) {
  for (int i = 0; i < 5; ++i) Create(ValueTask(100'000));
  ListQuery request;
  request.parts = TaskParts::kFull;
  request.max_bytes = 250'000;
  std::set<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<TaskRegistry::ListResult> r = registry().List(request);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LE(r->tasks.size(), 2u);
    for (const Task& t : r->tasks) {
      EXPECT_EQ(t.outcome().value().string_value().size(), 100'000u);
      seen.insert(t.name());
    }
    if (r->next_page_token.empty()) break;
    request.page_token = r->next_page_token;
  }
  EXPECT_EQ(seen.size(), 5u);
}

// The registry over a store that is slow or fails, as a durable one may.
class TaskRegistryStoreTest : public TaskRegistryTest {
 protected:
  TaskRegistryStoreTest() {
    store_ptr_ = &failing_;
    options_.on_store_error = [this](const absl::Status& s) {
      engine::MutexLock lock(&mu_);
      store_errors_.push_back(s);
    };
  }
  // The registry goes first: it refers to the store.
  ~TaskRegistryStoreTest() override {
    failing_.FailWrites(absl::OkStatus());
    failing_.Release();
    if (registry_ != nullptr) {
      registry_->StopAccepting(absl::CancelledError("test over"));
      registry_->CancelRunning(absl::CancelledError("test over"));
      registry_.reset();
    }
  }

  std::vector<absl::Status> store_errors() {
    engine::MutexLock lock(&mu_);
    return store_errors_;
  }

  // The answers Create gave so far, in order.
  std::vector<absl::StatusOr<Task>> answers_;
  TaskRegistry::CreateFn Answer() {
    return [this](absl::StatusOr<Task> t) { answers_.push_back(std::move(t)); };
  }

  FailingTaskStore failing_;
  engine::Mutex mu_;
  std::vector<absl::Status> store_errors_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TaskRegistryStoreTest, CreateAnswersOnlyOnceTheTaskIsStored) {
  failing_.Hold();
  registry().Create(Plan(kSleep1s), Answer());
  EXPECT_TRUE(answers_.empty());
  EXPECT_EQ(failing_.size(), 0u);
  // Nothing runs before it is stored.
  EXPECT_EQ(registry().running(), 0);
  failing_.Release();
  ASSERT_EQ(answers_.size(), 1u);
  ASSERT_TRUE(answers_[0].ok()) << answers_[0].status();
  EXPECT_EQ(answers_[0]->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(registry().running(), 1);
  EXPECT_EQ(failing_.Get(answers_[0]->name())->state(),
            weft::v1::TASK_STATE_RUNNING);
}

TEST_F(TaskRegistryStoreTest, ACreateTheStoreRefusesIsNotKept) {
  TaskRegistry& r = registry();
  failing_.FailWrites(absl::UnavailableError("disk full"));
  r.Create(Plan(kSleep1s, {{"job", "a"}}, "req-1"), Answer());
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_THAT(answers_[0],
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk full")));
  EXPECT_EQ(common::Reason(answers_[0].status()),
            common::kTaskStoreUnavailable);
  EXPECT_EQ(common::RetryDelay(answers_[0].status()), absl::Seconds(1));
  // Nothing of it is left: no count, no memory, no list entry, no runs.
  EXPECT_TRUE(r.Counts().empty());
  EXPECT_EQ(r.memory().used(), 0);
  EXPECT_EQ(r.running(), 0);
  EXPECT_TRUE(r.List(ListQuery())->tasks.empty());
  EXPECT_EQ(r.store_failures(), 1);
  ASSERT_EQ(store_errors().size(), 1u);
  EXPECT_THAT(store_errors()[0].message(),
              HasSubstr("could not write the new task of tasks/"));
  // Its request_id is free again.
  failing_.FailWrites(absl::OkStatus());
  r.Create(Plan(kSleep1s, {{"job", "a"}}, "req-1"), Answer());
  ASSERT_EQ(answers_.size(), 2u);
  ASSERT_TRUE(answers_[1].ok()) << answers_[1].status();
  EXPECT_EQ(r.Counts()[weft::v1::TASK_STATE_RUNNING], 1);
}

TEST_F(TaskRegistryStoreTest, ARepeatedRequestIdWaitsForTheFirstWrite) {
  failing_.Hold();
  registry().Create(Plan(kSleep1s, {}, "req-1"), Answer());
  registry().Create(Plan(kSleep1s, {}, "req-1"), Answer());
  EXPECT_TRUE(answers_.empty());
  failing_.Release();
  ASSERT_EQ(answers_.size(), 2u);
  ASSERT_TRUE(answers_[0].ok());
  ASSERT_TRUE(answers_[1].ok());
  EXPECT_EQ(answers_[0]->name(), answers_[1]->name());
  EXPECT_EQ(registry().Counts()[weft::v1::TASK_STATE_RUNNING], 1);
}

TEST_F(TaskRegistryStoreTest, ARepeatedRequestIdFailsWithTheFirstWrite) {
  failing_.Hold();
  registry().Create(Plan(kSleep1s, {}, "req-1"), Answer());
  registry().Create(Plan(kSleep1s, {}, "req-1"), Answer());
  failing_.FailWrites(absl::UnavailableError("disk full"));
  failing_.Release();
  ASSERT_EQ(answers_.size(), 2u);
  for (const auto& a : answers_) {
    EXPECT_EQ(common::Reason(a.status()), common::kTaskStoreUnavailable);
  }
  EXPECT_TRUE(registry().Counts().empty());
}

TEST_F(TaskRegistryStoreTest,
       AFailedStateWriteIsCountedAndTheTaskServedFromMemory) {
  Task t = Create(kSleep1s);
  failing_.FailWrites(absl::UnavailableError("disk full"));
  env_.AdvanceBy(absl::Seconds(1));
  // The store still says RUNNING; the registry knows better.
  EXPECT_EQ(failing_.Get(t.name())->state(), weft::v1::TASK_STATE_RUNNING);
  Task got = Get(t.name());
  EXPECT_EQ(got.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(got.outcome().value().string_value(), "done");
  EXPECT_EQ(registry().store_failures(), 1);
  ASSERT_EQ(store_errors().size(), 1u);
  EXPECT_THAT(store_errors()[0].message(),
              HasSubstr("could not write the end of " + t.name()));
  // A deleted task is gone from the registry even when its erasure fails;
  // the caller hears that the store still has it.
  EXPECT_THAT(DeleteNow(registry(), t.name()),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("would come back after a restart")));
  EXPECT_EQ(registry().store_failures(), 2);
  EXPECT_NE(failing_.Get(t.name()), nullptr);
  EXPECT_THAT(registry().Get(t.name(), TaskParts::kBasic),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted")));
  EXPECT_TRUE(registry().List(ListQuery())->tasks.empty());
}

TEST_F(TaskRegistryStoreTest,
       AFinishedTaskIsReadFromMemoryUntilItsEndIsWritten) {
  Task t = Create(kSleep1s);
  failing_.Hold();
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(failing_.pending(), 1);
  EXPECT_EQ(failing_.Get(t.name())->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(Get(t.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  failing_.Release();
  EXPECT_EQ(failing_.Get(t.name())->state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(failing_.Get(t.name())->outcome().value().string_value(), "done");
  EXPECT_EQ(Get(t.name()).outcome().value().string_value(), "done");
  EXPECT_EQ(registry().store_failures(), 0);
}

// A watcher sees a task end before its end is written; a list by state
// right after must agree with it.
TEST_F(TaskRegistryStoreTest,
       AFinishedTaskIsListedByItsStateBeforeItsEndIsWritten) {
  Task t = Create(kSleep1s);
  failing_.Hold();
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(failing_.Get(t.name())->state(), weft::v1::TASK_STATE_RUNNING);
  ListQuery succeeded;
  succeeded.states = {weft::v1::TASK_STATE_SUCCEEDED};
  ListQuery running;
  running.states = {weft::v1::TASK_STATE_RUNNING};
  auto listed = registry().List(succeeded);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->tasks.size(), 1u);
  EXPECT_EQ(listed->tasks[0].name(), t.name());
  EXPECT_TRUE(registry().List(running)->tasks.empty());
  failing_.Release();
  EXPECT_EQ(registry().List(succeeded)->tasks.size(), 1u);
  EXPECT_TRUE(registry().List(running)->tasks.empty());
}

TEST_F(TaskRegistryStoreTest, TheStoreIsNeverCalledUnderTheRegistryLock) {
  // Called inside every Write and Erase: each would deadlock if the
  // registry held its lock there.
  int calls = 0;
  failing_.OnWrite([&] {
    ++calls;
    registry().Counts();
  });
  Task t = Create(R"({"call": {"handler": "value", "args": {"value": 1}}})");
  ASSERT_TRUE(DeleteNow(registry(), t.name()).ok());
  // Its creation, start, end and erasure.
  EXPECT_EQ(calls, 4);
}

TEST_F(TaskRegistryStoreTest, ATaskStoredAfterShutdownBeganEndsCancelled) {
  failing_.Hold();
  registry().Create(Plan(kSleep1s), Answer());
  registry().StopAccepting(absl::UnavailableError("weftd is stopping"));
  failing_.Release();
  ASSERT_EQ(answers_.size(), 1u);
  ASSERT_TRUE(answers_[0].ok());
  EXPECT_EQ(answers_[0]->state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(registry().running(), 0);
  EXPECT_EQ(Get(answers_[0]->name()).outcome().error().message(),
            "weftd is stopping");
}

TEST(TaskRegistryThreadsTest, WritesCompletedOnTheStoreThreadKeepTheirOrder) {
  engine::EventLoop loop(2);
  handlers::HandlerRegistry handlers;
  ASSERT_TRUE(handlers::RegisterBuiltinHandlers(handlers).ok());
  FailingTaskStore store(FailingTaskStore::Completion::kThread);
  TaskRegistry registry(loop, store, TaskOptions());
  auto source = std::shared_ptr<const weft::v1::PlanNode>(
      weft::testing::PlanFromJson(
          R"({"call": {"handler": "sleep", "args": {"duration": "0.001s"}}})")
          .release());
  std::shared_ptr<const plan::CompiledPlan> plan =
      *plan::Compile(source.get(), source, "plan", handlers, plan::Limits());
  constexpr int kTasks = 200;
  weft::testing::BlockingCounter answered(kTasks);
  engine::Mutex mu;
  std::vector<std::string> names;
  for (int i = 0; i < kTasks; ++i) {
    registry.Create(NewTask{plan, source, {}, "", true},
                    [&](absl::StatusOr<Task> t) {
                      EXPECT_TRUE(t.ok()) << t.status();
                      if (t.ok()) {
                        engine::MutexLock lock(&mu);
                        names.push_back(t->name());
                      }
                      answered.DecrementCount();
                    });
  }
  ASSERT_TRUE(answered.Wait());
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    return registry.Counts()[weft::v1::TASK_STATE_SUCCEEDED] == kTasks;
  }));
  // Every task's last write (its end) is what the store holds.
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    for (const std::string& name : names) {
      auto stored = store.Get(name);
      if (stored == nullptr ||
          stored->state() != weft::v1::TASK_STATE_SUCCEEDED) {
        return false;
      }
    }
    return true;
  }));
  EXPECT_EQ(registry.store_failures(), 0);
  registry.StopAccepting(absl::CancelledError("done"));
}

}  // namespace
}  // namespace weft::tasks
