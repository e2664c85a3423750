// SqliteTaskStore beyond the contract: what survives closing the file, group
// commit, the space of erased tasks, backups, and each fault at open or
// while writing with its answer.

#include "server/store/sqlite_task_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scratch_dir.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::store {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;
using weft::v1::Task;

std::shared_ptr<const Task> MakeTask(
    const std::string& name,
    weft::v1::TaskState state = weft::v1::TASK_STATE_QUEUED,
    size_t padding = 0) {
  auto task = std::make_shared<Task>();
  task->set_name(name);
  task->set_state(state);
  if (padding > 0) (*task->mutable_labels())["pad"] = std::string(padding, 'x');
  return task;
}

absl::Status WriteAndWait(TaskStore& store, std::shared_ptr<const Task> task) {
  weft::testing::Notification done;
  absl::Status got;
  store.Write(std::move(task), [&](absl::Status s) {
    got = std::move(s);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  return got;
}

absl::Status EraseAndWait(TaskStore& store, const std::string& name) {
  weft::testing::Notification done;
  absl::Status got;
  store.Erase(name, [&](absl::Status s) {
    got = std::move(s);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  return got;
}

std::vector<std::pair<uint64_t, std::string>> ScanAll(const TaskStore& store) {
  std::vector<std::pair<uint64_t, std::string>> out;
  store.Scan(0, [&](uint64_t position, const Task& task) {
    out.emplace_back(position, task.name());
    return true;
  });
  return out;
}

std::unique_ptr<SqliteTaskStore> OpenOrDie(const std::string& path,
                                           SqliteOptions options = {}) {
  absl::StatusOr<std::unique_ptr<SqliteTaskStore>> store =
      SqliteTaskStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Runs SQL on the file with a connection of the test's own.
void ExecOn(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

int64_t IntOn(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  const int64_t value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void WriteFile(const std::string& path, const std::string& bytes,
               long offset = 0) {
  std::FILE* f = std::fopen(path.c_str(), offset == 0 ? "wb" : "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, offset, SEEK_SET);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

class SqliteTaskStoreTest : public ::testing::Test {
 protected:
  weft::testing::ScratchDir dir_;
  const std::string path_ = dir_.File("weft.db");
};

TEST_F(SqliteTaskStoreTest, EveryDoneWriteIsThereAfterReopeningInItsPlace) {
  {
    std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
    for (const char* name : {"tasks/a", "tasks/b", "tasks/c", "tasks/d"}) {
      ASSERT_TRUE(WriteAndWait(*store, MakeTask(name)).ok());
    }
    ASSERT_TRUE(EraseAndWait(*store, "tasks/b").ok());
    ASSERT_TRUE(WriteAndWait(
                    *store, MakeTask("tasks/a", weft::v1::TASK_STATE_SUCCEEDED))
                    .ok());
  }
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->size(), 3u);
  EXPECT_EQ(store->Get("tasks/b"), nullptr);
  ASSERT_NE(store->Get("tasks/a"), nullptr);
  EXPECT_EQ(store->Get("tasks/a")->state(), weft::v1::TASK_STATE_SUCCEEDED);
  using P = std::pair<uint64_t, std::string>;
  EXPECT_EQ(ScanAll(*store),
            (std::vector<P>{{4, "tasks/d"}, {3, "tasks/c"}, {1, "tasks/a"}}));
  // A new task comes after every one there was.
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/e")).ok());
  EXPECT_EQ(ScanAll(*store).front(), (P{5, "tasks/e"}));
}

TEST_F(SqliteTaskStoreTest, TheOwnerColumnHoldsTheTasksCreator) {
  {
    std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
    auto task = std::make_shared<weft::v1::Task>(*MakeTask("tasks/a"));
    task->set_creator("alice");
    ASSERT_TRUE(WriteAndWait(*store, task).ok());
    ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/b")).ok());
  }
  EXPECT_EQ(IntOn(path_,
                  "SELECT count(*) FROM tasks WHERE name = 'tasks/a' "
                  "AND owner = 'alice'"),
            1);
  EXPECT_EQ(IntOn(path_,
                  "SELECT count(*) FROM tasks WHERE name = 'tasks/b' "
                  "AND owner = ''"),
            1);
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  ASSERT_NE(store->Get("tasks/a"), nullptr);
  EXPECT_EQ(store->Get("tasks/a")->creator(), "alice");
}

TEST_F(SqliteTaskStoreTest, WritesWaitingWhenATransactionStartsShareIt) {
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  // The first write's `done` runs on the writer thread and holds it, so the
  // next hundred queue up behind it.
  weft::testing::Notification holding;
  weft::testing::Notification release;
  weft::testing::Notification first_done;
  store->Write(MakeTask("tasks/0"), [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    holding.Notify();
    EXPECT_TRUE(release.WaitForNotificationWithTimeout(weft::testing::kWait));
    first_done.Notify();
  });
  ASSERT_TRUE(holding.WaitForNotificationWithTimeout(weft::testing::kWait));
  std::atomic<int> done{0};
  for (int i = 1; i <= 100; ++i) {
    store->Write(MakeTask(absl::StrCat("tasks/", i)), [&](absl::Status s) {
      EXPECT_TRUE(s.ok());
      done.fetch_add(1);
    });
  }
  release.Notify();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(weft::testing::kWait));
  ASSERT_TRUE(weft::testing::WaitFor([&] { return done.load() == 100; }));
  EXPECT_EQ(store->commits(), 2);
  EXPECT_EQ(store->size(), 101u);
}

TEST_F(SqliteTaskStoreTest, ErasedTasksGiveTheirSpaceBack) {
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  for (int i = 0; i < 1000; ++i) {
    store->Write(MakeTask(absl::StrCat("tasks/", i),
                          weft::v1::TASK_STATE_SUCCEEDED, 4000),
                 [](absl::Status s) { EXPECT_TRUE(s.ok()); });
  }
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/last")).ok());
  const int64_t full = IntOn(path_, "PRAGMA page_count");
  EXPECT_GT(full, 1000);  // A page (4 KiB) a task at least.
  for (int i = 0; i < 1000; ++i) {
    store->Erase(absl::StrCat("tasks/", i),
                 [](absl::Status s) { EXPECT_TRUE(s.ok()); });
  }
  ASSERT_TRUE(EraseAndWait(*store, "tasks/last").ok());
  // The erasures' vacuum runs after their commit, on the writer thread:
  // the next write's `done` comes after it.
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/after")).ok());
  EXPECT_LT(IntOn(path_, "PRAGMA page_count"), full / 2);
}

TEST_F(SqliteTaskStoreTest, ABackupIsAStoreWithEveryTaskWrittenBeforeIt) {
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(WriteAndWait(*store, MakeTask(absl::StrCat("tasks/", i))).ok());
  }
  const std::string copy = dir_.File("copy.db");
  ASSERT_TRUE(store->Backup(copy).ok());
  // The live store goes on.
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/after")).ok());
  std::unique_ptr<SqliteTaskStore> restored = OpenOrDie(copy);
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(restored->size(), 50u);
  EXPECT_NE(restored->Get("tasks/49"), nullptr);
  EXPECT_EQ(restored->Get("tasks/after"), nullptr);
}

TEST_F(SqliteTaskStoreTest, ABackupIntoAFolderThatIsNotThereSaysSo) {
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  EXPECT_THAT(store->Backup(dir_.File("missing/copy.db")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("copy.db")));
}

TEST_F(SqliteTaskStoreTest,
       AFullDiskFailsTheWriteWholeAndWritesWorkAgainLater) {
  SqliteOptions options;
  options.max_pages = 60;
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_, options);
  absl::Status failed;
  int written = 0;
  while (written < 200) {
    failed = WriteAndWait(*store, MakeTask(absl::StrCat("tasks/", written),
                                           weft::v1::TASK_STATE_QUEUED, 8000));
    if (!failed.ok()) break;
    ++written;
  }
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("full")));
  const std::string refused = absl::StrCat("tasks/", written);
  EXPECT_EQ(store->Get(refused), nullptr);
  // Reads keep working.
  EXPECT_EQ(store->size(), static_cast<size_t>(written));
  ASSERT_NE(store->Get("tasks/0"), nullptr);
  // Space comes back: the same write goes through.
  store->SetMaxPages(0);
  EXPECT_TRUE(WriteAndWait(*store, MakeTask(refused)).ok());
  store.reset();
  // Nothing was half-written.
  store = OpenOrDie(path_);
  EXPECT_EQ(store->size(), static_cast<size_t>(written) + 1);
}

TEST_F(SqliteTaskStoreTest, ASecondStoreOnTheSameFileIsRefused) {
  std::unique_ptr<SqliteTaskStore> first = OpenOrDie(path_);
  absl::StatusOr<std::unique_ptr<SqliteTaskStore>> second =
      SqliteTaskStore::Open(path_);
  EXPECT_THAT(second.status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(path_ + " is in use by another weftd")));
  // Once the first is closed, the file is free.
  first.reset();
  EXPECT_NE(OpenOrDie(path_), nullptr);
}

TEST_F(SqliteTaskStoreTest, AFileFromANewerWeftdIsRefused) {
  OpenOrDie(path_).reset();
  ExecOn(path_, "PRAGMA user_version = 99");
  EXPECT_THAT(
      SqliteTaskStore::Open(path_).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr(absl::StrCat(path_,
                                      " was written by a newer weftd (schema "
                                      "version 99; this weftd knows versions "
                                      "up to ",
                                      SqliteTaskStore::kSchemaVersion))));
}

TEST_F(SqliteTaskStoreTest, AFileThatIsNotSqliteIsRefusedAndLeftAlone) {
  const std::string junk(8192, 'j');
  WriteFile(path_, junk);
  EXPECT_THAT(SqliteTaskStore::Open(path_).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("the task store " + path_ + " is damaged")));
  std::ifstream in(path_, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  EXPECT_EQ(after, junk);
}

TEST_F(SqliteTaskStoreTest, AFileDamagedInsideIsRefusedWithWhatToDo) {
  {
    std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
    for (int i = 0; i < 100; ++i) {
      store->Write(MakeTask(absl::StrCat("tasks/", i),
                            weft::v1::TASK_STATE_QUEUED, 3000),
                   [](absl::Status) {});
    }
    ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/last")).ok());
  }
  // Pages 10 to 20 (of about 100) become garbage; the header is intact.
  WriteFile(path_, std::string(4096 * 10, '\x7f'), 4096 * 10);
  absl::Status status = SqliteTaskStore::Open(path_).status();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("the task store " + path_ + " is damaged")));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("restore it from a backup"));
}

