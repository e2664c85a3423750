// The background-task methods of weft.v1.Orchestrator, over loopback.

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/outcome.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/deep.h"
#include "tests/testing/time.h"

namespace weft::testing {
namespace {

using ::testing::HasSubstr;
using weft::v1::Task;

constexpr char kSleep[] =
    R"({"plan": {"call": {"handler": "sleep", "args": {"duration": "%s", "value": "done"}}}, "labels": {"job": "%s"}})";

std::string SleepTask(absl::string_view duration,
                      absl::string_view job = "test") {
  return absl::StrFormat(kSleep, duration, job);
}

class TaskMethodsTest : public ::testing::Test {
 protected:
  explicit TaskMethodsTest(weftd::ServerOptions options = {}) : f_(options) {}

  grpc::Status Create(absl::string_view json, Task* task) {
    grpc::ClientContext context;
    return f_.orchestrator().CreateTask(
        &context, FromJson<weft::v1::CreateTaskRequest>(json), task);
  }
  Task MustCreate(absl::string_view json) {
    Task task;
    grpc::Status s = Create(json, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return task;
  }
  grpc::Status Get(const std::string& name, Task* task,
                   weft::v1::TaskView view = weft::v1::TASK_VIEW_UNSPECIFIED) {
    grpc::ClientContext context;
    weft::v1::GetTaskRequest request;
    request.set_name(name);
    request.set_view(view);
    return f_.orchestrator().GetTask(&context, request, task);
  }
  Task Wait(const std::string& name, absl::Duration timeout = kWait) {
    grpc::ClientContext context;
    weft::v1::WaitTaskRequest request;
    request.set_name(name);
    request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
    Task task;
    grpc::Status s = f_.orchestrator().WaitTask(&context, request, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return task;
  }
  std::vector<weft::v1::TaskEvent> Watch(const std::string& name,
                                         grpc::Status* status,
                                         int64_t after_sequence = 0) {
    grpc::ClientContext context;
    weft::v1::WatchTaskRequest request;
    request.set_name(name);
    request.set_after_sequence(after_sequence);
    auto reader = f_.orchestrator().WatchTask(&context, request);
    std::vector<weft::v1::TaskEvent> events;
    weft::v1::TaskEvent event;
    while (reader->Read(&event)) events.push_back(event);
    *status = reader->Finish();
    return events;
  }

  ServerFixture f_;
};

TEST_F(TaskMethodsTest, CreateReturnsAtOnceAndWaitSeesTheEnd) {
  Task t = MustCreate(SleepTask("0.2s"));
  EXPECT_THAT(t.name(), ::testing::MatchesRegex("tasks/[0-9a-f]{32}"));
  EXPECT_EQ(t.state(), weft::v1::TASK_STATE_RUNNING);
  EXPECT_EQ(t.labels().at("job"), "test");
  Task done = Wait(t.name());
  EXPECT_EQ(done.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(common::AssembleValue(done.outcome()).string_value(), "done");
  EXPECT_EQ(done.progress().leaves_done(), 1);
  EXPECT_GE(ToTime(done.end_time()), ToTime(done.start_time()));
}

TEST_F(TaskMethodsTest, ViewsChooseWhatATaskCarries) {
  Task t = MustCreate(SleepTask("0.01s"));
  Wait(t.name());
  Task basic, standard, full;
  ASSERT_TRUE(Get(t.name(), &basic, weft::v1::TASK_VIEW_BASIC).ok());
  ASSERT_TRUE(Get(t.name(), &standard).ok());
  ASSERT_TRUE(Get(t.name(), &full, weft::v1::TASK_VIEW_FULL).ok());
  EXPECT_FALSE(basic.has_outcome());
  EXPECT_FALSE(basic.has_plan());
  EXPECT_TRUE(standard.has_outcome());
  EXPECT_FALSE(standard.has_plan());
  EXPECT_TRUE(full.has_outcome());
  EXPECT_EQ(full.plan().call().handler(), "sleep");
}

TEST_F(TaskMethodsTest,
       WaitAnswersWhenItsTimeoutPassesAndWithinTheCallersDeadline) {
  Task t = MustCreate(SleepTask("3600s"));
  {
    grpc::ClientContext context;
    weft::v1::WaitTaskRequest request;
    request.set_name(t.name());
    request.mutable_timeout()->set_nanos(200'000'000);
    Task got;
    ASSERT_TRUE(f_.orchestrator().WaitTask(&context, request, &got).ok());
    EXPECT_EQ(got.state(), weft::v1::TASK_STATE_RUNNING);
  }
  {
    // The default wait is 30 s; the caller's 0.5 s deadline wins, and the
    // answer is the task, not DEADLINE_EXCEEDED.
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
    weft::v1::WaitTaskRequest request;
    request.set_name(t.name());
    Task got;
    grpc::Status s = f_.orchestrator().WaitTask(&context, request, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(got.state(), weft::v1::TASK_STATE_RUNNING);
  }
  grpc::ClientContext context;
  weft::v1::CancelTaskRequest cancel;
  cancel.set_name(t.name());
  Task cancelled;
  ASSERT_TRUE(f_.orchestrator().CancelTask(&context, cancel, &cancelled).ok());
  EXPECT_EQ(Wait(t.name()).state(), weft::v1::TASK_STATE_CANCELLED);
}

TEST_F(TaskMethodsTest,
       WatchStreamsSnapshotThenChangesInOrderAndEndsAfterTheEnd) {
  std::string children;
  for (int i = 0; i < 30; ++i) {
    absl::StrAppend(&children, i ? "," : "",
                    R"({"call": {"handler": "sleep", "args": {"duration": "0.)",
                    absl::StrFormat("%02d", 20 + i * 2), R"(s"}}})");
  }
  Task t = MustCreate(absl::StrCat(R"({"plan": {"parallel": {"children": [)",
                                   children, "]}}}"));
  grpc::Status status;
  std::vector<weft::v1::TaskEvent> events = Watch(t.name(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(events.size(), 2u);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].sequence(), events[i - 1].sequence());
  }
  // The task's changes: created, started, 30 leaves started and ended, ended.
  EXPECT_EQ(events.back().sequence(), 63);
  EXPECT_EQ(events.back().task().state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(events.back().task().progress().leaves_done(), 30);
  // 30 leaves ending over about 0.6 s: progress is coalesced, not one
  // event per leaf.
  EXPECT_LT(events.size(), 30u);
  int last_done = -1;
  for (const auto& e : events) {
    EXPECT_GE(e.task().progress().leaves_done(), last_done);
    last_done = e.task().progress().leaves_done();
  }
}

TEST_F(TaskMethodsTest, WatchCanBeResumedByGettingTheTaskAndWatchingAgain) {
  Task t = MustCreate(SleepTask("2s"));
  int64_t seen = 0;
  {
    grpc::ClientContext context;
    weft::v1::WatchTaskRequest request;
    request.set_name(t.name());
    auto reader = f_.orchestrator().WatchTask(&context, request);
    weft::v1::TaskEvent first;
    ASSERT_TRUE(reader->Read(&first));
    EXPECT_GE(first.sequence(), 2);  // Created, then started.
    EXPECT_EQ(first.task().state(), weft::v1::TASK_STATE_RUNNING);
    seen = first.sequence();
    context.TryCancel();  // The connection drops.
    while (reader->Read(&first)) {
    }
    reader->Finish();
  }
  Task now;
  ASSERT_TRUE(Get(t.name(), &now).ok());
  grpc::Status status;
  std::vector<weft::v1::TaskEvent> events = Watch(t.name(), &status);
  ASSERT_TRUE(status.ok());
  ASSERT_FALSE(events.empty());
  EXPECT_GE(events.front().sequence(), seen);  // Numbered per task.
  EXPECT_EQ(events.back().task().state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Watching a finished task: one event, the end.
  events = Watch(t.name(), &status);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].task().state(), weft::v1::TASK_STATE_SUCCEEDED);
}

constexpr char kTree[] = R"({"plan": {"parallel": {"children": [
    {"id": "fetch", "sequence": {"children": [
      {"call": {"handler": "value", "args": {"value": "a"}}},
      {"call": {"handler": "value", "args": {"value": {"b": [1, 2]}}}}]}},
    {"id": "count", "call": {"handler": "value", "args": {"value": 3}}}]}}})";

