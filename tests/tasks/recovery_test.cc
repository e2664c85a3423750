// The registry on a durable store across a restart: what Recover() takes
// back, and what Suspend() leaves for it. A "restart" here is what weftd's
// SIGTERM does with a durable store (StopAccepting, then Suspend) followed
// by a new registry on the same file; the crash (kill -9) is tested end to
// end in tests/weftd.

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/handlers/registry.h"
#include "server/plan/compiler.h"
#include "server/store/sqlite_task_store.h"
#include "server/tasks/registry.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/scratch_dir.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::tasks {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::ToTime;
using weft::v1::Task;

constexpr char kValue[] =
    R"({"call": {"handler": "value", "args": {"value": "made"}}})";
constexpr char kSleep10s[] =
    R"({"call": {"handler": "sleep", "args": {"duration": "10s", "value": "slept"}}})";
constexpr char kSleep1s[] =
    R"({"call": {"handler": "sleep", "args": {"duration": "1s", "value": "next"}}})";

class RecoveryTest : public ::testing::Test {
 protected:
  RecoveryTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(handlers_).ok());
    options_.max_running_tasks = 1;
    Open();
  }
  ~RecoveryTest() override { Stop(); }

  void Open() {
    absl::StatusOr<std::unique_ptr<store::SqliteTaskStore>> store =
        store::SqliteTaskStore::Open(dir_.File("weft.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    registry_ = std::make_unique<TaskRegistry>(env_, *store_, options_);
  }

  // What weftd does on SIGTERM with a durable store, once the grace period
  // is over.
  void Stop() {
    if (registry_ == nullptr) return;
    registry_->StopAccepting(absl::CancelledError("stopping"));
    registry_->Suspend(absl::CancelledError("stopping"));
    registry_.reset();
    store_.reset();
  }

  Recovery Restart(const TaskRegistry::CompileFn& compile = nullptr) {
    Stop();
    Open();
    return registry_->Recover(compile != nullptr ? compile : Compiler());
  }

  TaskRegistry::CompileFn Compiler() {
    return [this](std::shared_ptr<const weft::v1::PlanNode> plan)
               -> absl::StatusOr<std::shared_ptr<const plan::CompiledPlan>> {
      const weft::v1::PlanNode* root = plan.get();
      auto compiled = plan::Compile(root, std::move(plan), "plan", handlers_,
                                    plan::Limits());
      if (!compiled.ok()) return compiled.status();
      return std::shared_ptr<const plan::CompiledPlan>(*std::move(compiled));
    };
  }

  NewTask Plan(absl::string_view json, std::string request_id = "") {
    auto source = std::shared_ptr<const weft::v1::PlanNode>(
        weft::testing::PlanFromJson(json).release());
    auto compiled =
        plan::Compile(source.get(), source, "plan", handlers_, plan::Limits());
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    NewTask t;
    t.plan = *std::move(compiled);
    t.source = source;
    t.labels = {{"job", "nightly"}};
    t.request_id = std::move(request_id);
    return t;
  }

  // Create's answer, which comes once the store has committed.
  absl::StatusOr<Task> Create(absl::string_view json,
                              std::string request_id = "") {
    weft::testing::Notification done;
    absl::StatusOr<Task> got = absl::InternalError("no answer");
    registry_->Create(Plan(json, std::move(request_id)),
                      [&](absl::StatusOr<Task> t) {
                        got = std::move(t);
                        done.Notify();
                      });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
    return got;
  }

  Task Get(const std::string& name, int64_t* changes = nullptr) {
    absl::StatusOr<Task> t =
        registry_->Get(name, TaskParts::kFull, nullptr, changes);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }

  bool WaitForState(const std::string& name, weft::v1::TaskState state) {
    return weft::testing::WaitFor([&] { return Get(name).state() == state; });
  }

  weft::testing::ScratchDir dir_;
  engine::ManualEnv env_;
  handlers::HandlerRegistry handlers_;
  TaskOptions options_;
  std::unique_ptr<store::SqliteTaskStore> store_;
  std::unique_ptr<TaskRegistry> registry_;
};

TEST_F(RecoveryTest, FinishedQueuedAndRunningTasksComeBackAsTheyWere) {
  absl::StatusOr<Task> made = Create(kValue);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(WaitForState(made->name(), weft::v1::TASK_STATE_SUCCEEDED));
  absl::StatusOr<Task> running = Create(kSleep10s);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), weft::v1::TASK_STATE_RUNNING);
  absl::StatusOr<Task> queued = Create(kSleep1s, "nightly-7");
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->state(), weft::v1::TASK_STATE_QUEUED);
  env_.AdvanceBy(absl::Seconds(4));
  const absl::Time restarted = env_.Now();

  const Recovery found = Restart();
  EXPECT_EQ(found.finished, 1);
  EXPECT_EQ(found.resumed, 1);
  EXPECT_EQ(found.queued, 1);
  EXPECT_EQ(found.failed, 0);

  // The finished one is served as it ended, plan and all.
  Task t = Get(made->name());
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(t.outcome().value().string_value(), "made");
  EXPECT_EQ(t.plan().call().handler(), "value");
  EXPECT_EQ(t.labels().at("job"), "nightly");
  EXPECT_EQ(t.resumes(), 0);
  // The running one runs again, counting the resume; its start stays.
  t = Get(running->name());
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(t.resumes(), 1);
  EXPECT_EQ(ToTime(t.resume_time()), restarted);
  EXPECT_EQ(ToTime(t.start_time()), ToTime(running->start_time()));
  // The queued one waits for the slot, and its request_id still finds it.
  EXPECT_EQ(Get(queued->name()).state(), weft::v1::TASK_STATE_QUEUED);
  absl::StatusOr<Task> again = Create(kSleep1s, "nightly-7");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->name(), queued->name());

  // A resumed node's timer starts again: the sleep takes its 10s anew.
  env_.AdvanceBy(absl::Seconds(9));
  EXPECT_EQ(Get(running->name()).state(), weft::v1::TASK_STATE_RUNNING);
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(WaitForState(running->name(), weft::v1::TASK_STATE_SUCCEEDED));
  EXPECT_EQ(Get(running->name()).outcome().value().string_value(), "slept");
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    env_.AdvanceBy(absl::Seconds(1));
    return Get(queued->name()).state() == weft::v1::TASK_STATE_SUCCEEDED;
  }));
}