TEST_F(SqliteTaskStoreTest, AnotherProgramsSqliteFileIsRefused) {
  ExecOn(path_, "CREATE TABLE invoices(id INTEGER PRIMARY KEY)");
  EXPECT_THAT(SqliteTaskStore::Open(path_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(path_ + " is an SQLite file but not a weft "
                                         "task store")));
  EXPECT_EQ(IntOn(path_, "SELECT count(*) FROM invoices"), 0);
}

TEST_F(SqliteTaskStoreTest, AFileInAFolderThatCannotBeIsRefused) {
  // A regular file where the folder should be: no user, root included, can
  // create the store there.
  WriteFile(dir_.File("plain"), "x");
  const std::string path = dir_.File("plain/weft.db");
  EXPECT_THAT(SqliteTaskStore::Open(path).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot use the task store " + path)));
}

TEST_F(SqliteTaskStoreTest, AStoreOnAReadOnlyMountIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting needs root";
  const std::string mnt = dir_.File("mnt");
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  if (std::system(("mount -t tmpfs -o size=4m tmpfs " + mnt).c_str()) != 0) {
    GTEST_SKIP() << "this machine does not let the test mount a tmpfs";
  }
  const std::string path = mnt + "/weft.db";
  OpenOrDie(path).reset();
  ASSERT_EQ(std::system(("mount -o remount,ro " + mnt).c_str()), 0);
  EXPECT_THAT(SqliteTaskStore::Open(path).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot use the task store " + path)));
  EXPECT_EQ(std::system(("umount " + mnt).c_str()), 0);
}

absl::Status JournalAndWait(TaskStore& store, const std::string& name,
                            int32_t node,
                            std::shared_ptr<const weft::v1::NodeOutcome> o) {
  weft::testing::Notification done;
  absl::Status got;
  store.Journal(name, node, std::move(o), [&](absl::Status s) {
    got = std::move(s);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  return got;
}

std::shared_ptr<const weft::v1::NodeOutcome> Ended(const std::string& value) {
  auto outcome = std::make_shared<weft::v1::NodeOutcome>();
  outcome->set_state(weft::v1::NODE_STATE_SUCCEEDED);
  outcome->mutable_value()->set_string_value(value);
  return outcome;
}

TEST_F(SqliteTaskStoreTest, ARunningTasksJournalIsThereAtTheNextOpenOnce) {
  {
    std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
    ASSERT_TRUE(WriteAndWait(
                    *store, MakeTask("tasks/run", weft::v1::TASK_STATE_RUNNING))
                    .ok());
    ASSERT_TRUE(JournalAndWait(*store, "tasks/run", 1, nullptr).ok());
    ASSERT_TRUE(JournalAndWait(*store, "tasks/run", 1, Ended("one")).ok());
    ASSERT_TRUE(JournalAndWait(*store, "tasks/run", 2, nullptr).ok());
    // A start recorded again after its end does not undo it.
    ASSERT_TRUE(JournalAndWait(*store, "tasks/run", 1, nullptr).ok());
    // A task the store does not hold keeps no journal.
    ASSERT_TRUE(JournalAndWait(*store, "tasks/none", 1, Ended("x")).ok());
  }
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  NodeJournal journal = store->TakeJournal("tasks/run");
  ASSERT_EQ(journal.ended.size(), 1u);
  EXPECT_EQ(journal.ended.at(1).value().string_value(), "one");
  EXPECT_EQ(journal.started, (absl::flat_hash_set<int32_t>{2}));
  EXPECT_TRUE(store->TakeJournal("tasks/run").ended.empty());
  EXPECT_TRUE(store->TakeJournal("tasks/none").started.empty());
  EXPECT_EQ(IntOn(path_, "SELECT count(*) FROM task_nodes"), 2);
}

TEST_F(SqliteTaskStoreTest, ATasksEndOrErasureDropsItsJournal) {
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  for (const char* name : {"tasks/ends", "tasks/erased"}) {
    ASSERT_TRUE(
        WriteAndWait(*store, MakeTask(name, weft::v1::TASK_STATE_RUNNING))
            .ok());
    ASSERT_TRUE(JournalAndWait(*store, name, 1, Ended("v")).ok());
  }
  EXPECT_EQ(IntOn(path_, "SELECT count(*) FROM task_nodes"), 2);
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/ends",
                                            weft::v1::TASK_STATE_SUCCEEDED))
                  .ok());
  ASSERT_TRUE(EraseAndWait(*store, "tasks/erased").ok());
  EXPECT_EQ(IntOn(path_, "SELECT count(*) FROM task_nodes"), 0);
}

TEST_F(SqliteTaskStoreTest, AFileOfTheFirstVersionIsMigratedAndKeepsItsTasks) {
  SqliteOptions first;
  first.schema_version = 1;
  OpenOrDie(path_, first).reset();
  EXPECT_EQ(IntOn(path_, "PRAGMA user_version"), 1);
  // A task as version 1 wrote it.
  Task old;
  old.set_name("tasks/old");
  old.set_state(weft::v1::TASK_STATE_RUNNING);
  old.set_request_id("r-1");
  std::string hex;
  for (unsigned char c : old.SerializeAsString()) {
    absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  }
  ExecOn(path_, absl::StrCat("INSERT INTO tasks(position, name, state, "
                             "request_id, task) VALUES(7, 'tasks/old', 2, "
                             "'r-1', X'",
                             hex, "')"));
  std::unique_ptr<SqliteTaskStore> store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(IntOn(path_, "PRAGMA user_version"),
            SqliteTaskStore::kSchemaVersion);
  ASSERT_NE(store->Get("tasks/old"), nullptr);
  EXPECT_EQ(store->Get("tasks/old")->request_id(), "r-1");
  // What the new version adds works on it.
  ASSERT_TRUE(JournalAndWait(*store, "tasks/old", 3, Ended("v")).ok());
  EXPECT_EQ(IntOn(path_, "SELECT count(*) FROM task_nodes WHERE position = 7"),
            1);
  ASSERT_TRUE(WriteAndWait(*store, MakeTask("tasks/new")).ok());
  EXPECT_EQ(ScanAll(*store).front().first, 8u);
}

}  // namespace
}  // namespace weft::store
