// The registry with replicas (a shared store): waits, watches, cancels and
// deletes of tasks another replica runs, fed by the store's notices. The
// store here is a fake whose tasks the test writes as "the other replica"
// and whose notices it delivers; the PostgreSQL side is tested in
// tests/store/postgres_task_store_test.cc and end to end in
// tests/durability/test_replicas.py.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/tasks/registry.h"
#include "server/tasks/task_names.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::tasks {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::weft::testing::IsOk;
using ::weft::testing::StatusIs;
using weft::v1::Task;
using weft::v1::TaskState;
using Notice = store::TaskStore::Notice;

// A store shared with another replica, in memory. The registry's own writes
// land in it as in any store; the test writes the other replica's tasks
// (Put) and delivers notices (Tell) as the store's listening thread would.
class SharedStore final : public store::TaskStore {
 public:
  void Write(std::shared_ptr<const Task> task, WriteDone done) override {
    inner_.Write(std::move(task), std::move(done));
  }
  void Erase(std::string name, WriteDone done) override {
    inner_.Erase(std::move(name), std::move(done));
  }
  std::shared_ptr<const Task> Get(absl::string_view name) const override {
    return inner_.Get(name);
  }
  absl::StatusOr<std::shared_ptr<const Task>> Lookup(
      absl::string_view name) const override {
    engine::MutexLock lock(&mu_);
    if (reads_left_ > 0) {
      --reads_left_;
    } else if (!read_failure_.ok()) {
      return read_failure_;
    }
    return inner_.Get(name);
  }
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const Task&)> fn) const override {
    inner_.Scan(before, fn);
  }
  size_t size() const override { return inner_.size(); }
  bool shared() const override { return true; }

  std::unique_ptr<Subscription> Listen(
      std::function<void(const Notice&)> fn) override {
    engine::MutexLock lock(&listen_mu_);
    subscriber_ = std::move(fn);
    return std::make_unique<Unsubscribe>(this);
  }
  absl::Status RequestCancel(absl::string_view name) override {
    engine::MutexLock lock(&mu_);
    if (!cancel_refusal_.ok()) return cancel_refusal_;
    std::shared_ptr<const Task> task = inner_.Get(name);
    if (task == nullptr || IsTerminal(task->state())) {
      return absl::NotFoundError(absl::StrCat("no unfinished ", name));
    }
    asked_.emplace_back(name);
    return absl::OkStatus();
  }
  std::vector<std::string> CancelRequests() const override {
    engine::MutexLock lock(&mu_);
    return requests_;
  }

  absl::StatusOr<std::map<std::string, CreatorLoad>> OthersLoad(
      const std::vector<std::string>& creators) const override {
    engine::MutexLock lock(&mu_);
    if (!load_failure_.ok()) return load_failure_;
    std::map<std::string, CreatorLoad> loads;
    for (const std::string& c : creators) {
      if (auto it = others_.find(c); it != others_.end()) loads[c] = it->second;
    }
    return loads;
  }
  // What the other replicas hold of `creator`'s tasks.
  void SetOthersLoad(const std::string& creator, CreatorLoad load) {
    engine::MutexLock lock(&mu_);
    others_[creator] = load;
  }
  void FailLoads(absl::Status why) {
    engine::MutexLock lock(&mu_);
    load_failure_ = std::move(why);
  }

  // The other replica writes `name` in `state`.
  void Put(const std::string& name, TaskState state) {
    auto task = std::make_shared<Task>();
    task->set_name(name);
    task->set_state(state);
    // Past QUEUED it started, as its owner writes it.
    if (state != weft::v1::TASK_STATE_QUEUED) {
      task->mutable_start_time()->set_seconds(1);
    }
    inner_.Write(std::move(task), [](absl::Status s) { ASSERT_TRUE(s.ok()); });
  }
  // A notice, as the listening thread hands it over.
  void Tell(Notice::Kind kind, std::string name = "") {
    engine::MutexLock lock(&listen_mu_);
    if (subscriber_) subscriber_(Notice{kind, std::move(name)});
  }
  std::vector<std::string> asked() const {
    engine::MutexLock lock(&mu_);
    return asked_;
  }
  void SetCancelRequests(std::vector<std::string> names) {
    engine::MutexLock lock(&mu_);
    requests_ = std::move(names);
  }
  void RefuseCancels(absl::Status why) {
    engine::MutexLock lock(&mu_);
    cancel_refusal_ = std::move(why);
  }
  // Reads after the next `ok` ones fail with `why`.
  void FailAfterReads(int ok, absl::Status why) {
    engine::MutexLock lock(&mu_);
    reads_left_ = ok;
    read_failure_ = std::move(why);
  }
  // Lookup fails with `why` (OK: reads again).
  void FailReads(absl::Status why) {
    engine::MutexLock lock(&mu_);
    reads_left_ = 0;
    read_failure_ = std::move(why);
  }
  bool subscribed() const {
    engine::MutexLock lock(&listen_mu_);
    return static_cast<bool>(subscriber_);
  }

 private:
  class Unsubscribe final : public Subscription {
   public:
    explicit Unsubscribe(SharedStore* store) : store_(store) {}
    ~Unsubscribe() override {
      engine::MutexLock lock(&store_->listen_mu_);
      store_->subscriber_ = nullptr;
    }

   private:
    SharedStore* const store_;
  };

  store::InMemoryTaskStore inner_;
  // Held while the subscriber runs, as the real store's is (and apart from
  // the lock its reads take).
  mutable engine::Mutex listen_mu_;
  std::function<void(const Notice&)> subscriber_ ABSL_GUARDED_BY(listen_mu_);
  mutable engine::Mutex mu_;
  std::vector<std::string> asked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  absl::Status cancel_refusal_ ABSL_GUARDED_BY(mu_);
  absl::Status read_failure_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CreatorLoad> others_ ABSL_GUARDED_BY(mu_);
  absl::Status load_failure_ ABSL_GUARDED_BY(mu_);
  mutable int reads_left_ ABSL_GUARDED_BY(mu_) = 0;
};

