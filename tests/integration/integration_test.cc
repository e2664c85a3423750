// The integration suite: every RPC of weft.v1.Orchestrator and grpc.health.v1
// end to end, against a running weftd at $WEFT_ADDR whose `http` handler may
// call the HTTP fixture (tests/fixture) at $WEFT_UPSTREAM (host:port).
//
// `make test` runs it against a weftd and a fixture it starts
// (run_local.py); docker compose runs it in the `integration` service against
// the `weftd` and `upstream` services. The server may be shared and live
// long: every task label and lazy value id carries this run's own prefix.

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/plan_builders.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/error_details.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"

namespace weft {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using weft::client::Call;
using weft::client::Client;
using weft::client::Id;
using weft::client::Lazy;
using weft::client::Offload;
using weft::client::Parallel;
using weft::client::Race;
using weft::client::Sequence;
using weft::client::Timeout;
using weft::testing::FromJson;
using weft::testing::IsOk;
using weft::testing::StatusIs;
using weft::testing::ToJson;
using weft::v1::NodeOutcome;

// A task's state, or UNSPECIFIED (and a failure) if the call failed.
weft::v1::TaskState StateOf(const absl::StatusOr<weft::v1::Task>& task) {
  EXPECT_THAT(task, IsOk());
  return task.ok() ? task->state() : weft::v1::TASK_STATE_UNSPECIFIED;
}

// Generous: the server may share two cores with the rest of a CI run.
constexpr absl::Duration kCall = absl::Seconds(60);

struct Env {
  std::string addr;
  std::string upstream;
  // TLS files and a token, from the weft CLI's variables.
  client::ConnectOptions connect;
  // This run's prefix for labels and lazy value ids.
  std::string run;
};

Env& TheEnv() {
  static Env env;
  return env;
}

class IntegrationTest : public ::testing::Test {
 protected:
  // main() checked that the options connect.
  IntegrationTest()
      : client_(*Client::Connect(TheEnv().addr, TheEnv().connect)) {}

  static std::string Upstream(absl::string_view path_and_query) {
    return absl::StrCat("http://", TheEnv().upstream, path_and_query);
  }
  static std::string Unique(absl::string_view what) {
    return absl::StrCat(TheEnv().run, "-", what);
  }
  static weft::v1::PlanNode Http(absl::string_view path_and_query) {
    google::protobuf::Struct args;
    (*args.mutable_fields())["url"].set_string_value(Upstream(path_and_query));
    return Call("http", args);
  }
  static weft::v1::PlanNode Sleep(absl::string_view duration,
                                  absl::string_view value_json) {
    return Call("sleep", *client::ArgsFromJson(absl::StrFormat(
                             R"({"duration": "%s", "value": %s})", duration,
                             value_json)));
  }
  static weft::v1::PlanNode Value(absl::string_view value_json) {
    return Call("value", *client::ArgsFromJson(
                             absl::StrCat(R"({"value": )", value_json, "}")));
  }

  // Runs `plan` with every node's outcome; the root's value assembled.
  NodeOutcome RunPlan(weft::v1::PlanNode plan) {
    weft::v1::RunRequest request;
    *request.mutable_plan() = std::move(plan);
    absl::StatusOr<weft::v1::RunResponse> response =
        client_->Run(request, kCall);
    EXPECT_THAT(response, IsOk());
    if (!response.ok()) return {};
    NodeOutcome root = response->outcome();
    if (root.state() == weft::v1::NODE_STATE_SUCCEEDED && !root.has_value()) {
      *root.mutable_value() = common::AssembleValue(root);
    }
    return root;
  }

  static const NodeOutcome& Child(const NodeOutcome& node,
                                  absl::string_view id) {
    for (const NodeOutcome& c : node.children()) {
      if (c.id() == id) return c;
    }
    ADD_FAILURE() << "no child " << id << " in " << ToJson(node);
    static const NodeOutcome* none = new NodeOutcome();
    return *none;
  }

