// LazySync against a fake shared store: what another replica writes (rows
// of definitions and resets) reaches this replica's LazyRegistry before its
// next resolve, through notices, and through polls.

#include "server/lazy/lazy_sync.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/event_loop.h"
#include "server/engine/sync.h"
#include "server/handlers/handler.h"
#include "server/plan/compiler.h"
#include "server/store/task_store.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "weft/v1/lazy.pb.h"
#include "weft/v1/orchestrator.pb.h"

namespace weft::lazy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::weft::testing::IsOk;
using ::weft::testing::StatusIs;
using Row = store::TaskStore::LazyRow;
using Notice = store::TaskStore::Notice;

// What the other replicas share: lazy rows, and the notices of them.
class SharedRows final : public store::TaskStore {
 public:
  void Write(std::shared_ptr<const weft::v1::Task>, WriteDone done) override {
    std::move(done)(absl::OkStatus());
  }
  void Erase(std::string, WriteDone done) override {
    std::move(done)(absl::OkStatus());
  }
  std::shared_ptr<const weft::v1::Task> Get(absl::string_view) const override {
    return nullptr;
  }
  void Scan(uint64_t, absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)>)
      const override {}
  size_t size() const override { return 0; }
  bool shared() const override { return true; }

  std::unique_ptr<Subscription> Listen(
      std::function<void(const Notice&)> fn) override {
    engine::MutexLock lock(&listen_mu_);
    subscriber_ = std::move(fn);
    return std::make_unique<Unsubscribe>(this);
  }
  absl::StatusOr<Row> ReadLazyValue(absl::string_view id) const override {
    absl::StatusOr<Row> row;
    {
      engine::MutexLock lock(&mu_);
      ++reads_;
      if (!failure_.ok()) {
        row = failure_;
      } else {
        auto it = rows_.find(std::string(id));
        row = it == rows_.end() ? Row{} : it->second;
      }
    }
    // The row as it was read: what is written while the read is held is
    // not in it.
    engine::MutexLock lock(&gate_mu_);
    ++started_;
    while (held_) gate_.Wait(&gate_mu_);
    return row;
  }
  void ResetLazyValue(std::string id, ResetDone done) override {
    absl::StatusOr<int64_t> count;
    {
      engine::MutexLock lock(&mu_);
      count = write_failure_.ok() ? absl::StatusOr<int64_t>(++rows_[id].resets)
                                  : write_failure_;
    }
    std::move(done)(count);
  }
  void FailWrites(absl::Status failure) {
    engine::MutexLock lock(&mu_);
    write_failure_ = std::move(failure);
  }
  int64_t resets(const std::string& id) const {
    engine::MutexLock lock(&mu_);
    auto it = rows_.find(id);
    return it == rows_.end() ? 0 : it->second.resets;
  }
  absl::StatusOr<std::map<std::string, Row>> ReadLazyValues() const override {
    engine::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    return rows_;
  }

  // Another replica's write, without a notice (one that was missed).
  void Set(const std::string& id, Row row) {
    engine::MutexLock lock(&mu_);
    if (row == Row{}) {
      rows_.erase(id);
    } else {
      rows_[id] = std::move(row);
    }
  }
  void Tell(Notice notice) {
    engine::MutexLock lock(&listen_mu_);
    if (subscriber_) subscriber_(notice);
  }
  void Fail(absl::Status failure) {
    engine::MutexLock lock(&mu_);
    failure_ = std::move(failure);
  }
  // Single-row reads wait until Release.
  void Hold() {
    engine::MutexLock lock(&gate_mu_);
    held_ = true;
  }
  void Release() {
    engine::MutexLock lock(&gate_mu_);
    held_ = false;
    gate_.SignalAll();
  }
  int started() const {
    engine::MutexLock lock(&gate_mu_);
    return started_;
  }
  int reads() const {
    engine::MutexLock lock(&mu_);
    return reads_;
  }

 private:
  class Unsubscribe final : public Subscription {
   public:
    explicit Unsubscribe(SharedRows* store) : store_(store) {}
    ~Unsubscribe() override {
      engine::MutexLock lock(&store_->listen_mu_);
      store_->subscriber_ = nullptr;
    }

   private:
    SharedRows* const store_;
  };

  mutable engine::Mutex mu_;
  std::map<std::string, Row> rows_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  absl::Status write_failure_ ABSL_GUARDED_BY(mu_);
  mutable int reads_ ABSL_GUARDED_BY(mu_) = 0;
  mutable engine::Mutex gate_mu_;
  mutable engine::CondVar gate_;
  bool held_ ABSL_GUARDED_BY(gate_mu_) = false;
  mutable int started_ ABSL_GUARDED_BY(gate_mu_) = 0;
  engine::Mutex listen_mu_;
  std::function<void(const Notice&)> subscriber_ ABSL_GUARDED_BY(listen_mu_);
};