// What a wait was answered with, if it was.
struct Answer {
  weft::testing::Notification done;
  Task task;
  absl::Status status;
  TaskRegistry::WaitFn Fn() {
    return [this](absl::StatusOr<Task> t) {
      if (t.ok()) {
        task = *std::move(t);
      } else {
        status = t.status();
      }
      done.Notify();
    };
  }
};

class RemoteTest : public ::testing::Test {
 protected:
  RemoteTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(handlers_).ok());
    registry_ = std::make_unique<TaskRegistry>(env_, store_, TaskOptions());
  }
  ~RemoteTest() override {
    registry_->StopAccepting(absl::CancelledError("test over"));
    registry_->CancelRunning(absl::CancelledError("test over"));
  }

  // A task of this replica's, by `creator`: a sleep of an hour.
  absl::StatusOr<Task> TryCreateHere(const std::string& creator) {
    auto source = std::shared_ptr<const weft::v1::PlanNode>(
        weft::testing::PlanFromJson(
            R"({"call": {"handler": "sleep", "args": {"duration": "3600s"}}})")
            .release());
    auto compiled =
        plan::Compile(source.get(), source, "plan", handlers_, plan::Limits());
    EXPECT_THAT(compiled.status(), IsOk());
    NewTask t;
    t.plan = *std::move(compiled);
    t.source = source;
    t.creator = creator;
    std::optional<absl::StatusOr<Task>> got;
    registry_->Create(std::move(t), [&](absl::StatusOr<Task> task) {
      got = std::move(task);
    });
    EXPECT_TRUE(got.has_value());
    return got.has_value() ? *std::move(got)
                           : absl::DeadlineExceededError("no answer");
  }
  Task CreateHere() {
    absl::StatusOr<Task> task = TryCreateHere("");
    EXPECT_THAT(task.status(), IsOk());
    return task.ok() ? *task : Task();
  }

  // A wait on remote_, which the other replica runs, until `deadline`.
  std::unique_ptr<TaskRegistry::Handle> WaitOnRunning(Answer& answer,
                                                      absl::Time deadline) {
    store_.Put(remote_, weft::v1::TASK_STATE_RUNNING);
    absl::StatusOr<std::unique_ptr<TaskRegistry::Handle>> handle =
        registry_->Wait(remote_, deadline, answer.Fn());
    EXPECT_THAT(handle.status(), IsOk());
    return handle.ok() ? *std::move(handle) : nullptr;
  }

  TaskState StateOf(const std::string& name) {
    absl::StatusOr<Task> task = registry_->Get(name, TaskParts::kBasic);
    return task.ok() ? task->state() : weft::v1::TASK_STATE_UNSPECIFIED;
  }

  engine::ManualEnv env_;
  handlers::HandlerRegistry handlers_;
  SharedStore store_;
  std::unique_ptr<TaskRegistry> registry_;
  const std::string remote_ = NewTaskName();
};