  weft::v1::Task CreateTask(weft::v1::PlanNode plan,
                            absl::string_view label_value) {
    weft::v1::CreateTaskRequest request;
    *request.mutable_plan() = std::move(plan);
    (*request.mutable_labels())["run"] = std::string(label_value);
    absl::StatusOr<weft::v1::Task> task = client_->CreateTask(request, kCall);
    EXPECT_THAT(task, IsOk());
    return task.ok() ? *task : weft::v1::Task();
  }

  std::unique_ptr<Client> client_;
};

// --- Run: each node kind -------------------------------------------------

TEST_F(IntegrationTest, RunsEveryNodeKind) {
  weft::v1::CreateLazyValueRequest lazy;
  lazy.set_lazy_value_id(Unique("kinds"));
  *lazy.mutable_lazy_value()->mutable_plan() = Value(R"("cached")");
  ASSERT_THAT(client_->CreateLazyValue(lazy, kCall), IsOk());

  NodeOutcome root = RunPlan(Parallel({
      Id("call", Value("1")),
      Id("race", Race({Sleep("5s", R"("slow")"), Value(R"("fast")")})),
      Id("offload", Offload("default", Call("hash", *client::ArgsFromJson(
                                                        R"({"data": "x"})")))),
      Id("sequence", Sequence({Value("1"), Value("2")})),
      Id("lazy", Lazy(lazy.lazy_value_id())),
  }));
  ASSERT_EQ(root.state(), weft::v1::NODE_STATE_SUCCEEDED) << ToJson(root);
  const auto& fields = root.value().struct_value().fields();
  EXPECT_EQ(fields.at("call").number_value(), 1);
  EXPECT_EQ(fields.at("race").string_value(), "fast");
  EXPECT_EQ(fields.at("offload").string_value().size(), 64u)
      << "a SHA-256 in hex";
  EXPECT_EQ(ToJson(fields.at("sequence")), "[1,2]") << "every step's value";
  EXPECT_EQ(fields.at("lazy").string_value(), "cached");
  EXPECT_EQ(Child(root, "race").children(0).state(),
            weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(Child(root, "offload").kind(), weft::v1::NODE_KIND_OFFLOAD);
  EXPECT_EQ(Child(root, "lazy").kind(), weft::v1::NODE_KIND_LAZY);
  EXPECT_THAT(client_->DeleteLazyValue(
                  client::LazyValueName(lazy.lazy_value_id()), kCall),
              IsOk());
}

// The README's dashboard: three sources through the HTTP fixture, values by
// name.
TEST_F(IntegrationTest, DashboardFetchesThreeSourcesAtOnce) {
  NodeOutcome root = RunPlan(Parallel({
      Id("user", Http("/users/42")),
      Id("recentPosts", Http("/users/42/posts")),
      Id("statistics", Http("/stats/42")),
  }));
  ASSERT_EQ(root.state(), weft::v1::NODE_STATE_SUCCEEDED) << ToJson(root);
  const auto& fields = root.value().struct_value().fields();
  EXPECT_EQ(ToJson(fields.at("user").struct_value().fields().at("body")),
            R"({"id":42,"name":"Ada Lovelace"})");
  EXPECT_EQ(ToJson(fields.at("recentPosts").struct_value().fields().at("body")),
            R"([{"id":1,"title":"Notes on the Analytical Engine"},)"
            R"({"id":2,"title":"On Bernoulli numbers"}])");
  EXPECT_EQ(ToJson(fields.at("statistics").struct_value().fields().at("body")),
            R"({"followers":1843,"posts":2})");
  EXPECT_EQ(
      fields.at("user").struct_value().fields().at("status").number_value(),
      200);
}

// A failing source ends the dashboard, says which one, cancels the rest.
TEST_F(IntegrationTest, DashboardFailsFastNamingTheFailedSource) {
  NodeOutcome root = RunPlan(Parallel({
      Id("user", Http("/users/42?status=503")),
      Id("statistics", Http("/stats/42?delay=30000")),
  }));
  EXPECT_EQ(root.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(Child(root, "user").state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(Child(root, "statistics").state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_THAT(root.error().message(), HasSubstr("user"));
}

// The README's failover: the primary fails, the backup wins, the last
// resort (its own timeout) is cancelled the moment it does.
TEST_F(IntegrationTest, FailoverTakesTheFirstAnswer) {
  NodeOutcome root = RunPlan(Race({
      Id("primary", Http("/search?server=a&status=503")),
      Id("backup", Http("/search?server=b&delay=200")),
      Id("fallback",
         Timeout(absl::Seconds(2), Http("/search?server=c&delay=1500"))),
  }));
  ASSERT_EQ(root.state(), weft::v1::NODE_STATE_SUCCEEDED) << ToJson(root);
  EXPECT_EQ(root.winner(), "backup");
  EXPECT_EQ(ToJson(root.value().struct_value().fields().at("body")),
            R"({"hits":["weft","weft.v1.Orchestrator"],"server":"b"})");
  EXPECT_EQ(Child(root, "primary").state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(Child(root, "fallback").state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST_F(IntegrationTest, AnHttpCallOutsideTheAllowListIsRefused) {
  google::protobuf::Struct args;
  (*args.mutable_fields())["url"].set_string_value(
      "http://203.0.113.7:9/not-allowed");
  NodeOutcome root = RunPlan(Call("http", args));
  EXPECT_EQ(root.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(root.error().code(), "PERMISSION_DENIED");
  EXPECT_EQ(root.error().reason(), "URL_NOT_ALLOWED");
}

// --- Handlers, server info, health -----------------------------------------

TEST_F(IntegrationTest, ListsTheHandlers) {
  absl::StatusOr<weft::v1::ListHandlersResponse> response =
      client_->ListHandlers(kCall);
  ASSERT_THAT(response, IsOk());
  std::vector<std::string> names;
  for (const auto& h : response->handlers()) names.push_back(h.name());
  EXPECT_THAT(names,
              UnorderedElementsAre("fail", "hash", "http", "sleep", "value"));
}

TEST_F(IntegrationTest, ServerInfoNamesTheVersionAndPools) {
  absl::StatusOr<weft::v1::ServerInfo> info = client_->GetServerInfo(kCall);
  ASSERT_THAT(info, IsOk());
  EXPECT_FALSE(info->version().empty());
  ASSERT_GE(info->pools_size(), 1);
  EXPECT_EQ(info->pools(0).name(), "default");
}

TEST_F(IntegrationTest, HealthIsServing) {
  for (const std::string service : {"", "weft.v1.Orchestrator"}) {
    absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
        status = client_->Check(service, kCall);
    ASSERT_THAT(status, IsOk()) << service;
    EXPECT_EQ(*status, grpc::health::v1::HealthCheckResponse::SERVING)
        << service;
  }
  EXPECT_THAT(client_->Check("no.such.Service", kCall),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no.such")));
}

// --- Tasks ------------------------------------------------------------------

TEST_F(IntegrationTest, ATaskIsWatchedToItsEnd) {
  const std::string label = Unique("watch");
  weft::v1::Task task = CreateTask(
      Parallel({Id("a", Sleep("0.2s", "1")), Id("b", Sleep("0.4s", "2"))}),
      label);
  ASSERT_FALSE(task.name().empty());

  std::vector<weft::v1::TaskEvent> events;
  ASSERT_THAT(client_->WatchTask(
                  task.name(), kCall,
                  [&](const weft::v1::TaskEvent& e) { events.push_back(e); }),
              IsOk());
  ASSERT_FALSE(events.empty());
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].sequence(), events[i - 1].sequence());
  }
  const weft::v1::Task& last = events.back().task();
  EXPECT_EQ(last.state(), weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(last.progress().leaves_done(), 2);
  EXPECT_EQ(ToJson(common::AssembleValue(last.outcome())), R"({"a":1,"b":2})");

  // Ended, it answers Get and Wait at once, and can be deleted.
  weft::v1::GetTaskRequest get;
  get.set_name(task.name());
  EXPECT_EQ(StateOf(client_->GetTask(get, kCall)),
            weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(StateOf(client_->WaitTask(task.name(), absl::Seconds(30), kCall)),
            weft::v1::TASK_STATE_SUCCEEDED);
  EXPECT_THAT(client_->DeleteTask(task.name(), kCall), IsOk());
  EXPECT_THAT(client_->GetTask(get, kCall),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(task.name())));
}

TEST_F(IntegrationTest, ACancelledTaskEndsCancelled) {
  weft::v1::Task task = CreateTask(Sleep("300s", "0"), Unique("cancel"));
  absl::StatusOr<weft::v1::Task> cancelled =
      client_->CancelTask(task.name(), kCall);
  ASSERT_THAT(cancelled, IsOk());
  absl::StatusOr<weft::v1::Task> ended =
      client_->WaitTask(task.name(), absl::Seconds(30), kCall);
  ASSERT_THAT(ended, IsOk());
  EXPECT_EQ(ended->state(), weft::v1::TASK_STATE_CANCELLED);
}

// The newsletter: every send kept, failures retried, listed by label.
TEST_F(IntegrationTest, TasksAreListedByLabel) {
  const std::string label = Unique("newsletter");
  std::vector<weft::v1::PlanNode> sends;
  for (const char* to : {"ada", "grace"}) {
    weft::v1::PlanNode send =
        Id(to, Http(absl::StrCat("/send?fail_first=1&key=", label, "-", to)));
    send.mutable_retry()->set_max_attempts(3);
    send.mutable_retry()->mutable_initial_backoff()->set_nanos(50'000'000);
    sends.push_back(std::move(send));
  }
  weft::v1::Task newsletter = CreateTask(
      Parallel(std::move(sends),
               {.join = weft::v1::JOIN_ALL_SETTLED, .max_concurrency = 10}),
      label);
  weft::v1::Task other = CreateTask(Value("0"), Unique("other"));

  weft::v1::ListTasksRequest list;
  (*list.mutable_labels())["run"] = label;
  absl::StatusOr<weft::v1::ListTasksResponse> listed =
      client_->ListTasks(list, kCall);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->tasks_size(), 1);
  EXPECT_EQ(listed->tasks(0).name(), newsletter.name());

  absl::StatusOr<weft::v1::Task> ended =
      client_->WaitTask(newsletter.name(), absl::Seconds(50), kCall);
  ASSERT_THAT(ended, IsOk());
  ASSERT_EQ(ended->state(), weft::v1::TASK_STATE_SUCCEEDED) << ToJson(*ended);
  for (const NodeOutcome& send : ended->outcome().children()) {
    EXPECT_EQ(send.state(), weft::v1::NODE_STATE_SUCCEEDED) << send.id();
    EXPECT_EQ(send.attempts(), 2) << send.id() << ": the first answered 503";
  }
  EXPECT_THAT(client_->WaitTask(other.name(), absl::Seconds(30), kCall),
              IsOk());
}

// --- Lazy values -------------------------------------------------------------

TEST_F(IntegrationTest, ALazyValueIsComputedOnceForConcurrentCallers) {
  weft::v1::CreateLazyValueRequest create;
  create.set_lazy_value_id(Unique("shared"));
  *create.mutable_lazy_value()->mutable_plan() = Sleep("0.5s", R"({"n": 7})");
  absl::StatusOr<weft::v1::LazyValue> created =
      client_->CreateLazyValue(create, kCall);
  ASSERT_THAT(created, IsOk());

  constexpr int kCallers = 50;
  std::vector<std::thread> callers;
  absl::Mutex mu;
  std::vector<int64_t> generations;
  std::atomic<int> failed{0};
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      auto r = client_->ResolveLazyValue(created->name(), kCall);
      if (!r.ok() || ToJson(r->value()) != R"({"n":7})") {
        ++failed;
        return;
      }
      absl::MutexLock lock(&mu);
      generations.push_back(r->generation());
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failed.load(), 0);
  ASSERT_EQ(generations.size(), size_t{kCallers});
  for (int64_t g : generations) EXPECT_EQ(g, generations[0]);

  absl::StatusOr<weft::v1::LazyValue> got =
      client_->GetLazyValue(created->name(), kCall);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->stats().loads(), 1) << "one computation for every caller";
  EXPECT_EQ(got->stats().hits() + got->stats().misses(), kCallers);

  // Reset: the next resolve computes again.
  ASSERT_THAT(client_->ResetLazyValue(created->name(), kCall), IsOk());
  auto again = client_->ResolveLazyValue(created->name(), kCall);
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->cache_hit());
  EXPECT_GT(again->generation(), generations[0]);

  weft::v1::ListLazyValuesRequest list;
  absl::StatusOr<weft::v1::ListLazyValuesResponse> listed =
      client_->ListLazyValues(list, kCall);
  ASSERT_THAT(listed, IsOk());
  std::vector<std::string> names;
  for (const auto& v : listed->lazy_values()) names.push_back(v.name());
  EXPECT_THAT(names, ::testing::Contains(created->name()));

  EXPECT_THAT(client_->DeleteLazyValue(created->name(), kCall), IsOk());
  EXPECT_THAT(client_->GetLazyValue(created->name(), kCall),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("shared")));
}

// --- Errors with their details
// ------------------------------------------------

TEST_F(IntegrationTest, AnUnknownHandlerIsAFieldViolation) {
  weft::v1::RunRequest request;
  *request.mutable_plan() = Call("nope");
  absl::Status s = client_->Run(request, kCall).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("unknown handler")));
  EXPECT_EQ(common::Reason(s), "UNKNOWN_HANDLER");
  std::optional<google::rpc::ErrorInfo> info = common::GetErrorInfo(s);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->domain(), "weft");
  EXPECT_EQ(info->metadata().at("handler"), "nope");
  std::optional<google::rpc::BadRequest> bad = common::GetBadRequest(s);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 1);
  EXPECT_EQ(bad->field_violations(0).field(), "plan.call.handler");
}