// A CreateLazyValueRequest for `id` whose value is `visits`, serialized.
std::string Definition(const std::string& id, int visits) {
  return weft::testing::FromJson<weft::v1::CreateLazyValueRequest>(
             absl::StrCat(
                 R"({"lazyValueId": ")", id,
                 R"(", "lazyValue": {"plan": {"call": {)",
                 R"("handler": "value", "args": {"value": {"visits": )", visits,
                 "}}}}}}"))
      .SerializeAsString();
}

class LazySyncTest : public ::testing::Test {
 protected:
  LazySyncTest() {
    EXPECT_THAT(handlers::RegisterBuiltinHandlers(handlers_), IsOk());
  }
  ~LazySyncTest() override { sync_.reset(); }

  void StartSync(std::set<std::string> config_ids = {}) {
    sync_ = std::make_unique<LazySync>(
        store_, lazies_,
        [this](const std::string& id, const std::string& bytes) {
          return Declare(id, bytes);
        });
    log_ = sync_->Start(std::move(config_ids));
  }

  absl::Status Declare(const std::string& id, const std::string& bytes) {
    if (!refuse_.ok()) return refuse_;
    auto request = std::make_shared<weft::v1::CreateLazyValueRequest>();
    if (!request->ParseFromString(bytes)) {
      return absl::DataLossError("does not parse");
    }
    auto compiled =
        plan::Compile(&request->lazy_value().plan(), request, "plan", handlers_,
                      plan::Limits(), nullptr, &lazies_);
    if (!compiled.ok()) return compiled.status();
    return lazies_.Create(id, request->lazy_value(), *std::move(compiled))
        .status();
  }

  // Resolves and waits for the answer.
  absl::StatusOr<LazyRegistry::Resolved> Resolve(const std::string& name) {
    engine::Mutex mu;
    std::optional<absl::StatusOr<LazyRegistry::Resolved>> got;
    lazies_.ResolveShared(name, {},
                          [&](absl::StatusOr<LazyRegistry::Resolved> r) {
                            engine::MutexLock lock(&mu);
                            got = std::move(r);
                          });
    EXPECT_TRUE(weft::testing::WaitFor([&] {
      engine::MutexLock lock(&mu);
      return got.has_value();
    }));
    engine::MutexLock lock(&mu);
    if (!got.has_value()) return absl::DeadlineExceededError("no answer");
    return *std::move(got);
  }
  int Visits(const absl::StatusOr<LazyRegistry::Resolved>& r) {
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return -1;
    return static_cast<int>(
        r->cached->value.struct_value().fields().at("visits").number_value());
  }

  engine::EventLoop loop_{1};
  handlers::HandlerRegistry handlers_;
  LazyRegistry lazies_{loop_, {}};
  SharedRows store_;
  std::unique_ptr<LazySync> sync_;
  std::vector<std::string> log_;
  // What Declare answers instead, when set (read on the sync's threads
  // only while the test waits on them).
  absl::Status refuse_;
};

TEST_F(LazySyncTest, AStartDeclaresWhatOtherReplicasMade) {
  store_.Set("rates", Row{.request = Definition("rates", 1), .resets = 3});
  store_.Set("broken", Row{.request = "not a request"});
  // The config file's value keeps its own definition; it was resolved
  // (and cached) before the start, after two resets elsewhere.
  ASSERT_THAT(Declare("configured", Definition("configured", 7)), IsOk());
  ASSERT_THAT(Resolve("lazyValues/configured"), IsOk());
  store_.Set("configured",
             Row{.request = Definition("configured", 8), .resets = 2});
  StartSync({"configured"});
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 1);
  EXPECT_EQ(Visits(Resolve("lazyValues/configured")), 7);
  EXPECT_THAT(log_, ElementsAre(HasSubstr("lazyValues/broken (made through "
                                          "the API on another replica) could "
                                          "not be declared here")));
  // Resets made before the start forget nothing: these values stay cached.
  for (const char* name : {"lazyValues/rates", "lazyValues/configured"}) {
    absl::StatusOr<LazyRegistry::Resolved> again = Resolve(name);
    ASSERT_THAT(again, IsOk());
    EXPECT_TRUE(again->cache_hit) << name;
  }
}