TEST_F(RemoteTest, TheRegistryListensWhileItLives) {
  EXPECT_TRUE(store_.subscribed());
  registry_->StopAccepting(absl::CancelledError("test over"));
  registry_->CancelRunning(absl::CancelledError("test over"));
  registry_.reset();
  EXPECT_FALSE(store_.subscribed());
  registry_ = std::make_unique<TaskRegistry>(env_, store_, TaskOptions());
}

TEST_F(RemoteTest, AWaitAnswersWhenTheEndIsHeardOf) {
  Answer answer;
  std::unique_ptr<TaskRegistry::Handle> handle =
      WaitOnRunning(answer, absl::InfiniteFuture());
  ASSERT_NE(handle, nullptr);
  // A notice of the task while it still runs answers nothing; nor one of
  // another task.
  store_.Tell(Notice::Kind::kChanged, remote_);
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  store_.Tell(Notice::Kind::kChanged, NewTaskName());
  EXPECT_FALSE(answer.done.HasBeenNotified());
  store_.Tell(Notice::Kind::kChanged, remote_);
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_EQ(answer.task.name(), remote_);
  EXPECT_EQ(answer.task.state(), weft::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(RemoteTest, AWaitWhoseNoticeWasLostAnswersAtThePoll) {
  store_.Put(remote_, weft::v1::TASK_STATE_QUEUED);
  Answer answer;
  auto handle = registry_->Wait(remote_, absl::InfiniteFuture(), answer.Fn());
  ASSERT_THAT(handle.status(), IsOk());
  store_.Put(remote_, weft::v1::TASK_STATE_FAILED);
  store_.Tell(Notice::Kind::kPoll);
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_EQ(answer.task.state(), weft::v1::TASK_STATE_FAILED);
}

TEST_F(RemoteTest, AWaitAnswersAtItsDeadlineWithTheTaskAsItStands) {
  Answer answer;
  std::unique_ptr<TaskRegistry::Handle> handle =
      WaitOnRunning(answer, env_.Now() + absl::Seconds(5));
  ASSERT_NE(handle, nullptr);
  env_.AdvanceBy(absl::Seconds(4));
  EXPECT_FALSE(answer.done.HasBeenNotified());
  env_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_EQ(answer.task.state(), weft::v1::TASK_STATE_RUNNING);
  // Answered once: its end, heard later, is not told again.
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  store_.Tell(Notice::Kind::kChanged, remote_);
  EXPECT_EQ(answer.task.state(), weft::v1::TASK_STATE_RUNNING);
}

TEST_F(RemoteTest, AFinishedOrDeletedTaskIsAnsweredAtOnce) {
  store_.Put(remote_, weft::v1::TASK_STATE_CANCELLED);
  Answer finished;
  ASSERT_THAT(
      registry_->Wait(remote_, absl::InfiniteFuture(), finished.Fn()).status(),
      IsOk());
  ASSERT_TRUE(finished.done.HasBeenNotified());
  EXPECT_EQ(finished.task.state(), weft::v1::TASK_STATE_CANCELLED);

  // Ended and deleted between two looks: the wait is answered (the caller
  // then finds it gone).
  const std::string other = NewTaskName();
  store_.Put(other, weft::v1::TASK_STATE_RUNNING);
  Answer deleted;
  auto handle = registry_->Wait(other, absl::InfiniteFuture(), deleted.Fn());
  ASSERT_THAT(handle.status(), IsOk());
  store_.Erase(other, [](absl::Status s) { ASSERT_TRUE(s.ok()); });
  store_.Tell(Notice::Kind::kChanged, other);
  ASSERT_TRUE(deleted.done.HasBeenNotified());
  EXPECT_THAT(deleted.status,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(other)));
}

TEST_F(RemoteTest, AStoreThatCannotBeReadIsUnavailableNotAnEnd) {
  Answer answer;
  std::unique_ptr<TaskRegistry::Handle> handle =
      WaitOnRunning(answer, env_.Now() + absl::Seconds(5));
  ASSERT_NE(handle, nullptr);
  store_.FailReads(absl::UnavailableError("connection refused"));
  // A poll that cannot read waits for the next.
  store_.Tell(Notice::Kind::kPoll);
  EXPECT_FALSE(answer.done.HasBeenNotified());
  // Calls that must read it say why they cannot.
  for (const absl::Status& s :
       {registry_->Get(remote_, TaskParts::kBasic).status(),
        registry_->Cancel(remote_).status(),
        registry_->Watch(remote_, [] {}).status()}) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                            HasSubstr("connection refused")));
    EXPECT_EQ(common::Reason(s), common::kTaskStoreUnavailable);
  }
  // At the deadline, the wait is answered so.
  env_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_THAT(answer.status, StatusIs(absl::StatusCode::kUnavailable,
                                      HasSubstr("cannot read " + remote_)));
  // A row that does not parse is not a store that cannot be reached.
  store_.FailReads(absl::DataLossError("task row 7 does not parse"));
  absl::Status lost = registry_->Get(remote_, TaskParts::kBasic).status();
  EXPECT_THAT(lost, StatusIs(absl::StatusCode::kDataLoss,
                             HasSubstr("task row 7 does not parse")));
  EXPECT_NE(common::Reason(lost), common::kTaskStoreUnavailable);
  // Read again, it is there.
  store_.FailReads(absl::OkStatus());
  EXPECT_THAT(registry_->Get(remote_, TaskParts::kBasic).status(), IsOk());
}

