// The PostgreSQL store: the TaskStore contract, and what is its own
// (reopening, the lock that keeps a second weftd away, schema versions, a
// lost connection, errors that never show a password).
//
// It needs a PostgreSQL server: WEFT_TEST_POSTGRES (a conninfo) or libpq's
// PG* variables, as pg_virtualenv (Debian's postgresql-common) sets them
// for a throwaway cluster; ctest runs it that way. Each store gets a schema
// of its own in that database.

#include "server/store/postgres_task_store.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/sync.h"
#include "server/store/postgres.h"
#include "tests/store/task_store_contract.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::weft::testing::IsOk;
using ::weft::testing::IsOkAndHolds;
using ::weft::testing::StatusIs;

// The server's conninfo ("": libpq's PG* variables).
std::string ServerConninfo() {
  const char* env = std::getenv("WEFT_TEST_POSTGRES");
  return env == nullptr ? "" : env;
}

// A connection for the test's own statements.
std::unique_ptr<pg::Connection> Admin() {
  absl::StatusOr<std::unique_ptr<pg::Connection>> c =
      pg::Connection::Open(ServerConninfo());
  EXPECT_THAT(c.status(), IsOk())
      << "set WEFT_TEST_POSTGRES, or run under pg_virtualenv";
  return c.ok() ? *std::move(c) : nullptr;
}

// A new, empty schema, and the conninfo of a store whose tables go there.
std::string NewSchemaConninfo() {
  static std::atomic<int> next{0};
  const std::string schema = absl::StrCat("weft_test_", getpid(), "_", ++next);
  std::unique_ptr<pg::Connection> admin = Admin();
  if (admin == nullptr) return "";
  EXPECT_THAT(admin->Exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema,
                                       " CASCADE; CREATE SCHEMA ", schema)),
              IsOk());
  const std::string base = ServerConninfo();
  return absl::StrCat(base, base.empty() ? "" : " ",
                      "options='-csearch_path=", schema, "'");
}

// How many sessions weftd's stores hold on the server.
int WeftdSessions(pg::Connection& admin) {
  absl::StatusOr<pg::Result> r = admin.Query(
      "SELECT count(*)::integer FROM pg_stat_activity "
      "WHERE application_name = 'weftd'");
  return r.ok() ? static_cast<int>(r->Int(0, 0)) : -1;
}

// The server ends every session of weftd's stores (as a restart or a
// failover does).
void TerminateWeftdSessions() {
  std::unique_ptr<pg::Connection> admin = Admin();
  ASSERT_NE(admin, nullptr);
  ASSERT_THAT(admin->Exec("SELECT pg_terminate_backend(pid) "
                          "FROM pg_stat_activity WHERE application_name = "
                          "'weftd' AND pid <> pg_backend_pid()"),
              IsOk());
}

std::unique_ptr<TaskStore> NewPostgresStore() {
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
      PostgresTaskStore::Open(NewSchemaConninfo());
  EXPECT_THAT(store.status(), IsOk());
  return store.ok() ? *std::move(store) : nullptr;
}

// A replica (reads from the database) named `id` on the tables of
// `conninfo`.
absl::StatusOr<std::unique_ptr<PostgresTaskStore>> OpenReplica(
    const std::string& conninfo, const std::string& id,
    absl::Duration lease = absl::Seconds(60),
    std::function<void()> on_lease_lost = nullptr) {
  PostgresOptions options;
  options.replicas = true;
  options.replica_id = id;
  options.lease_duration = lease;
  options.pool_size = 2;
  options.on_lease_lost = std::move(on_lease_lost);
  return PostgresTaskStore::Open(conninfo, options);
}