TEST_F(RecoveryTest, ChangeNumbersGoOnGrowingAcrossTheRestart) {
  absl::StatusOr<Task> running = Create(kSleep10s);
  ASSERT_TRUE(running.ok());
  absl::StatusOr<Task> done = Create(kValue);  // Queued behind it.
  ASSERT_TRUE(done.ok());
  int64_t running_before = 0;
  Get(running->name(), &running_before);
  ASSERT_TRUE(registry_->Cancel(done->name()).ok());
  ASSERT_TRUE(WaitForState(done->name(), weft::v1::TASK_STATE_CANCELLED));
  int64_t done_before = 0;
  Get(done->name(), &done_before);
  Restart();
  int64_t running_after = 0;
  int64_t done_after = 0;
  Get(running->name(), &running_after);
  Get(done->name(), &done_after);
  EXPECT_GT(running_after, running_before);
  EXPECT_GT(done_after, done_before);
}

TEST_F(RecoveryTest, TheLongestATaskMayTakeCountsFromItsCreation) {
  options_.max_task_duration = absl::Seconds(10);
  Stop();
  Open();
  absl::StatusOr<Task> t =
      Create(R"({"call": {"handler": "sleep", "args": {"duration": "60s"}}})");
  ASSERT_TRUE(t.ok());
  env_.AdvanceBy(absl::Seconds(4));
  Restart();
  // Down for four seconds: two are left.
  env_.AdvanceBy(absl::Seconds(4));
  EXPECT_EQ(Get(t->name()).state(), weft::v1::TASK_STATE_RUNNING);
  env_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(WaitForState(t->name(), weft::v1::TASK_STATE_TIMED_OUT));
  EXPECT_THAT(Get(t->name()).outcome().error().message(),
              HasSubstr("--max_task_duration"));
}

TEST_F(RecoveryTest, ATaskWhosePlanNoLongerCompilesEndsFailedSayingWhy) {
  absl::StatusOr<Task> t = Create(kSleep10s);
  ASSERT_TRUE(t.ok());
  const Recovery found =
      Restart([](std::shared_ptr<const weft::v1::PlanNode>)
                  -> absl::StatusOr<std::shared_ptr<const plan::CompiledPlan>> {
        return absl::InvalidArgumentError(
            "plan.call.handler: no handler \"sleep\"");
      });
  EXPECT_EQ(found.failed, 1);
  EXPECT_EQ(found.resumed, 0);
  Task got = Get(t->name());
  EXPECT_EQ(got.state(), weft::v1::TASK_STATE_FAILED);
  EXPECT_EQ(got.outcome().error().code(), "INVALID_ARGUMENT");
  EXPECT_THAT(got.outcome().error().message(),
              HasSubstr("could not run again after a restart: "
                        "plan.call.handler: no handler"));
  // And that end is what the store keeps.
  Restart();
  EXPECT_EQ(Get(t->name()).state(), weft::v1::TASK_STATE_FAILED);
}