TEST_F(RemoteTest, AWaitOnAnEndedTaskIsAnsweredFromItsFirstRead) {
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  // Every later read fails: the answer needs none.
  store_.FailAfterReads(1, absl::UnavailableError("connection refused"));
  Answer answer;
  absl::StatusOr<std::unique_ptr<TaskRegistry::Handle>> handle =
      registry_->Wait(remote_, env_.Now() + absl::Seconds(5), answer.Fn());
  ASSERT_THAT(handle.status(), IsOk());
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_THAT(answer.status, IsOk());
  EXPECT_EQ(answer.task.state(), weft::v1::TASK_STATE_SUCCEEDED);
}

TEST_F(RemoteTest, AWaiterThatLeftIsNeverCalled) {
  Answer answer;
  std::unique_ptr<TaskRegistry::Handle> handle =
      WaitOnRunning(answer, env_.Now() + absl::Seconds(5));
  ASSERT_NE(handle, nullptr);
  handle.reset();
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  store_.Tell(Notice::Kind::kChanged, remote_);
  store_.Tell(Notice::Kind::kPoll);
  env_.AdvanceBy(absl::Seconds(10));
  EXPECT_FALSE(answer.done.HasBeenNotified());
}

TEST_F(RemoteTest, AWatcherIsToldOfEachNoticeOfItsTaskAndEachPoll) {
  store_.Put(remote_, weft::v1::TASK_STATE_RUNNING);
  std::atomic<int> told{0};
  auto handle = registry_->Watch(remote_, [&] { ++told; });
  ASSERT_THAT(handle.status(), IsOk());
  store_.Tell(Notice::Kind::kChanged, remote_);
  EXPECT_EQ(told.load(), 1);
  store_.Tell(Notice::Kind::kChanged, NewTaskName());
  EXPECT_EQ(told.load(), 1);
  store_.Tell(Notice::Kind::kPoll);
  EXPECT_EQ(told.load(), 2);
  // Each read of it carries a change number that grows with its state.
  int64_t running = 0, ended = 0;
  ASSERT_THAT(
      registry_->Get(remote_, TaskParts::kBasic, nullptr, &running).status(),
      IsOk());
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  ASSERT_THAT(
      registry_->Get(remote_, TaskParts::kBasic, nullptr, &ended).status(),
      IsOk());
  EXPECT_GT(running, 0);
  EXPECT_GT(ended, running);
  handle->reset();
  store_.Tell(Notice::Kind::kChanged, remote_);
  EXPECT_EQ(told.load(), 2);
}