std::unique_ptr<TaskStore> NewPostgresReplica() {
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
      OpenReplica(NewSchemaConninfo(), "replica-1");
  EXPECT_THAT(store.status(), IsOk());
  return store.ok() ? *std::move(store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(
    Postgres, TaskStoreContractTest,
    ::testing::Values(TaskStoreFactory{"Postgres", NewPostgresStore},
                      TaskStoreFactory{"PostgresReplica", NewPostgresReplica}),
    [](const auto& info) { return info.param.name; });

std::shared_ptr<const weft::v1::Task> MakeTask(const std::string& name,
                                               weft::v1::TaskState state) {
  auto task = std::make_shared<weft::v1::Task>();
  task->set_name(name);
  task->set_state(state);
  task->set_creator("alice");
  task->set_request_id("r-" + name);
  return task;
}

// Waits for a write's `done`; its status. (weft::testing::Notification:
// ThreadSanitizer sees its order, which Debian's uninstrumented Abseil hides.)
class Waiter {
 public:
  TaskStore::WriteDone Done() {
    return [this](absl::Status s) {
      status_ = std::move(s);
      done_.Notify();
    };
  }
  absl::Status Wait() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return status_;
  }

 private:
  weft::testing::Notification done_;
  absl::Status status_;
};

absl::Status WriteNow(TaskStore& store,
                      std::shared_ptr<const weft::v1::Task> task) {
  Waiter w;
  store.Write(std::move(task), w.Done());
  return w.Wait();
}

TEST(PostgresTaskStoreTest, ReopenedItHasTheTasksJournalsAndLazyValues) {
  const std::string conninfo = NewSchemaConninfo();
  {
    absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
        PostgresTaskStore::Open(conninfo);
    ASSERT_THAT(store.status(), IsOk());
    ASSERT_THAT(
        WriteNow(**store, MakeTask("tasks/a", weft::v1::TASK_STATE_SUCCEEDED)),
        IsOk());
    ASSERT_THAT(
        WriteNow(**store, MakeTask("tasks/b", weft::v1::TASK_STATE_RUNNING)),
        IsOk());
    auto ended = std::make_shared<weft::v1::NodeOutcome>();
    ended->set_id("leaf");
    Waiter j1, j2, l1, l2;
    (*store)->Journal("tasks/b", 3, ended, j1.Done());
    (*store)->Journal("tasks/b", 4, nullptr, j2.Done());
    // Bytes, not text: a NUL survives.
    (*store)->PutLazyValue("stats", std::string("request-bytes\x01\x00x", 16),
                           l1.Done());
    (*store)->PutLazyValue("other", "r2", l2.Done());
    ASSERT_THAT(j1.Wait(), IsOk());
    ASSERT_THAT(j2.Wait(), IsOk());
    ASSERT_THAT(l1.Wait(), IsOk());
    ASSERT_THAT(l2.Wait(), IsOk());
  }
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(store.status(), IsOk());
  EXPECT_EQ((*store)->size(), 2u);
  ASSERT_NE((*store)->Get("tasks/b"), nullptr);
  EXPECT_EQ((*store)->Get("tasks/b")->creator(), "alice");
  EXPECT_EQ((*store)->Get("tasks/b")->request_id(), "r-tasks/b");
  // Newest first, as they were written.
  std::vector<std::string> names;
  (*store)->Scan(0, [&](uint64_t, const weft::v1::Task& t) {
    names.push_back(t.name());
    return true;
  });
  EXPECT_THAT(names, ::testing::ElementsAre("tasks/b", "tasks/a"));
  NodeJournal journal = (*store)->TakeJournal("tasks/b");
  ASSERT_EQ(journal.ended.size(), 1u);
  EXPECT_EQ(journal.ended[3].id(), "leaf");
  EXPECT_TRUE(journal.started.contains(4));
  EXPECT_TRUE((*store)->TakeJournal("tasks/b").ended.empty());  // Once.
  const auto lazies = (*store)->LazyValues();
  ASSERT_EQ(lazies.size(), 2u);
  EXPECT_EQ(lazies[0].first, "stats");
  EXPECT_EQ(lazies[0].second, std::string("request-bytes\x01\x00x", 16));
  EXPECT_EQ(lazies[1].first, "other");
}

TEST(PostgresTaskStoreTest, ASecondWeftdOnTheSameTablesIsRefused) {
  const std::string conninfo = NewSchemaConninfo();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> first =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(first.status(), IsOk());
  PostgresOptions no_wait;
  no_wait.lock_wait = absl::ZeroDuration();
  EXPECT_THAT(PostgresTaskStore::Open(conninfo, no_wait).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is in use by another weftd")));
  // Another schema of the same database is another store.
  EXPECT_THAT(PostgresTaskStore::Open(NewSchemaConninfo(), no_wait).status(),
              IsOk());
  first->reset();
  EXPECT_THAT(PostgresTaskStore::Open(conninfo, no_wait).status(), IsOk());
}

TEST(PostgresTaskStoreTest, OpenWaitsForTheLockOfAWeftdThatIsGoing) {
  const std::string conninfo = NewSchemaConninfo();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> first =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(first.status(), IsOk());
  // The first goes once the second has connected and so is waiting for
  // the lock (as a restarted weftd finds its crashed predecessor's session
  // still there).
  std::thread going([&] {
    std::unique_ptr<pg::Connection> admin = Admin();
    EXPECT_TRUE(weft::testing::WaitFor(
        [&] { return admin != nullptr && WeftdSessions(*admin) >= 2; },
        absl::Seconds(60)));
    first->reset();
  });
  PostgresOptions patient;
  patient.lock_wait = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> second =
      PostgresTaskStore::Open(conninfo, patient);
  going.join();
  EXPECT_THAT(second.status(), IsOk());
}

TEST(PostgresTaskStoreTest, ANewerSchemaIsRefused) {
  const std::string conninfo = NewSchemaConninfo();
  ASSERT_THAT(PostgresTaskStore::Open(conninfo).status(), IsOk());
  absl::StatusOr<std::unique_ptr<pg::Connection>> c =
      pg::Connection::Open(conninfo);
  ASSERT_THAT(c.status(), IsOk());
  ASSERT_THAT((*c)->Exec("UPDATE weft_meta SET value = '99' "
                         "WHERE key = 'schema_version'"),
              IsOk());
  EXPECT_THAT(PostgresTaskStore::Open(conninfo).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat(
                           "written by a newer weftd (schema version 99; this "
                           "weftd knows versions up to ",
                           PostgresTaskStore::kSchemaVersion, ")"))));
}

TEST(PostgresTaskStoreTest,
     AnUnreachableServerIsUnavailableAndNoPasswordShows) {
  absl::Status s =
      PostgresTaskStore::Open(
          "postgresql://weft:sekret-pw@127.0.0.1:1/weft?connect_timeout=5")
          .status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          HasSubstr("cannot connect to PostgreSQL at "
                                    "postgresql://weft:***@127.0.0.1:1/weft")));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sekret")));
}