TEST_F(LazySyncTest, AResolveSeesResetsCreatesAndDeletesWithoutANotice) {
  StartSync({"configured"});
  ASSERT_THAT(Declare("configured", Definition("configured", 7)), IsOk());
  EXPECT_THAT(Resolve("lazyValues/rates"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("rates")));

  // Made on another replica: resolvable here at once.
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 1);
  absl::StatusOr<LazyRegistry::Resolved> cached = Resolve("lazyValues/rates");
  ASSERT_THAT(cached, IsOk());
  EXPECT_TRUE(cached->cache_hit);

  // Reset on another replica: computed again here.
  store_.Set("rates", Row{.request = Definition("rates", 1), .resets = 1});
  absl::StatusOr<LazyRegistry::Resolved> fresh = Resolve("lazyValues/rates");
  ASSERT_THAT(fresh, IsOk());
  EXPECT_FALSE(fresh->cache_hit);
  EXPECT_EQ(fresh->generation, 1);
  // ...once: the count did not change since.
  EXPECT_TRUE(Resolve("lazyValues/rates")->cache_hit);

  // A config file's value is reset too.
  EXPECT_EQ(Visits(Resolve("lazyValues/configured")), 7);
  store_.Set("configured", Row{.resets = 1});
  EXPECT_FALSE(Resolve("lazyValues/configured")->cache_hit);

  // Deleted and made again with another definition.
  store_.Set("rates", Row{.request = Definition("rates", 2)});
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 2);

  // Deleted on another replica: gone here.
  store_.Set("rates", Row{});
  EXPECT_THAT(Resolve("lazyValues/rates"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("rates")));
  EXPECT_THAT(lazies_.Get("lazyValues/rates").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("rates")));
}

TEST_F(LazySyncTest, NoticesAndPollsApplyChangesBetweenResolves) {
  StartSync();
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  store_.Tell(Notice{.kind = Notice::Kind::kLazy, .name = "rates"});
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return lazies_.Get("lazyValues/rates").ok(); }));
  // A change whose notice was missed is found by the next poll.
  store_.Set("quotes", Row{.request = Definition("quotes", 5)});
  store_.Set("rates", Row{});
  store_.Tell(Notice{.kind = Notice::Kind::kPoll});
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    return lazies_.Get("lazyValues/quotes").ok() &&
           !lazies_.Get("lazyValues/rates").ok();
  }));
  EXPECT_EQ(Visits(Resolve("lazyValues/quotes")), 5);
}

TEST_F(LazySyncTest, ADefinitionThatCannotBeDeclaredIsTriedAgain) {
  StartSync();
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  // Not declarable here yet (as when --max_lazy_values is reached).
  refuse_ = absl::ResourceExhaustedError("too many lazy values");
  EXPECT_THAT(Resolve("lazyValues/rates"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("rates")));
  refuse_ = absl::OkStatus();
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 1);
}

TEST_F(LazySyncTest, AResetHereIsForgottenAtOnceAndOnlyOnce) {
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  StartSync();
  ASSERT_THAT(Resolve("lazyValues/rates"), IsOk());
  weft::testing::Notification reset;
  absl::Status written;
  sync_->Reset("lazyValues/rates", [&](absl::Status s) {
    written = s;
    reset.Notify();
  });
  ASSERT_TRUE(reset.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(written, IsOk());
  EXPECT_EQ(store_.resets("rates"), 1);
  // Forgotten here, whether or not the store can be read now.
  store_.Fail(absl::UnavailableError("the database is down"));
  absl::StatusOr<LazyRegistry::Resolved> fresh = Resolve("lazyValues/rates");
  ASSERT_THAT(fresh, IsOk());
  EXPECT_FALSE(fresh->cache_hit);
  EXPECT_EQ(fresh->generation, 1);
  // The notice of its own reset forgets nothing more.
  store_.Fail(absl::OkStatus());
  store_.Tell(Notice{.kind = Notice::Kind::kLazy, .name = "rates"});
  absl::StatusOr<LazyRegistry::Resolved> cached = Resolve("lazyValues/rates");
  ASSERT_THAT(cached, IsOk());
  EXPECT_TRUE(cached->cache_hit);
  EXPECT_EQ(cached->generation, 1);
  // A reset the store cannot write forgets nothing.
  store_.FailWrites(absl::UnavailableError("the database is down"));
  weft::testing::Notification refused;
  sync_->Reset("lazyValues/rates", [&](absl::Status s) {
    written = s;
    refused.Notify();
  });
  ASSERT_TRUE(refused.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(written, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("the database is down")));
  EXPECT_TRUE(Resolve("lazyValues/rates")->cache_hit);
}

TEST_F(LazySyncTest, WhenTheStoreCannotBeReadAResolveUsesWhatItHas) {
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  StartSync();
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 1);
  store_.Fail(absl::UnavailableError("the database is down"));
  store_.Set("rates", Row{.request = Definition("rates", 1), .resets = 1});
  absl::StatusOr<LazyRegistry::Resolved> stale = Resolve("lazyValues/rates");
  ASSERT_THAT(stale, IsOk());
  EXPECT_TRUE(stale->cache_hit);
  // Once it can, the reset is seen.
  store_.Fail(absl::OkStatus());
  EXPECT_FALSE(Resolve("lazyValues/rates")->cache_hit);
}