TEST_F(RemoteTest, UnknownNamesAreNotFound) {
  Answer answer;
  EXPECT_THAT(
      registry_->Wait(remote_, absl::InfiniteFuture(), answer.Fn()).status(),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr(remote_)));
  EXPECT_THAT(registry_->Watch(remote_, [] {}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(remote_)));
  EXPECT_THAT(registry_->Cancel(remote_).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(remote_)));
  // Nothing was left listening for it.
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  store_.Tell(Notice::Kind::kChanged, remote_);
  EXPECT_FALSE(answer.done.HasBeenNotified());
}

TEST_F(RemoteTest, ACancelIsAskedOfTheReplicaThatRunsTheTask) {
  store_.Put(remote_, weft::v1::TASK_STATE_RUNNING);
  absl::StatusOr<Task> asked = registry_->Cancel(remote_);
  ASSERT_THAT(asked.status(), IsOk());
  EXPECT_EQ(asked->state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_THAT(store_.asked(), ElementsAre(remote_));
  // A finished one is answered as it is, and nothing asked.
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  absl::StatusOr<Task> finished = registry_->Cancel(remote_);
  ASSERT_THAT(finished.status(), IsOk());
  EXPECT_EQ(finished->state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_THAT(store_.asked(), ElementsAre(remote_));
  // A store that cannot be reached: UNAVAILABLE, saying so.
  const std::string other = NewTaskName();
  store_.Put(other, weft::v1::TASK_STATE_QUEUED);
  store_.RefuseCancels(absl::UnavailableError("connection refused"));
  absl::StatusOr<Task> refused = registry_->Cancel(other);
  EXPECT_THAT(refused.status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot ask the replica that runs " + other +
                                 " to cancel it")));
  EXPECT_EQ(common::Reason(refused.status()), common::kTaskStoreUnavailable);
}

TEST_F(RemoteTest, AnUnfinishedTaskIsNotDeletedWhereverItRuns) {
  store_.Put(remote_, weft::v1::TASK_STATE_RUNNING);
  std::optional<absl::Status> got;
  registry_->Delete(remote_, [&](absl::Status s) { got = std::move(s); });
  ASSERT_TRUE(got.has_value());
  EXPECT_THAT(*got, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("cancel it first")));
  EXPECT_EQ(common::Reason(*got), common::kTaskNotFinished);
  store_.Put(remote_, weft::v1::TASK_STATE_SUCCEEDED);
  got.reset();
  registry_->Delete(remote_, [&](absl::Status s) { got = std::move(s); });
  ASSERT_TRUE(got.has_value());
  EXPECT_THAT(*got, IsOk());
  EXPECT_EQ(store_.Get(remote_), nullptr);
}

TEST_F(RemoteTest, ACancelAskedOfThisReplicaCancelsItsTask) {
  const Task heard = CreateHere();
  const Task polled = CreateHere();
  ASSERT_EQ(StateOf(heard.name()), weft::v1::TASK_STATE_RUNNING);
  store_.Tell(Notice::Kind::kCancel, heard.name());
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return StateOf(heard.name()) == weft::v1::TASK_STATE_CANCELLED; }));
  // One asked while no notice came through is found at the poll.
  store_.SetCancelRequests({polled.name()});
  store_.Tell(Notice::Kind::kPoll);
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    return StateOf(polled.name()) == weft::v1::TASK_STATE_CANCELLED;
  }));
  // Asked of a task this replica does not run: not asked again.
  store_.Put(remote_, weft::v1::TASK_STATE_RUNNING);
  store_.Tell(Notice::Kind::kCancel, remote_);
  EXPECT_THAT(store_.asked(), IsEmpty());
}