TEST_F(TaskMethodsTest, DetailAndNodeChooseWhatOutcomeAnAnswerCarries) {
  const Task created = MustCreate(kTree);
  const Task full = Wait(created.name());
  ASSERT_EQ(full.state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Full: each value once, at its leaf.
  EXPECT_FALSE(full.outcome().has_value());
  EXPECT_FALSE(full.outcome().children(0).has_value());
  EXPECT_EQ(full.outcome()
                .children(0)
                .children(1)
                .value()
                .struct_value()
                .fields()
                .at("b")
                .list_value()
                .values_size(),
            2);
  const std::string whole = R"({"count":3,"fetch":["a",{"b":[1,2]}]})";
  EXPECT_EQ(ToJson(common::AssembleValue(full.outcome())), whole);

  // The root alone, with its value built; by WaitTask, GetTask and WatchTask.
  grpc::ClientContext wait_context;
  weft::v1::WaitTaskRequest wait;
  wait.set_name(created.name());
  wait.set_detail(weft::v1::OUTCOME_DETAIL_ROOT);
  Task root;
  ASSERT_TRUE(f_.orchestrator().WaitTask(&wait_context, wait, &root).ok());
  EXPECT_EQ(root.outcome().children_size(), 0);
  EXPECT_EQ(ToJson(root.outcome().value()), whole);
  EXPECT_EQ(root.outcome().join(), weft::v1::JOIN_ALL);

  auto get = [&](weft::v1::OutcomeDetail detail, const std::string& node,
                 Task* out) {
    grpc::ClientContext context;
    weft::v1::GetTaskRequest request;
    request.set_name(created.name());
    request.set_detail(detail);
    request.set_node(node);
    return f_.orchestrator().GetTask(&context, request, out);
  };
  Task got;
  ASSERT_TRUE(get(weft::v1::OUTCOME_DETAIL_ROOT, "", &got).ok());
  EXPECT_EQ(ToJson(got.outcome().value()), whole);
  // One node by its path: its subtree, or it alone with its value.
  ASSERT_TRUE(get(weft::v1::OUTCOME_DETAIL_FULL, "fetch", &got).ok());
  EXPECT_EQ(got.outcome().id(), "fetch");
  EXPECT_EQ(got.outcome().children_size(), 2);
  ASSERT_TRUE(get(weft::v1::OUTCOME_DETAIL_ROOT, "fetch", &got).ok());
  EXPECT_EQ(ToJson(got.outcome().value()), R"(["a",{"b":[1,2]}])");
  ASSERT_TRUE(
      get(weft::v1::OUTCOME_DETAIL_ROOT, "fetch/children[1]", &got).ok());
  EXPECT_EQ(ToJson(got.outcome().value()), R"({"b":[1,2]})");
  grpc::Status s = get(weft::v1::OUTCOME_DETAIL_FULL, "fetch/nope", &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(),
            "node: fetch has no child \"nope\"; its children: children[0], "
            "children[1]");
  s = get(weft::v1::OUTCOME_DETAIL_FULL, "fetch//x", &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext watch_context;
  weft::v1::WatchTaskRequest watch;
  watch.set_name(created.name());
  watch.set_detail(weft::v1::OUTCOME_DETAIL_ROOT);
  auto reader = f_.orchestrator().WatchTask(&watch_context, watch);
  weft::v1::TaskEvent event, last;
  while (reader->Read(&event)) last = event;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(ToJson(last.task().outcome().value()), whole);
  EXPECT_EQ(last.task().outcome().children_size(), 0);
}

TEST_F(TaskMethodsTest, UndefinedDetailsAndViewsAreRefused) {
  const Task created = MustCreate(kTree);
  Wait(created.name());
  grpc::ClientContext c1, c2, c3, c4;
  weft::v1::GetTaskRequest get;
  get.set_name(created.name());
  get.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  Task task;
  grpc::Status s = f_.orchestrator().GetTask(&c1, get, &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "detail: unknown OutcomeDetail 7; use OUTCOME_DETAIL_FULL or "
            "OUTCOME_DETAIL_ROOT");
  get.set_detail(weft::v1::OUTCOME_DETAIL_FULL);
  get.set_view(static_cast<weft::v1::TaskView>(9));
  s = f_.orchestrator().GetTask(&c2, get, &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("view: unknown TaskView 9"));
  weft::v1::WaitTaskRequest wait;
  wait.set_name(created.name());
  wait.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  EXPECT_EQ(f_.orchestrator().WaitTask(&c3, wait, &task).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  weft::v1::WatchTaskRequest watch;
  watch.set_name(created.name());
  watch.set_detail(static_cast<weft::v1::OutcomeDetail>(7));
  auto reader = f_.orchestrator().WatchTask(&c4, watch);
  weft::v1::TaskEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

class TaskAnswerLimitTest : public TaskMethodsTest {
 protected:
  TaskAnswerLimitTest() : TaskMethodsTest(Options()) {}
  static weftd::ServerOptions Options() {
    weftd::ServerOptions options;
    options.orchestrator.max_outcome_bytes = 100'000;
    return options;
  }
};

TEST_F(TaskAnswerLimitTest, AnswersPastTheLimitAreRefusedSayingWhatToAskFor) {
  // Two values of 40 KB fit an answer; with the plan echoed, they do not.
  const std::string big(40'000, 'x');
  const Task created = MustCreate(absl::StrCat(
      R"({"plan": {"parallel": {"children": [
        {"id": "a", "call": {"handler": "value", "args": {"value": ")",
      big, R"("}}},
        {"id": "b", "call": {"handler": "value", "args": {"value": ")",
      big, R"("}}}]}}})"));
  EXPECT_EQ(Wait(created.name()).state(), weft::v1::TASK_STATE_SUCCEEDED);
  Task task;
  grpc::Status s = Get(created.name(), &task, weft::v1::TASK_VIEW_FULL);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("an answer may carry (--max_outcome_bytes); ask for "
                        "detail OUTCOME_DETAIL_ROOT"));
  EXPECT_THAT(s.error_message(), HasSubstr("leave out the plan (view)"));
  EXPECT_TRUE(Get(created.name(), &task).ok());
  // A full list of such tasks pages one at a time; a page never passes it.
  const Task last = MustCreate(absl::StrCat(
      R"({"plan": {"call": {"handler": "value", "args": {"value": ")", big,
      R"("}}}})"));
  Wait(last.name());
  grpc::ClientContext context;
  weft::v1::ListTasksRequest list;
  list.set_view(weft::v1::TASK_VIEW_FULL);
  weft::v1::ListTasksResponse page;
  ASSERT_TRUE(f_.orchestrator().ListTasks(&context, list, &page).ok());
  EXPECT_EQ(page.tasks_size(), 1);
  EXPECT_LE(page.ByteSizeLong(), 100'000u);
  EXPECT_FALSE(page.next_page_token().empty());
  // The first task alone is too large with its plan: the page says so.
  grpc::ClientContext next_context;
  list.set_page_token(page.next_page_token());
  grpc::Status listed = f_.orchestrator().ListTasks(&next_context, list, &page);
  EXPECT_EQ(listed.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(listed.error_message(), HasSubstr("alone takes"));
  EXPECT_THAT(listed.error_message(), HasSubstr("TASK_VIEW_BASIC"));
}

TEST_F(TaskMethodsTest, AWatchResumesAfterTheLastEventItSaw) {
  // Long enough to be running still when the watch begins, under a
  // sanitizer too.
  const Task t = MustCreate(SleepTask("2s"));
  auto watch = [&](int64_t after, grpc::Status* status) {
    return Watch(t.name(), status, after);
  };
  grpc::Status s;
  std::vector<weft::v1::TaskEvent> all = watch(0, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_GE(all.size(), 2u);
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_GT(all[i].sequence(), all[i - 1].sequence());
  }
  const int64_t last = all.back().sequence();
  EXPECT_EQ(all.back().task().state(), weft::v1::TASK_STATE_SUCCEEDED);
  // Numbered per task: another watch sees the same numbers.
  std::vector<weft::v1::TaskEvent> again = watch(0, &s);
  ASSERT_EQ(again.size(), 1u);  // The task as it stands: ended.
  EXPECT_EQ(again[0].sequence(), last);
  // Resumed after an early event: what came since, to the end.
  std::vector<weft::v1::TaskEvent> resumed = watch(all[0].sequence(), &s);
  ASSERT_TRUE(s.ok());
  ASSERT_FALSE(resumed.empty());
  EXPECT_GT(resumed.front().sequence(), all[0].sequence());
  EXPECT_EQ(resumed.back().sequence(), last);
  // Resumed after the end: nothing more, and the stream ends.
  EXPECT_TRUE(watch(last, &s).empty());
  EXPECT_TRUE(s.ok());
  // A number the task never reached, and a negative one.
  watch(last + 5, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(s.error_message(), HasSubstr("is past the task's last change"));
  watch(-1, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(TaskMethodsTest, AWaitTheCallerCancelsIsDroppedByTheServer) {
  const Task t = MustCreate(SleepTask("60s"));
  // The task's sleep holds a timer; a wait adds its own.
  const size_t before = f_.server().loop().pending_timers();
  grpc::ClientContext context;
  weft::v1::WaitTaskRequest request;
  request.set_name(t.name());
  request.mutable_timeout()->set_seconds(3600);
  grpc::Status status;
  std::thread waiter([&] {
    Task got;
    status = f_.orchestrator().WaitTask(&context, request, &got);
  });
  const bool waiting = f_.WaitFor(
      [&] { return f_.server().loop().pending_timers() == before + 1; });
  context.TryCancel();
  waiter.join();
  ASSERT_TRUE(waiting);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // The server let go of the wait: its timer is gone, the task runs on.
  EXPECT_TRUE(f_.WaitFor(
      [&] { return f_.server().loop().pending_timers() == before; }));
  Task now;
  ASSERT_TRUE(Get(t.name(), &now).ok());
  EXPECT_EQ(now.state(), weft::v1::TASK_STATE_RUNNING);
}

TEST_F(TaskMethodsTest, AResumedWatchOfAnUnchangedTaskWaitsForItsNextChange) {
  const Task t = MustCreate(SleepTask("0.3s"));
  grpc::ClientContext first_context;
  weft::v1::WatchTaskRequest request;
  request.set_name(t.name());
  auto first = f_.orchestrator().WatchTask(&first_context, request);
  weft::v1::TaskEvent seen;
  ASSERT_TRUE(first->Read(&seen));
  first_context.TryCancel();
  while (first->Read(&seen)) {
  }
  (void)first->Finish();
  // Whatever it saw, the resumed stream goes on from there to the end.
  grpc::ClientContext context;
  request.set_after_sequence(seen.sequence());
  auto reader = f_.orchestrator().WatchTask(&context, request);
  weft::v1::TaskEvent event, last;
  int n = 0;
  while (reader->Read(&event)) {
    EXPECT_GT(event.sequence(), seen.sequence());
    last = event;
    ++n;
  }
  EXPECT_TRUE(reader->Finish().ok());
  if (seen.task().state() != weft::v1::TASK_STATE_SUCCEEDED) {
    EXPECT_GE(n, 1);
    EXPECT_EQ(last.task().state(), weft::v1::TASK_STATE_SUCCEEDED);
  }
}

TEST_F(TaskMethodsTest, ListFindsTasksByLabelNewestFirstAPageAtATime) {
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i)
    names.push_back(MustCreate(SleepTask("0.01s", "news")).name());
  MustCreate(SleepTask("0.01s", "other"));
  weft::v1::ListTasksRequest request;
  (*request.mutable_labels())["job"] = "news";
  request.set_page_size(3);
  std::vector<std::string> seen;
  for (;;) {
    grpc::ClientContext context;
    weft::v1::ListTasksResponse page;
    ASSERT_TRUE(f_.orchestrator().ListTasks(&context, request, &page).ok());
    for (const Task& t : page.tasks()) {
      seen.push_back(t.name());
      EXPECT_FALSE(t.has_outcome());
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(seen, std::vector<std::string>(names.rbegin(), names.rend()));
}

TEST_F(TaskMethodsTest, DeleteOnlyFinishedTasksThenNotFoundSaysDeleted) {
  Task t = MustCreate(SleepTask("3600s"));
  grpc::ClientContext c1;
  weft::v1::DeleteTaskRequest del;
  del.set_name(t.name());
  google::protobuf::Empty empty;
  grpc::Status s = f_.orchestrator().DeleteTask(&c1, del, &empty);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext c2;
  weft::v1::CancelTaskRequest cancel;
  cancel.set_name(t.name());
  Task cancelled;
  ASSERT_TRUE(f_.orchestrator().CancelTask(&c2, cancel, &cancelled).ok());
  Wait(t.name());
  grpc::ClientContext c3;
  ASSERT_TRUE(f_.orchestrator().DeleteTask(&c3, del, &empty).ok());
  Task gone;
  s = Get(t.name(), &gone);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("deleted (DeleteTask)"));
}

TEST_F(TaskMethodsTest, BadNamesAndUnknownTasks) {
  Task t;
  grpc::Status s = Get("task/123", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("is not a task name"));
  s = Get("tasks/" + std::string(32, '0'), &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("no such task"));
  grpc::Status watch;
  Watch("tasks/" + std::string(32, '0'), &watch);
  EXPECT_EQ(watch.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TaskMethodsTest, CreateChecksThePlanLikeRun) {
  Task t;
  grpc::Status s = Create(R"({"plan": {"parallel": {"children": []}}})", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("plan.parallel.children: a parallel needs"));
  s = Create(R"({"labels": {"job": "x"}})", &t);
  EXPECT_THAT(s.error_message(), HasSubstr("plan: missing"));
}

TEST_F(TaskMethodsTest, SameRequestIdIsTheSameTaskAndAnotherPlanIsRefused) {
  const std::string a =
      R"({"requestId": "r1", "plan": {"call": {"handler": "sleep", "args": {"duration": "1s"}}}})";
  Task first = MustCreate(a);
  Task second = MustCreate(a);
  EXPECT_EQ(first.name(), second.name());
  Task t;
  grpc::Status s = Create(
      R"({"requestId": "r1", "plan": {"call": {"handler": "sleep", "args": {"duration": "2s"}}}})",
      &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr(first.name()));
}

TEST_F(TaskMethodsTest, ServerInfoCountsTasksAndDescribesPools) {
  MustCreate(SleepTask("3600s"));
  Wait(MustCreate(SleepTask("0.01s")).name());
  grpc::ClientContext context;
  weft::v1::ServerInfo info;
  ASSERT_TRUE(f_.orchestrator().GetServerInfo(&context, {}, &info).ok());
  std::map<int, int> counts;
  for (const auto& c : info.tasks()) counts[c.state()] = c.count();
  EXPECT_EQ(counts[weft::v1::TASK_STATE_RUNNING], 1);
  EXPECT_EQ(counts[weft::v1::TASK_STATE_SUCCEEDED], 1);
  ASSERT_EQ(info.pools_size(), 1);
  EXPECT_EQ(info.pools(0).name(), "default");
  EXPECT_EQ(info.pools(0).threads(), 2);
  EXPECT_GT(info.uptime().seconds() + info.uptime().nanos(), 0);
  // The limits in force, as the options set them.
  const weft::v1::ServerLimits& limits = info.limits();
  EXPECT_EQ(limits.max_plan_depth(), 16);
  EXPECT_EQ(limits.max_value_depth(), 16);
  EXPECT_EQ(limits.max_plan_nodes(), 10'000);
  EXPECT_EQ(limits.max_outcome_bytes(), 4'000'000);
  EXPECT_EQ(limits.max_active_runs(), 1000);
  EXPECT_EQ(limits.max_run_duration().seconds(), 600);
  EXPECT_EQ(limits.max_running_tasks(), 100);
  EXPECT_EQ(limits.task_retention().seconds(), 3600);
}

class TaskAdmissionTest : public TaskMethodsTest {
 protected:
  static weftd::ServerOptions Options() {
    weftd::ServerOptions options;
    options.tasks.max_running_tasks = 1;
    options.tasks.max_queued_tasks = 1;
    return options;
  }
  TaskAdmissionTest() : TaskMethodsTest(Options()) {}
};

TEST_F(TaskAdmissionTest, ServerInfoReportsTheLimitsTheServerWasGiven) {
  grpc::ClientContext context;
  weft::v1::ServerInfo info;
  ASSERT_TRUE(f_.orchestrator().GetServerInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.limits().max_running_tasks(), 1);
  EXPECT_EQ(info.limits().max_queued_tasks(), 1);
}

TEST_F(TaskAdmissionTest, BeyondTheQueueCreateIsResourceExhausted) {
  EXPECT_EQ(MustCreate(SleepTask("3600s")).state(),
            weft::v1::TASK_STATE_RUNNING);
  Task queued = MustCreate(SleepTask("3600s"));
  EXPECT_EQ(queued.state(), weft::v1::TASK_STATE_QUEUED);
  Task t;
  grpc::Status s = Create(SleepTask("1s"), &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("retry after 1s"));
  grpc::ClientContext context;
  weft::v1::CancelTaskRequest cancel;
  cancel.set_name(queued.name());
  Task c;
  ASSERT_TRUE(f_.orchestrator().CancelTask(&context, cancel, &c).ok());
  EXPECT_EQ(c.state(), weft::v1::TASK_STATE_CANCELLED);
}

TEST_F(TaskMethodsTest, ShutdownCancelsRunningTasksAfterTheGracePeriod) {
  // The quick one must still run when shutdown begins (sanitizer builds are
  // slow) and end well within the grace period.
  Task quick = MustCreate(SleepTask("2s"));
  Task slow = MustCreate(SleepTask("3600s"));
  weftd::ShutdownReport report;
  std::thread stopper([&] { report = f_.server().Shutdown(absl::Seconds(5)); });
  ASSERT_TRUE(f_.WaitUntilNotServing());
  Task refused;
  grpc::Status s = Create(SleepTask("1s"), &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  stopper.join();
  EXPECT_EQ(report.tasks_running, 2);
  EXPECT_EQ(report.tasks_cancelled, 1);
  auto q =
      f_.server().tasks().Get(quick.name(), tasks::TaskParts::kWithOutcome);
  auto l = f_.server().tasks().Get(slow.name(), tasks::TaskParts::kWithOutcome);
  ASSERT_TRUE(q.ok() && l.ok());
  EXPECT_EQ(q->state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(l->state(), weft::v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(l->outcome().error().message(), "server shutting down");
}

TEST_F(TaskMethodsTest, ThousandConcurrentCreatesFromSeveralThreadsAllEnd) {
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> names(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto stub = weft::v1::Orchestrator::NewStub(f_.channel());
      for (int i = 0; i < 250; ++i) {
        grpc::ClientContext context;
        Task task;
        if (stub->CreateTask(
                    &context,
                    FromJson<weft::v1::CreateTaskRequest>(SleepTask("0.01s")),
                    &task)
                .ok()) {
          names[t].push_back(task.name());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : names) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), 1000u);
  for (const std::string& name : all) {
    ASSERT_EQ(Wait(name).state(), weft::v1::TASK_STATE_SUCCEEDED) << name;
  }
}

}  // namespace
}  // namespace weft::testing