TEST(PostgresTaskStoreTest, WritesAfterALostConnectionReconnect) {
  const std::string conninfo = NewSchemaConninfo();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(store.status(), IsOk());
  ASSERT_THAT(
      WriteNow(**store, MakeTask("tasks/a", weft::v1::TASK_STATE_RUNNING)),
      IsOk());
  // The server ends the store's session (as a restart or a failover does).
  TerminateWeftdSessions();
  // The write in flight when it went fails, saying so, and changes nothing;
  // the next one reconnects.
  absl::Status lost =
      WriteNow(**store, MakeTask("tasks/b", weft::v1::TASK_STATE_RUNNING));
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  EXPECT_EQ((*store)->Get("tasks/b"), nullptr);
  ASSERT_THAT(
      WriteNow(**store, MakeTask("tasks/b", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
  store->reset();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> reopened =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(reopened.status(), IsOk());
  ASSERT_NE((*reopened)->Get("tasks/b"), nullptr);
  EXPECT_EQ((*reopened)->Get("tasks/b")->state(),
            weft::v1::TASK_STATE_SUCCEEDED);
}

TEST(PostgresTaskStoreTest, AfterALostConnectionNoWriteGoesWithoutTheLock) {
  const std::string conninfo = NewSchemaConninfo();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> first =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(first.status(), IsOk());
  TerminateWeftdSessions();
  // Another weftd takes the store while the first is cut off.
  PostgresOptions patient;
  patient.lock_wait = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> second =
      PostgresTaskStore::Open(conninfo, patient);
  ASSERT_THAT(second.status(), IsOk());
  // The first's writes fail (twice: the lost session, then the lock it
  // cannot take back) and land nowhere.
  for (int i = 0; i < 2; ++i) {
    absl::Status s = WriteNow(
        **first, MakeTask("tasks/stale", weft::v1::TASK_STATE_RUNNING));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  ASSERT_THAT(
      WriteNow(**second, MakeTask("tasks/fresh", weft::v1::TASK_STATE_RUNNING)),
      IsOk());
  first->reset();
  second->reset();
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> reopened =
      PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(reopened.status(), IsOk());
  EXPECT_EQ((*reopened)->Get("tasks/stale"), nullptr);
  EXPECT_NE((*reopened)->Get("tasks/fresh"), nullptr);
}

TEST(PostgresTaskStoreTest, WritesWaitingTogetherShareATransaction) {
  absl::StatusOr<std::unique_ptr<PostgresTaskStore>> store =
      PostgresTaskStore::Open(NewSchemaConninfo());
  ASSERT_THAT(store.status(), IsOk());
  constexpr int kWrites = 200;
  std::vector<std::unique_ptr<Waiter>> waiters;
  for (int i = 0; i < kWrites; ++i) {
    waiters.push_back(std::make_unique<Waiter>());
    (*store)->Write(
        MakeTask(absl::StrCat("tasks/", i), weft::v1::TASK_STATE_QUEUED),
        waiters.back()->Done());
  }
  for (auto& w : waiters) EXPECT_THAT(w->Wait(), IsOk());
  EXPECT_EQ((*store)->size(), static_cast<size_t>(kWrites));
  EXPECT_LT((*store)->commits(), kWrites);
}

TEST(PostgresTest, ConninfoShowsNoPassword) {
  EXPECT_EQ(pg::RedactConninfo("postgres://u:pw@db.example:5432/weft"),
            "postgres://u:***@db.example:5432/weft");
  EXPECT_EQ(pg::RedactConninfo("postgresql://u@db/weft?password=pw&sslmode=x"),
            "postgresql://u@db/weft?password=***&sslmode=x");
  EXPECT_EQ(pg::RedactConninfo("postgres://db/weft"), "postgres://db/weft");
  EXPECT_EQ(pg::RedactConninfo("host=db password=pw user=u"),
            "host=db password=*** user=u");
  EXPECT_EQ(pg::RedactConninfo("host=db password = 'p w\\'x' user=u"),
            "host=db password = *** user=u");
  // Passwords holding the URI's own separators, or escapes.
  EXPECT_EQ(pg::RedactConninfo("postgres://u:p@ss@db/weft"),
            "postgres://u:***@db/weft");
  EXPECT_EQ(pg::RedactConninfo("postgres://u:pa/ss@db/weft"),
            "postgres://u:***@db/weft");
  EXPECT_EQ(pg::RedactConninfo("postgres://u:p%40ss:x@db:5432/weft?a=b"),
            "postgres://u:***@db:5432/weft?a=b");
  EXPECT_EQ(pg::RedactConninfo("postgress://u:pw@db/weft"),
            "postgress://u:***@db/weft");
  EXPECT_EQ(pg::RedactConninfo("options='-c x=a://b' password=pw"),
            "options='-c x=a://b' password=***");
  EXPECT_EQ(pg::RedactConninfo("password=a\\ b\tuser=u"),
            "password=***\tuser=u");
  EXPECT_EQ(pg::RedactConninfo("passfile=/p host=db"), "passfile=/p host=db");
}

TEST(PostgresTest, LibpqsOwnMessagesLoseThePasswordToo) {
  // A message quoting the whole conninfo, or the password as libpq decoded
  // it, or a quoted one without its quotes.
  EXPECT_EQ(pg::RedactMessage("postgress://u:sekret@db/weft",
                              "database \"postgress://u:sekret@db/weft\" "
                              "does not exist"),
            "database \"postgress://u:***@db/weft\" does not exist");
  EXPECT_EQ(pg::RedactMessage("postgres://u:se%41cret@db/weft",
                              "bad password seAcret, or se%41cret"),
            "bad password ***, or ***");
  EXPECT_EQ(pg::RedactMessage("password='a b' host=x", "got a b"), "got ***");
}

TEST(PostgresTaskStoreTest, AConninfoLibpqRejectsShowsNoPassword) {
  // libpq quotes a token it cannot percent-decode, and takes a URI of an
  // unknown scheme for a database name, which the server then quotes.
  for (const std::string& conninfo :
       {std::string("postgresql://u:pw%zzsekret@127.0.0.1:1/db"),
        absl::StrCat("postgress://u:sekret@db/weft")}) {
    absl::Status s = PostgresTaskStore::Open(conninfo).status();
    EXPECT_FALSE(s.ok()) << conninfo;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sekret"))) << s;
  }
}

TEST(PostgresTaskStoreTest, ASearchPathWithNoSchemaIsRefusedSayingSo) {
  const std::string base = ServerConninfo();
  absl::Status s =
      PostgresTaskStore::Open(
          absl::StrCat(base, base.empty() ? "" : " ",
                       "options='-csearch_path=no_such_schema_here'"))
          .status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("has no schema to keep its tables in")));
}

TEST(PostgresTest, SqlStatesMapToCodesACallerCanActOn) {
  EXPECT_EQ(pg::FromSqlState("23505", "dup").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(pg::FromSqlState("08006", "lost").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(pg::FromSqlState("57P01", "admin shutdown").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(pg::FromSqlState("25006", "read-only transaction").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(pg::FromSqlState("57014", "statement timeout").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(pg::FromSqlState("53100", "disk full").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pg::FromSqlState("40001", "serialization").code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(pg::FromSqlState("28P01", "password").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(pg::FromSqlState("42P01", "no table").code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace weft::store

namespace weft::store {
namespace {

std::vector<std::string> Names(const TaskStore& store) {
  std::vector<std::string> names;
  store.Scan(0, [&](uint64_t, const weft::v1::Task& t) {
    names.push_back(t.name());
    return true;
  });
  return names;
}

std::vector<std::string> Names(
    const std::vector<PostgresTaskStore::Adopted>& adopted) {
  std::vector<std::string> names;
  for (const auto& a : adopted) names.push_back(a.task->name());
  return names;
}

TEST(PostgresReplicasTest, EachReplicaReadsEveryReplicasTasks) {
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  EXPECT_NE((*a)->generation(), (*b)->generation());
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_QUEUED)),
              IsOk());
  ASSERT_THAT(WriteNow(**b, MakeTask("tasks/2", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  ASSERT_NE((*a)->Get("tasks/2"), nullptr);
  EXPECT_EQ((*a)->Get("tasks/2")->state(), weft::v1::TASK_STATE_RUNNING);
  ASSERT_NE((*b)->Get("tasks/1"), nullptr);
  EXPECT_EQ((*b)->Get("nope"), nullptr);
  EXPECT_THAT(Names(**a), ::testing::ElementsAre("tasks/2", "tasks/1"));
  EXPECT_EQ((*b)->size(), 2u);
  // A scan resumed from a position goes on below it, across pages.
  for (int i = 3; i < 150; ++i) {
    ASSERT_THAT(WriteNow(**b, MakeTask(absl::StrCat("tasks/", i),
                                       weft::v1::TASK_STATE_SUCCEEDED)),
                IsOk());
  }
  std::vector<std::string> seen;
  uint64_t last = 0;
  (*a)->Scan(0, [&](uint64_t position, const weft::v1::Task& t) {
    seen.push_back(t.name());
    last = position;
    return seen.size() < 100;
  });
  (*a)->Scan(last, [&](uint64_t, const weft::v1::Task& t) {
    seen.push_back(t.name());
    return true;
  });
  ASSERT_EQ(seen.size(), 149u);
  EXPECT_EQ(seen.front(), "tasks/149");
  EXPECT_EQ(seen.back(), "tasks/1");
}

// The end of replica `id`'s lease, in microseconds since the epoch.
int64_t LeaseEnd(const std::string& conninfo, const std::string& id) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> c =
      pg::Connection::Open(conninfo);
  if (!c.ok()) return -1;
  absl::StatusOr<pg::Result> r = (*c)->Query(
      "SELECT (extract(epoch FROM lease_until) * 1000000)::bigint "
      "FROM weft_replicas WHERE id = $1",
      {pg::Param::Text(id)});
  return r.ok() && r->rows() == 1 ? r->Int(0, 0) : -1;
}

TEST(PostgresReplicasTest, AReplicaRenewsItsLeaseAndKnowsWhenItEnds) {
  const std::string conninfo = NewSchemaConninfo();
  weft::testing::Notification lost;
  auto a =
      OpenReplica(conninfo, "a", absl::Seconds(3), [&lost] { lost.Notify(); });
  ASSERT_THAT(a.status(), IsOk());
  const int64_t first = LeaseEnd(conninfo, "a");
  ASSERT_GT(first, 0);
  // Renewed: its end moves on, twice.
  int64_t later = first;
  ASSERT_TRUE(weft::testing::WaitFor(
      [&] { return (later = LeaseEnd(conninfo, "a")) > first; }));
  ASSERT_TRUE(
      weft::testing::WaitFor([&] { return LeaseEnd(conninfo, "a") > later; }));
  EXPECT_TRUE((*a)->holds_lease());
  EXPECT_THAT((*a)->MayStartWork(), IsOk());
  EXPECT_FALSE(lost.HasBeenNotified());
  // Not renewed, it knows by its own clock once the lease has run out,
  // without writing anything.
  (*a)->StopRenewingForTesting();
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_FALSE((*a)->holds_lease());
  // From then on it starts no leaf, and writes nothing, whatever the
  // database's clock says yet.
  EXPECT_EQ((*a)->MayStartWork().code(), absl::StatusCode::kUnavailable);
  auto task = std::make_shared<weft::v1::Task>();
  task->set_name("tasks/late");
  task->set_state(weft::v1::TASK_STATE_QUEUED);
  absl::Status late = WriteNow(**a, task);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_THAT(std::string(late.message()), HasSubstr("lost its lease"));
}

TEST(PostgresReplicasTest, ARequestIdNamesOneTaskOfItsPrincipalAcrossReplicas) {
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  auto first = std::make_shared<weft::v1::Task>();
  first->set_name("tasks/first");
  first->set_state(weft::v1::TASK_STATE_QUEUED);
  first->set_creator("alice");
  first->set_request_id("report-1");
  ASSERT_THAT(WriteNow(**a, first), IsOk());
  // The same principal's request_id on another replica: refused alone;
  // a write beside it in the same queue still lands.
  auto again = std::make_shared<weft::v1::Task>(*first);
  again->set_name("tasks/again");
  auto other = std::make_shared<weft::v1::Task>(*first);
  other->set_name("tasks/bobs");
  other->set_creator("bob");
  Waiter w1, w2;
  (*b)->Write(again, w1.Done());
  (*b)->Write(other, w2.Done());
  EXPECT_THAT(w1.Wait(), StatusIs(absl::StatusCode::kAlreadyExists,
                                  HasSubstr("request_id \"report-1\" of "
                                            "\"alice\" names another task")));
  EXPECT_THAT(w2.Wait(), IsOk());
  EXPECT_EQ((*a)->Get("tasks/again"), nullptr);
  EXPECT_NE((*a)->Get("tasks/bobs"), nullptr);
  // Once the first is erased, the request_id is free again.
  Waiter erased;
  (*a)->Erase("tasks/first", erased.Done());
  ASSERT_THAT(erased.Wait(), IsOk());
  EXPECT_THAT(WriteNow(**b, again), IsOk());
}

TEST(PostgresReplicasTest, AReplicaDoesNotReplaceAnothersTask) {
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  EXPECT_THAT(
      WriteNow(**b, MakeTask("tasks/1", weft::v1::TASK_STATE_SUCCEEDED)),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("tasks/1 belongs to replica \"a\"")));
  // Nor erases it while it runs; a finished one any replica may.
  Waiter running;
  (*b)->Erase("tasks/1", running.Done());
  ASSERT_THAT(running.Wait(), IsOk());
  EXPECT_NE((*a)->Get("tasks/1"), nullptr);
  ASSERT_THAT(
      WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
  Waiter finished;
  (*b)->Erase("tasks/1", finished.Done());
  ASSERT_THAT(finished.Wait(), IsOk());
  EXPECT_EQ((*a)->Get("tasks/1"), nullptr);
}

TEST(PostgresReplicasTest, ANameInUseIsRefusedAndAnEndedOneTakenOver) {
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  ASSERT_THAT(a.status(), IsOk());
  PostgresOptions options;
  options.replicas = true;
  options.replica_id = "a";
  options.lock_wait = absl::Milliseconds(300);
  EXPECT_THAT(PostgresTaskStore::Open(conninfo, options).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("has a running replica named \"a\"")));
  // Restarted under its name, a replica takes its tasks and their journals
  // back at once, in a new generation.
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  Waiter j;
  (*a)->Journal("tasks/1", 2, nullptr, j.Done());
  ASSERT_THAT(j.Wait(), IsOk());
  const int64_t first_generation = (*a)->generation();
  a->reset();
  auto again = PostgresTaskStore::Open(conninfo, options);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_GT((*again)->generation(), first_generation);
  EXPECT_TRUE((*again)->TakeJournal("tasks/1").started.contains(2));
  EXPECT_THAT(
      WriteNow(**again, MakeTask("tasks/1", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
}

TEST(PostgresReplicasTest, APausedReplicaIsFencedAndAnotherAdoptsItsTasks) {
  const std::string conninfo = NewSchemaConninfo();
  weft::testing::Notification lost;
  auto a =
      OpenReplica(conninfo, "a", absl::Seconds(3), [&lost] { lost.Notify(); });
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  ASSERT_THAT(
      WriteNow(**a, MakeTask("tasks/run", weft::v1::TASK_STATE_RUNNING)),
      IsOk());
  ASSERT_THAT(
      WriteNow(**a, MakeTask("tasks/done", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
  auto leaf = std::make_shared<weft::v1::NodeOutcome>();
  leaf->set_id("fetch");
  Waiter j1, j2;
  (*a)->Journal("tasks/run", 3, leaf, j1.Done());
  (*a)->Journal("tasks/run", 4, nullptr, j2.Done());
  ASSERT_THAT(j1.Wait(), IsOk());
  ASSERT_THAT(j2.Wait(), IsOk());
  // While a's lease runs there is nothing to adopt.
  absl::StatusOr<std::vector<PostgresTaskStore::Adopted>> adopted =
      (*b)->AdoptExpired();
  ASSERT_THAT(adopted.status(), IsOk());
  EXPECT_TRUE(adopted->empty());
  // a stops renewing (a paused process): once its lease ends, b takes its
  // tasks, oldest first, the running one with its journal.
  (*a)->StopRenewingForTesting();
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    adopted = (*b)->AdoptExpired();
    return !adopted.ok() || !adopted->empty();
  }));
  ASSERT_THAT(adopted.status(), IsOk());
  EXPECT_THAT(Names(*adopted),
              ::testing::ElementsAre("tasks/run", "tasks/done"));
  const NodeJournal& journal = (*adopted)[0].journal;
  ASSERT_EQ(journal.ended.size(), 1u);
  EXPECT_EQ(journal.ended.at(3).id(), "fetch");
  EXPECT_TRUE(journal.started.contains(4));
  EXPECT_TRUE((*adopted)[1].journal.ended.empty());
  // a, back, writes nothing more: it learns it lost its lease.
  EXPECT_THAT(WriteNow(**a, MakeTask("tasks/run", weft::v1::TASK_STATE_FAILED)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("replica \"a\" (generation ")));
  EXPECT_TRUE(lost.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_FALSE((*a)->holds_lease());
  EXPECT_EQ((*b)->Get("tasks/run")->state(), weft::v1::TASK_STATE_RUNNING);
  // b owns them now.
  EXPECT_THAT(
      WriteNow(**b, MakeTask("tasks/run", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
  EXPECT_THAT((*a)->AdoptExpired().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("lost its lease")));
}

// Runs AdoptExpired on `b` and `c` at once; the names each took, together
// and sorted.
std::vector<std::string> AdoptConcurrently(PostgresTaskStore& b,
                                           PostgresTaskStore& c) {
  absl::StatusOr<std::vector<PostgresTaskStore::Adopted>> by_b, by_c;
  std::thread tb([&] { by_b = b.AdoptExpired(); });
  std::thread tc([&] { by_c = c.AdoptExpired(); });
  tb.join();
  tc.join();
  EXPECT_THAT(by_b.status(), IsOk());
  EXPECT_THAT(by_c.status(), IsOk());
  std::vector<std::string> all;
  if (by_b.ok()) all = Names(*by_b);
  if (by_c.ok()) {
    for (const std::string& name : Names(*by_c)) all.push_back(name);
  }
  std::sort(all.begin(), all.end());
  return all;
}

void ExpectEachTakenOnce(std::vector<std::string> sorted, size_t tasks) {
  EXPECT_EQ(sorted.size(), tasks);
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

TEST(PostgresReplicasTest, OfTwoAdoptersAtOnceEachTaskGoesToOne) {
  const std::string conninfo = NewSchemaConninfo();
  {
    // A long lease, ended at once by a clean close.
    auto a = OpenReplica(conninfo, "a");
    ASSERT_THAT(a.status(), IsOk());
    for (int i = 0; i < 40; ++i) {
      ASSERT_THAT(WriteNow(**a, MakeTask(absl::StrCat("tasks/", i),
                                         weft::v1::TASK_STATE_RUNNING)),
                  IsOk());
    }
  }
  auto b = OpenReplica(conninfo, "b");
  auto c = OpenReplica(conninfo, "c");
  ASSERT_THAT(b.status(), IsOk());
  ASSERT_THAT(c.status(), IsOk());
  ExpectEachTakenOnce(AdoptConcurrently(**b, **c), 40);
  // And nothing is left for a third try.
  absl::StatusOr<std::vector<PostgresTaskStore::Adopted>> again =
      (*b)->AdoptExpired();
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_TRUE(again->empty());
}

TEST(PostgresReplicasTest, TheTasksOfAWeftdThatRanAloneGoToOneAdopter) {
  const std::string conninfo = NewSchemaConninfo();
  {
    auto alone = PostgresTaskStore::Open(conninfo);
    ASSERT_THAT(alone.status(), IsOk());
    for (int i = 0; i < 40; ++i) {
      ASSERT_THAT(WriteNow(**alone, MakeTask(absl::StrCat("tasks/", i),
                                             weft::v1::TASK_STATE_RUNNING)),
                  IsOk());
    }
  }
  auto b = OpenReplica(conninfo, "b");
  auto c = OpenReplica(conninfo, "c");
  ASSERT_THAT(b.status(), IsOk());
  ASSERT_THAT(c.status(), IsOk());
  ExpectEachTakenOnce(AdoptConcurrently(**b, **c), 40);
}

// What a subscriber heard.
class Heard {
 public:
  std::function<void(const TaskStore::Notice&)> Fn() {
    return [this](const TaskStore::Notice& notice) {
      engine::MutexLock lock(&mu_);
      notices_.push_back(notice);
    };
  }
  int Count(TaskStore::Notice::Kind kind, const std::string& name = "") const {
    engine::MutexLock lock(&mu_);
    return static_cast<int>(std::count_if(
        notices_.begin(), notices_.end(),
        [&](const auto& n) { return n.kind == kind && n.name == name; }));
  }
  bool WaitFor(TaskStore::Notice::Kind kind, const std::string& name = "",
               int times = 1) const {
    return weft::testing::WaitFor([&] { return Count(kind, name) >= times; });
  }

 private:
  mutable engine::Mutex mu_;
  std::vector<TaskStore::Notice> notices_ ABSL_GUARDED_BY(mu_);
};

TEST(PostgresReplicasTest, ReplicasHearOfWritesAndCancelRequests) {
  using Kind = TaskStore::Notice::Kind;
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  Heard by_a, by_b;
  std::unique_ptr<TaskStore::Subscription> sa = (*a)->Listen(by_a.Fn());
  std::unique_ptr<TaskStore::Subscription> sb = (*b)->Listen(by_b.Fn());
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);

  // b hears of a's write (and a of its own).
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  EXPECT_TRUE(by_b.WaitFor(Kind::kChanged, "tasks/1"));
  EXPECT_TRUE(by_a.WaitFor(Kind::kChanged, "tasks/1"));

  // b asks for its cancel: a hears it, and finds it among its requests.
  EXPECT_THAT((*b)->RequestCancel("tasks/1"), IsOk());
  EXPECT_TRUE(by_a.WaitFor(Kind::kCancel, "tasks/1"));
  EXPECT_THAT((*a)->CancelRequests(), ElementsAre("tasks/1"));
  EXPECT_THAT((*b)->CancelRequests(), IsEmpty());
  // A rewrite by its owner keeps the request.
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  EXPECT_THAT((*a)->CancelRequests(), ElementsAre("tasks/1"));

  // Once it ended there is nothing to cancel.
  ASSERT_THAT(
      WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_CANCELLED)),
      IsOk());
  EXPECT_THAT((*a)->CancelRequests(), IsEmpty());
  EXPECT_THAT((*b)->RequestCancel("tasks/1"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no unfinished task is named tasks/1")));
  EXPECT_THAT((*b)->RequestCancel("tasks/never"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("tasks/never")));

  // An erase is heard too.
  Waiter erased;
  (*b)->Erase("tasks/1", erased.Done());
  ASSERT_THAT(erased.Wait(), IsOk());
  EXPECT_TRUE(by_a.WaitFor(Kind::kChanged, "tasks/1", 4));

  // A store alone has nobody to hear.
  auto alone = PostgresTaskStore::Open(NewSchemaConninfo());
  ASSERT_THAT(alone.status(), IsOk());
  EXPECT_EQ((*alone)->Listen(by_a.Fn()), nullptr);
}

TEST(PostgresReplicasTest, LazyValuesAndTheirResetsAreSharedAndHeard) {
  using Kind = TaskStore::Notice::Kind;
  using Row = TaskStore::LazyRow;
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  // Two subscribers of one store both hear.
  Heard by_b, also_by_b;
  std::unique_ptr<TaskStore::Subscription> s1 = (*b)->Listen(by_b.Fn());
  std::unique_ptr<TaskStore::Subscription> s2 = (*b)->Listen(also_by_b.Fn());
  ASSERT_NE(s1, nullptr);
  ASSERT_NE(s2, nullptr);
  auto write = [](auto fn) {
    Waiter w;
    fn(w.Done());
    return w.Wait();
  };
  // A reset, and the count of resets it answered.
  auto reset = [](TaskStore& store, const std::string& id) {
    weft::testing::Notification done;
    absl::StatusOr<int64_t> count;
    store.ResetLazyValue(id, [&](absl::StatusOr<int64_t> c) {
      count = std::move(c);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
    return count;
  };

  EXPECT_THAT((*b)->ReadLazyValue("rates"), IsOkAndHolds(Row{}));
  ASSERT_THAT(write([&](auto done) {
                (*a)->PutLazyValue("rates", "definition", std::move(done));
              }),
              IsOk());
  EXPECT_TRUE(by_b.WaitFor(Kind::kLazy, "rates"));
  EXPECT_TRUE(also_by_b.WaitFor(Kind::kLazy, "rates"));
  EXPECT_THAT((*b)->ReadLazyValue("rates"),
              IsOkAndHolds(Row{.request = "definition", .resets = 0}));
  // Another replica's definition of the id stays; the same one again is
  // no conflict.
  EXPECT_THAT(write([&](auto done) {
                (*b)->PutLazyValue("rates", "another", std::move(done));
              }),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("lazyValues/rates was just declared with "
                                 "another definition on another replica")));
  EXPECT_THAT(write([&](auto done) {
                (*b)->PutLazyValue("rates", "definition", std::move(done));
              }),
              IsOk());
  EXPECT_THAT((*a)->ReadLazyValue("rates"),
              IsOkAndHolds(Row{.request = "definition", .resets = 0}));

  // Resets are counted, for a value made through the API and for one of
  // the config file (no definition stored).
  EXPECT_THAT(reset(**a, "rates"), IsOkAndHolds(1));
  EXPECT_THAT(reset(**b, "rates"), IsOkAndHolds(2));
  EXPECT_THAT(reset(**b, "configured"), IsOkAndHolds(1));
  EXPECT_TRUE(by_b.WaitFor(Kind::kLazy, "rates", 2));
  EXPECT_THAT((*b)->ReadLazyValue("rates"),
              IsOkAndHolds(Row{.request = "definition", .resets = 2}));
  EXPECT_THAT((*a)->ReadLazyValues(),
              IsOkAndHolds(ElementsAre(
                  Pair("configured", Row{.request = "", .resets = 1}),
                  Pair("rates", Row{.request = "definition", .resets = 2}))));

  // A delete drops the definition and the resets.
  ASSERT_THAT(
      write([&](auto done) { (*b)->EraseLazyValue("rates", std::move(done)); }),
      IsOk());
  EXPECT_THAT((*a)->ReadLazyValue("rates"), IsOkAndHolds(Row{}));
  EXPECT_THAT((*a)->ReadLazyValues(),
              IsOkAndHolds(ElementsAre(Pair("configured", Row{"", 1}))));

  // After one subscription ends, the other still hears.
  s1.reset();
  EXPECT_THAT(reset(**a, "configured"), IsOkAndHolds(2));
  EXPECT_TRUE(also_by_b.WaitFor(Kind::kLazy, "configured", 2));
  EXPECT_EQ(by_b.Count(Kind::kLazy, "configured"), 1);

  // A store alone keeps no resets and reads no rows.
  auto alone = PostgresTaskStore::Open(NewSchemaConninfo());
  ASSERT_THAT(alone.status(), IsOk());
  EXPECT_THAT(reset(**alone, "rates"), IsOkAndHolds(0));
  EXPECT_THAT(
      (*alone)->ReadLazyValue("rates").status(),
      StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("not shared")));
}

TEST(PostgresReplicasTest, AReplicaCountsEachCreatorsTasksOnTheOthers) {
  using Load = TaskStore::CreatorLoad;
  const std::string conninfo = NewSchemaConninfo();
  auto a = OpenReplica(conninfo, "a");
  auto b = OpenReplica(conninfo, "b");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  auto by = [](std::string name, weft::v1::TaskState state,
               std::string creator) {
    auto task = std::make_shared<weft::v1::Task>(*MakeTask(name, state));
    task->set_creator(std::move(creator));
    task->clear_request_id();
    return task;
  };
  for (const auto& task :
       {by("tasks/1", weft::v1::TASK_STATE_RUNNING, "alice"),
        by("tasks/2", weft::v1::TASK_STATE_RUNNING, "alice"),
        by("tasks/3", weft::v1::TASK_STATE_QUEUED, "alice"),
        by("tasks/4", weft::v1::TASK_STATE_SUCCEEDED, "alice"),
        by("tasks/5", weft::v1::TASK_STATE_QUEUED, "bob")}) {
    ASSERT_THAT(WriteNow(**a, task), IsOk());
  }
  auto matches = [](int running, int queued) {
    return ::testing::AllOf(::testing::Field(&Load::running, running),
                            ::testing::Field(&Load::queued, queued));
  };
  // b sees a's unfinished tasks; a counts only the others' (none).
  EXPECT_THAT((*b)->OthersLoad({"alice", "bob", "carol"}),
              IsOkAndHolds(ElementsAre(Pair("alice", matches(2, 1)),
                                       Pair("bob", matches(0, 1)))));
  EXPECT_THAT((*a)->OthersLoad({"alice", "bob"}), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT((*b)->OthersLoad({}), IsOkAndHolds(IsEmpty()));
  // A store alone has no others.
  auto alone = PostgresTaskStore::Open(NewSchemaConninfo());
  ASSERT_THAT(alone.status(), IsOk());
  EXPECT_THAT(
      (*alone)->OthersLoad({"alice"}).status(),
      StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("not shared")));
}

TEST(PostgresReplicasTest, AReplicaPollsAndAnAdopterSeesTheCancelRequests) {
  using Kind = TaskStore::Notice::Kind;
  const std::string conninfo = NewSchemaConninfo();
  {
    auto a = OpenReplica(conninfo, "a");
    ASSERT_THAT(a.status(), IsOk());
    ASSERT_THAT(
        WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
        IsOk());
    ASSERT_THAT((*a)->RequestCancel("tasks/1"), IsOk());
  }  // Gone before it cancelled it.
  PostgresOptions options;
  options.replicas = true;
  options.replica_id = "b";
  options.poll_interval = absl::Milliseconds(50);
  auto b = PostgresTaskStore::Open(conninfo, options);
  ASSERT_THAT(b.status(), IsOk());
  Heard heard;
  std::unique_ptr<TaskStore::Subscription> subscribed =
      (*b)->Listen(heard.Fn());
  // Polls come whether or not anything was sent.
  EXPECT_TRUE(heard.WaitFor(Kind::kPoll, "", 3));
  absl::StatusOr<std::vector<PostgresTaskStore::Adopted>> adopted =
      (*b)->AdoptExpired();
  ASSERT_THAT(adopted.status(), IsOk());
  EXPECT_THAT(Names(*adopted), ElementsAre("tasks/1"));
  EXPECT_THAT((*b)->CancelRequests(), ElementsAre("tasks/1"));
}

TEST(PostgresReplicasTest, AWeftdAloneAndReplicasDoNotShareADatabase) {
  const std::string conninfo = NewSchemaConninfo();
  PostgresOptions no_wait;
  no_wait.lock_wait = absl::ZeroDuration();
  {
    auto alone = PostgresTaskStore::Open(conninfo);
    ASSERT_THAT(alone.status(), IsOk());
    PostgresOptions replica = no_wait;
    replica.replicas = true;
    EXPECT_THAT(PostgresTaskStore::Open(conninfo, replica).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("in use by a weftd running alone")));
  }
  auto a = OpenReplica(conninfo, "a");
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(WriteNow(**a, MakeTask("tasks/1", weft::v1::TASK_STATE_RUNNING)),
              IsOk());
  EXPECT_THAT(PostgresTaskStore::Open(conninfo, no_wait).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("in use by another weftd")));
  a->reset();
  // Alone after replicas, a weftd owns every task.
  auto alone = PostgresTaskStore::Open(conninfo);
  ASSERT_THAT(alone.status(), IsOk());
  EXPECT_THAT(
      WriteNow(**alone, MakeTask("tasks/1", weft::v1::TASK_STATE_SUCCEEDED)),
      IsOk());
}

TEST(PostgresReplicasTest, AVersionOneDatabaseIsMigratedWithItsTasks) {
  const std::string conninfo = NewSchemaConninfo();
  {
    auto store = PostgresTaskStore::Open(conninfo);
    ASSERT_THAT(store.status(), IsOk());
    ASSERT_THAT(WriteNow(**store, MakeTask("tasks/older",
                                           weft::v1::TASK_STATE_SUCCEEDED)),
                IsOk());
    ASSERT_THAT(
        WriteNow(**store, MakeTask("tasks/old", weft::v1::TASK_STATE_RUNNING)),
        IsOk());
  }
  // Back to version 1's tables, as a weftd of that version left them.
  std::unique_ptr<pg::Connection> admin = Admin();
  ASSERT_NE(admin, nullptr);
  absl::StatusOr<std::unique_ptr<pg::Connection>> c =
      pg::Connection::Open(conninfo);
  ASSERT_THAT(c.status(), IsOk());
  ASSERT_THAT((*c)->Exec("DROP INDEX weft_tasks_request; "
                         "ALTER TABLE weft_tasks DROP COLUMN replica; "
                         "DROP TABLE weft_replicas; "
                         "DROP SEQUENCE weft_generations; "
                         "ALTER TABLE weft_tasks DROP COLUMN cancel_requested; "
                         "DROP TABLE weft_lazy_resets; "
                         "DROP INDEX weft_tasks_unfinished_by_owner; "
                         "UPDATE weft_meta SET value = '1' "
                         "WHERE key = 'schema_version'"),
              IsOk());
  // An older task sharing its request_id (left by an erase that failed).
  ASSERT_THAT((*c)->Exec("UPDATE weft_tasks SET request_id = 'r-tasks/old' "
                         "WHERE name = 'tasks/older'"),
              IsOk());
  auto a = OpenReplica(conninfo, "a");
  ASSERT_THAT(a.status(), IsOk());
  // The task of the weftd that ran alone has no replica: adopted.
  absl::StatusOr<std::vector<PostgresTaskStore::Adopted>> adopted =
      (*a)->AdoptExpired();
  ASSERT_THAT(adopted.status(), IsOk());
  EXPECT_THAT(Names(*adopted),
              ::testing::ElementsAre("tasks/older", "tasks/old"));
  // The newer keeps the request_id; the older lost it.
  EXPECT_EQ((*a)->Get("tasks/old")->request_id(), "r-tasks/old");
  absl::StatusOr<pg::Result> older = (*c)->Query(
      "SELECT request_id FROM weft_tasks WHERE name = 'tasks/older'");
  ASSERT_THAT(older.status(), IsOk());
  EXPECT_EQ(older->Bytes(0, 0), "");
  absl::StatusOr<pg::Result> version =
      (*c)->Query("SELECT value FROM weft_meta WHERE key = 'schema_version'");
  ASSERT_THAT(version.status(), IsOk());
  EXPECT_EQ(version->Bytes(0, 0),
            absl::StrCat(PostgresTaskStore::kSchemaVersion));
}

}  // namespace
}  // namespace weft::store