TEST(RemoteThreadsTest, NoticesWhileWaitsAndWatchesComeAndGo) {
  engine::ManualEnv env;
  SharedStore store;
  TaskRegistry registry(env, store, TaskOptions());
  std::vector<std::string> names;
  for (int i = 0; i < 8; ++i) {
    names.push_back(NewTaskName());
    store.Put(names.back(), weft::v1::TASK_STATE_RUNNING);
  }
  std::atomic<bool> stop{false};
  std::thread listener([&] {
    for (int i = 0; !stop.load(); ++i) {
      store.Tell(i % 3 == 0 ? Notice::Kind::kPoll : Notice::Kind::kChanged,
                 names[i % names.size()]);
    }
  });
  std::atomic<int> answered{0};
  for (int round = 0; round < 300; ++round) {
    const std::string& name = names[round % names.size()];
    auto wait = registry.Wait(name, absl::InfiniteFuture(),
                              [&](absl::StatusOr<Task>) { ++answered; });
    auto watch = registry.Watch(name, [] {});
    ASSERT_THAT(wait.status(), IsOk());
    ASSERT_THAT(watch.status(), IsOk());
    if (round % 50 == 49) {
      store.Put(name, weft::v1::TASK_STATE_SUCCEEDED);
      store.Tell(Notice::Kind::kChanged, name);
    }
  }
  stop.store(true);
  listener.join();
  // Each wait whose task had ended by the time it was made or heard of
  // was answered once at most: no more than the waits made.
  EXPECT_LE(answered.load(), 300);
  EXPECT_GE(answered.load(), 6);
}

TEST_F(RemoteTest, APrincipalsQuotasCountItsTasksOnEveryReplica) {
  TaskOptions options;
  options.max_running_per_principal = 2;
  options.max_queued_per_principal = 1;
  registry_->StopAccepting(absl::CancelledError("replaced"));
  registry_->CancelRunning(absl::CancelledError("replaced"));
  registry_.reset();  // Unsubscribed before the next one subscribes.
  registry_ = std::make_unique<TaskRegistry>(env_, store_, options);

  // Two of ana's tasks run on another replica: hers here waits.
  store_.SetOthersLoad("ana", {.running = 2, .queued = 0});
  absl::StatusOr<Task> waits = TryCreateHere("ana");
  ASSERT_THAT(waits.status(), IsOk());
  EXPECT_EQ(StateOf(waits->name()), weft::v1::TASK_STATE_QUEUED);
  // Her queue is full (one waits here); others are not held up.
  absl::StatusOr<Task> refused = TryCreateHere("ana");
  EXPECT_THAT(refused.status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("principal \"ana\" has 2 tasks running "
                                 "and 1 waiting")));
  EXPECT_EQ(common::Reason(refused.status()), common::kPrincipalQuota);
  absl::StatusOr<Task> bob = TryCreateHere("bob");
  ASSERT_THAT(bob.status(), IsOk());
  EXPECT_EQ(StateOf(bob->name()), weft::v1::TASK_STATE_RUNNING);

  // One of hers ended there: the next poll starts hers here.
  store_.SetOthersLoad("ana", {.running = 1, .queued = 0});
  store_.Tell(Notice::Kind::kPoll);
  EXPECT_EQ(StateOf(waits->name()), weft::v1::TASK_STATE_RUNNING);
  // Her slots are full across replicas again (1 there, 1 here): the next
  // waits, and her queued tasks elsewhere count against her queue.
  absl::StatusOr<Task> next = TryCreateHere("ana");
  ASSERT_THAT(next.status(), IsOk());
  EXPECT_EQ(StateOf(next->name()), weft::v1::TASK_STATE_QUEUED);
  store_.SetOthersLoad("ana", {.running = 0, .queued = 1});
  // Read at its creation: her running slots there are free now, so her
  // queued task starts first, and this one waits behind her queue there.
  absl::StatusOr<Task> behind = TryCreateHere("ana");
  EXPECT_EQ(StateOf(next->name()), weft::v1::TASK_STATE_RUNNING);
  EXPECT_THAT(behind.status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("2 tasks running and 1 waiting")));

  // When the others cannot be counted, nothing is admitted blind.
  store_.FailLoads(absl::UnavailableError("connection refused"));
  absl::StatusOr<Task> blind = TryCreateHere("ana");
  EXPECT_THAT(blind.status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot count the principal's tasks on "
                                 "other replicas: connection refused")));
  EXPECT_EQ(common::Reason(blind.status()), common::kTaskStoreUnavailable);
  // Tasks without a creator (no callers) are not counted.
  EXPECT_THAT(TryCreateHere("").status(), IsOk());
}

}  // namespace
}  // namespace weft::tasks