TEST_F(RecoveryTest, DeletedTasksStayDeleted) {
  absl::StatusOr<Task> t = Create(kValue);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(WaitForState(t->name(), weft::v1::TASK_STATE_SUCCEEDED));
  weft::testing::Notification deleted;
  registry_->Delete(t->name(), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    deleted.Notify();
  });
  // Answered once the erasure is in the file.
  ASSERT_TRUE(deleted.WaitForNotificationWithTimeout(weft::testing::kWait));
  Restart();
  EXPECT_EQ(registry_->Get(t->name(), TaskParts::kBasic).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RecoveryTest, AShutdownLeavesQueuedTasksQueuedForTheNextStart) {
  absl::StatusOr<Task> running = Create(kSleep10s);
  ASSERT_TRUE(running.ok());
  absl::StatusOr<Task> queued = Create(kValue);
  ASSERT_TRUE(queued.ok());
  registry_->StopAccepting(absl::CancelledError("stopping"));
  EXPECT_EQ(Get(queued->name()).state(), weft::v1::TASK_STATE_QUEUED);
  EXPECT_EQ(Create(kValue).status().code(), absl::StatusCode::kUnavailable);
  const Recovery found = Restart();
  EXPECT_EQ(found.resumed, 1);
  EXPECT_EQ(found.queued, 1);
  env_.AdvanceBy(absl::Seconds(10));
  ASSERT_TRUE(WaitForState(queued->name(), weft::v1::TASK_STATE_SUCCEEDED));
  EXPECT_EQ(Get(queued->name()).outcome().value().string_value(), "made");
}

// Counts its calls; returns "counted".
class CountingHandler : public handlers::Handler {
 public:
  explicit CountingHandler(std::atomic<int>* calls) : calls_(calls) {
    info_.name = "counted";
  }
  const handlers::HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      const google::protobuf::Struct&) const override {
    return std::unique_ptr<handlers::Call>(new Counted(calls_));
  }

 private:
  class Counted : public handlers::Call {
   public:
    explicit Counted(std::atomic<int>* calls) : calls_(calls) {}
    void Start(const handlers::CallContext&,
               handlers::CallDone done) const override {
      calls_->fetch_add(1);
      google::protobuf::Value v;
      v.set_string_value("counted");
      std::move(done)(std::move(v));
    }

   private:
    std::atomic<int>* calls_;
  };
  std::atomic<int>* calls_;
  handlers::HandlerInfo info_;
};

TEST_F(RecoveryTest, AResumedTaskDoesNotRunAgainWhatEndedBeforeTheRestart) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      handlers_.Register(std::make_unique<CountingHandler>(&calls)).ok());
  absl::StatusOr<Task> t = Create(R"({"sequence": {"children": [
    {"id": "charge", "call": {"handler": "counted"}},
    {"id": "ship", "call": {"handler": "sleep", "args": {"duration": "10s", "value": "shipped"}}},
    {"id": "mail", "call": {"handler": "counted"}}]}})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(calls.load(), 1);
  env_.AdvanceBy(absl::Seconds(3));
  Restart();
  env_.AdvanceBy(absl::Seconds(10));
  ASSERT_TRUE(WaitForState(t->name(), weft::v1::TASK_STATE_SUCCEEDED));
  EXPECT_EQ(calls.load(), 2);  // "charge" before, "mail" after.
  const Task got = Get(t->name());
  EXPECT_EQ(got.resumes(), 1);
  const weft::v1::NodeOutcome& charge = got.outcome().children(0);
  EXPECT_TRUE(charge.recovered());
  EXPECT_EQ(charge.value().string_value(), "counted");
  EXPECT_EQ(ToTime(charge.end_time()), ToTime(t->create_time()));
  const weft::v1::NodeOutcome& ship = got.outcome().children(1);
  EXPECT_TRUE(ship.ran_again());
  EXPECT_FALSE(ship.recovered());
  EXPECT_EQ(ship.value().string_value(), "shipped");
  EXPECT_FALSE(got.outcome().children(2).ran_again());
  EXPECT_EQ(got.progress().leaves_done(), 3);
}

TEST_F(RecoveryTest, ATaskResumedTwiceKeepsWhatEachLifeFinished) {
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      handlers_.Register(std::make_unique<CountingHandler>(&calls)).ok());
  absl::StatusOr<Task> t = Create(R"({"sequence": {"children": [
    {"id": "one", "call": {"handler": "counted"}},
    {"id": "wait1", "call": {"handler": "sleep", "args": {"duration": "5s"}}},
    {"id": "two", "call": {"handler": "counted"}},
    {"id": "wait2", "call": {"handler": "sleep", "args": {"duration": "5s"}}},
    {"id": "three", "call": {"handler": "counted"}}]}})");
  ASSERT_TRUE(t.ok()) << t.status();
  Restart();  // "one" ended; "wait1" runs again.
  env_.AdvanceBy(absl::Seconds(5));
  EXPECT_TRUE(weft::testing::WaitFor([&] { return calls.load() == 2; }));
  Restart();  // "one" and "wait1" and "two" ended; "wait2" runs again.
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(WaitForState(t->name(), weft::v1::TASK_STATE_SUCCEEDED));
  EXPECT_EQ(calls.load(), 3);
  const Task got = Get(t->name());
  EXPECT_EQ(got.resumes(), 2);
  for (int i : {0, 1, 2}) EXPECT_TRUE(got.outcome().children(i).recovered());
  EXPECT_TRUE(got.outcome().children(3).ran_again());
}

}  // namespace
}  // namespace weft::tasks