TEST_F(IntegrationTest, AnUnknownTaskIsNotFoundWithItsResource) {
  weft::v1::GetTaskRequest get;
  get.set_name("tasks/00000000000000000000000000000000");
  absl::Status s = client_->GetTask(get, kCall).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  std::optional<google::rpc::ResourceInfo> resource =
      common::GetResourceInfo(s);
  ASSERT_TRUE(resource.has_value()) << s;
  EXPECT_EQ(resource->resource_type(), "weft.v1.Task");
  EXPECT_EQ(resource->resource_name(), get.name());
}

TEST_F(IntegrationTest, AMalformedNameIsAnInvalidField) {
  weft::v1::GetTaskRequest get;
  get.set_name("jobs/1");
  absl::Status s = client_->GetTask(get, kCall).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(common::Reason(s), "INVALID_FIELD");
  std::optional<google::rpc::BadRequest> bad = common::GetBadRequest(s);
  ASSERT_TRUE(bad.has_value()) << s;
  EXPECT_EQ(bad->field_violations(0).field(), "name");
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  weft::Env& env = weft::TheEnv();
  const char* addr = std::getenv("WEFT_ADDR");
  const char* upstream = std::getenv("WEFT_UPSTREAM");
  if (addr == nullptr || *addr == '\0' || upstream == nullptr ||
      *upstream == '\0') {
    std::cerr << "integration_test: set WEFT_ADDR (weftd, host:port) and "
                 "WEFT_UPSTREAM (the HTTP fixture, host:port, which weftd's "
                 "--http_allow allows)\n";
    return 2;
  }
  env.addr = addr;
  env.upstream = upstream;
  // As the weft CLI reads them (the compose file's weftd takes mutual TLS).
  auto from_env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value == nullptr ? "" : value);
  };
  env.connect.tls_ca = from_env("WEFT_CLIENT_TLS_CA");
  env.connect.tls_cert = from_env("WEFT_CLIENT_TLS_CERT");
  env.connect.tls_key = from_env("WEFT_CLIENT_TLS_KEY");
  env.connect.token = from_env("WEFT_TOKEN");
  if (absl::Status s =
          weft::client::Client::Connect(addr, env.connect).status();
      !s.ok()) {
    std::cerr << "integration_test: " << s << "\n";
    return 2;
  }
  absl::BitGen bits;
  env.run = absl::StrFormat("it%08x", absl::Uniform<uint32_t>(bits));
  return RUN_ALL_TESTS();
}
