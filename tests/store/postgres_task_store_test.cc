// The PostgreSQL store: the TaskStore contract, and what is its own
// (reopening, the lock that keeps a second weftd away, schema versions, a
// lost connection, errors that never show a password).
//
// It needs a PostgreSQL server: WEFT_TEST_POSTGRES (a conninfo) or libpq's
// PG* variables, as pg_virtualenv (Debian's postgresql-common) sets them
// for a throwaway cluster; ctest runs it that way. Each store gets a schema
// of its own in that database.

#include "server/store/postgres_task_store.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/postgres.h"
#include "tests/store/task_store_contract.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::weft::testing::IsOk;
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

INSTANTIATE_TEST_SUITE_P(Postgres, TaskStoreContractTest,
                         ::testing::Values(TaskStoreFactory{"Postgres",
                                                            NewPostgresStore}),
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
                       HasSubstr("written by a newer weftd (schema version "
                                 "99; this weftd knows versions up to 1)")));
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