TEST_F(LazySyncTest, ConcurrentResolvesShareReadsAndAllSeeAReset) {
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  StartSync();
  ASSERT_THAT(Resolve("lazyValues/rates"), IsOk());
  const int reads = store_.reads();
  store_.Hold();
  engine::Mutex mu;
  std::vector<int64_t> generations;
  auto resolve = [&] {
    lazies_.ResolveShared("lazyValues/rates", {},
                          [&](absl::StatusOr<LazyRegistry::Resolved> r) {
                            engine::MutexLock lock(&mu);
                            generations.push_back(r.ok() ? r->generation : -1);
                          });
  };
  // The first resolve's read has the row before the reset...
  resolve();
  EXPECT_TRUE(weft::testing::WaitFor([&] { return store_.started() > reads; }));
  store_.Set("rates", Row{.request = Definition("rates", 1), .resets = 1});
  // ...so the resolves after the reset must not take that read's answer:
  // they join the next.
  constexpr int kResolves = 200;
  for (int i = 0; i < kResolves; ++i) resolve();
  {
    engine::MutexLock lock(&mu);
    EXPECT_TRUE(generations.empty());
  }
  store_.Release();
  EXPECT_TRUE(weft::testing::WaitFor([&] {
    engine::MutexLock lock(&mu);
    return static_cast<int>(generations.size()) == kResolves + 1;
  }));
  engine::MutexLock lock(&mu);
  EXPECT_EQ(generations.front(), 0);  // Read before the reset.
  EXPECT_EQ(std::count(generations.begin(), generations.end(), 1), kResolves);
  EXPECT_EQ(store_.reads() - reads, 2);
}

// Shutdown while reads are under way: ~LazySync waits for them, every
// resolve waiting on them is answered, and a resolve after it runs without
// a read (nothing reaches the destroyed sync).
TEST_F(LazySyncTest, DestroyingItMidReadAnswersEveryResolveWaitingOnIt) {
  store_.Set("rates", Row{.request = Definition("rates", 1)});
  StartSync();
  const int reads = store_.reads();
  store_.Hold();
  engine::Mutex mu;
  std::vector<absl::StatusOr<LazyRegistry::Resolved>> answers;
  auto resolve = [&] {
    lazies_.ResolveShared("lazyValues/rates", {},
                          [&](absl::StatusOr<LazyRegistry::Resolved> r) {
                            engine::MutexLock lock(&mu);
                            answers.push_back(std::move(r));
                          });
  };
  resolve();
  EXPECT_TRUE(weft::testing::WaitFor([&] { return store_.started() > reads; }));
  resolve();  // Joins the next read, after the one held.
  std::thread destroy([&] { sync_.reset(); });
  store_.Release();
  destroy.join();
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    engine::MutexLock lock(&mu);
    return answers.size() == 2;
  }));
  {
    engine::MutexLock lock(&mu);
    for (const auto& answer : answers) EXPECT_EQ(Visits(answer), 1);
  }
  EXPECT_EQ(store_.reads() - reads, 2);
  EXPECT_EQ(Visits(Resolve("lazyValues/rates")), 1);
  EXPECT_EQ(store_.reads() - reads, 2);
}

}  // namespace
}  // namespace weft::lazy
