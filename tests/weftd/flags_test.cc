#include "server/weftd/flags.h"

#include <map>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::weftd {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;
using ::weft::testing::StatusIs;

// What getenv answers in these tests.
std::map<std::string, std::string>* fake_env = nullptr;
const char* FakeGetenv(const char* name) {
  auto it = fake_env->find(name);
  return it == fake_env->end() ? nullptr : it->second.c_str();
}

class FlagsTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_env = &env_; }
  void TearDown() override { fake_env = nullptr; }

  // The settings from env_ are refused with INVALID_ARGUMENT saying `why`.
  void ExpectRefusal(const std::string& why) {
    FlagSources sources;
    ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
    EXPECT_THAT(SettingsFromFlags(sources, "1"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(why)));
  }

  std::map<std::string, std::string> env_;
  absl::FlagSaver saver_;  // Every test leaves the flags as it found them.
};

// Compose files and deployments set weftd through these variables: one per
// flag, whichever file under server/ defines it. A new flag adds a line.
TEST_F(FlagsTest, EveryWeftdFlagHasItsVariable) {
  std::vector<std::string> vars;
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    vars.push_back(EnvironmentVariable(flag->Name()));
  }
  EXPECT_THAT(vars, ElementsAreArray({
                        "WEFT_ACCESS_LOG",
                        "WEFT_AUTH_TOKENS",
                        "WEFT_CONFIG",
                        "WEFT_EVENT_LOOP_THREADS",
                        "WEFT_HTTP_ALLOW",
                        "WEFT_HTTP_MAX_CONNECTIONS_PER_HOST",
                        "WEFT_HTTP_PROXY",
                        "WEFT_LAZY_COMPUTE_TIMEOUT",
                        "WEFT_LEASE_DURATION",
                        "WEFT_LISTEN",
                        "WEFT_MALLOC_TUNING",
                        "WEFT_MAX_ACTIVE_RUNS",
                        "WEFT_MAX_INFLIGHT_BYTES",
                        "WEFT_MAX_LAZY_BYTES",
                        "WEFT_MAX_LAZY_VALUES",
                        "WEFT_MAX_MAP_ITEMS",
                        "WEFT_MAX_MESSAGE_BYTES",
                        "WEFT_MAX_OUTCOME_BYTES",
                        "WEFT_MAX_PLAN_DEPTH",
                        "WEFT_MAX_PLAN_NODES",
                        "WEFT_MAX_QUEUED_TASKS",
                        "WEFT_MAX_QUEUED_TASKS_PER_PRINCIPAL",
                        "WEFT_MAX_RETAINED_TASK_BYTES",
                        "WEFT_MAX_RETAINED_TASKS",
                        "WEFT_MAX_RUN_DURATION",
                        "WEFT_MAX_RUNNING_TASKS",
                        "WEFT_MAX_RUNNING_TASKS_PER_PRINCIPAL",
                        "WEFT_MAX_RUNS_PER_PRINCIPAL",
                        "WEFT_MAX_TASK_DURATION",
                        "WEFT_MAX_VALUE_DEPTH",
                        "WEFT_METRICS_LISTEN",
                        "WEFT_PLAN_CACHE_BYTES",
                        "WEFT_POOLS",
                        "WEFT_REPLICA_ID",
                        "WEFT_REPLICAS",
                        "WEFT_SECRETS",
                        "WEFT_SHUTDOWN_GRACE",
                        "WEFT_STORE",
                        "WEFT_STORE_POOL_SIZE",
                        "WEFT_STORE_SYNC",
                        "WEFT_TASK_RETENTION",
                        "WEFT_TLS_CERT",
                        "WEFT_TLS_CLIENT_CA",
                        "WEFT_TLS_KEY",
                    }));
}

TEST_F(FlagsTest, EveryVariableSetsItsFlag) {
  // Each flag's variable, set to a value other than its default that the
  // flag's type accepts.
  std::map<std::string, std::string> want;
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    const std::string name(flag->Name());
    std::string value;
    if (flag->IsOfType<int>() || flag->IsOfType<int64_t>()) {
      value = "3";
    } else if (flag->IsOfType<bool>()) {
      value = flag->DefaultValue() == "true" ? "false" : "true";
    } else if (flag->IsOfType<absl::Duration>()) {
      value = "7s";
    } else {
      value = "set-by-" + name;
    }
    env_[EnvironmentVariable(name)] = value;
    want[name] = value;
  }
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    const std::string name(flag->Name());
    EXPECT_EQ(flag->CurrentValue(), want[name]) << name;
    EXPECT_EQ(sources.Describe(name),
              EnvironmentVariable(name) + " (--" + name + ")");
  }
}

TEST_F(FlagsTest, ABadVariableNamesItselfAndItsFlag) {
  env_["WEFT_MAX_PLAN_NODES"] = "many";
  FlagSources sources;
  EXPECT_THAT(sources.ApplyEnvironment(FakeGetenv),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("WEFT_MAX_PLAN_NODES (--max_plan_nodes)")));
}

TEST_F(FlagsTest, CheckNamesWhereAnOutOfRangeValueCameFrom) {
  env_["WEFT_MAX_PLAN_NODES"] = "0";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  const std::map<std::string, std::string> before = FlagSources::Snapshot();
  EXPECT_THAT(sources.Check(before),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("WEFT_MAX_PLAN_NODES (--max_plan_nodes)")));
  // Changed after the snapshot: as if on the command line.
  absl::FindCommandLineFlag("max_plan_nodes")->ParseFrom("-1", nullptr);
  EXPECT_THAT(sources.Check(before),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--max_plan_nodes: ")));
}

TEST_F(FlagsTest, TlsNeedsBothCertificateAndKey) {
  env_["WEFT_TLS_CERT"] = "/etc/weft/cert.pem";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  EXPECT_THAT(SettingsFromFlags(sources, "9.9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("WEFT_TLS_CERT (--tls_cert) is set without "
                                 "--tls_key")));
  env_.clear();
  env_["WEFT_TLS_KEY"] = "/etc/weft/key.pem";
  absl::FindCommandLineFlag("tls_cert")->ParseFrom("", nullptr);
  FlagSources key_only;
  ASSERT_TRUE(key_only.ApplyEnvironment(FakeGetenv).ok());
  EXPECT_THAT(SettingsFromFlags(key_only, "9.9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("WEFT_TLS_KEY (--tls_key) is set without "
                                 "--tls_cert")));
}

TEST_F(FlagsTest, MutualTlsNeedsTheServersCertificate) {
  env_["WEFT_TLS_CLIENT_CA"] = "/etc/weft/ca.pem";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  EXPECT_THAT(SettingsFromFlags(sources, "9.9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls_client_ca) is set without "
                                 "--tls_cert")));
}

TEST_F(FlagsTest, TlsAndAuthPathsReachTheSettings) {
  env_["WEFT_TLS_CERT"] = "c.pem";
  env_["WEFT_TLS_KEY"] = "k.pem";
  env_["WEFT_TLS_CLIENT_CA"] = "ca.pem";
  env_["WEFT_AUTH_TOKENS"] = "tokens.json";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  absl::StatusOr<Settings> settings = SettingsFromFlags(sources, "9.9");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->tls.cert, "c.pem");
  EXPECT_EQ(settings->tls.key, "k.pem");
  EXPECT_EQ(settings->tls.client_ca, "ca.pem");
  EXPECT_EQ(settings->auth_tokens, "tokens.json");
}

TEST_F(FlagsTest, SettingsComeFromTheFlags) {
  env_["WEFT_MAX_PLAN_NODES"] = "77";
  env_["WEFT_MAX_OUTCOME_BYTES"] = "5000";
  env_["WEFT_SHUTDOWN_GRACE"] = "3s";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  absl::StatusOr<Settings> settings = SettingsFromFlags(sources, "9.9");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->server.orchestrator.limits.max_plan_nodes, 77);
  EXPECT_EQ(settings->server.orchestrator.max_outcome_bytes, 5000);
  // One limit for every answer: tasks and lazy values share it.
  EXPECT_EQ(settings->server.tasks.max_outcome_bytes, 5000);
  EXPECT_EQ(settings->server.lazies.max_value_bytes, 5000);
  EXPECT_EQ(settings->server.orchestrator.version, "9.9");
  EXPECT_EQ(settings->shutdown_grace, absl::Seconds(3));
}

TEST_F(FlagsTest, SettingsRefuseABadAllowList) {
  env_["WEFT_HTTP_ALLOW"] = "10.0.0.0/99";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  EXPECT_THAT(SettingsFromFlags(sources, "1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--http_allow: ")));
}

TEST_F(FlagsTest, TheStoreIsMemoryByDefaultOrAnSqliteFile) {
  FlagSources sources;
  absl::StatusOr<Settings> settings = SettingsFromFlags(sources, "1");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->store_path, "");
  env_["WEFT_STORE"] = "sqlite:/var/lib/weft/weft.db";
  env_["WEFT_STORE_SYNC"] = "normal";
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  settings = SettingsFromFlags(sources, "1");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->store_path, "/var/lib/weft/weft.db");
  EXPECT_EQ(settings->store_sync, store::SqliteOptions::Sync::kNormal);
  EXPECT_EQ(settings->store_postgres, "");
}

TEST_F(FlagsTest, TheStoreMayBeAPostgresDatabase) {
  for (const char* uri : {"postgres://weft@db/weft",
                          "postgresql://weft@db:5432/weft?sslmode=require"}) {
    env_["WEFT_STORE"] = uri;
    FlagSources sources;
    ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
    absl::StatusOr<Settings> settings = SettingsFromFlags(sources, "1");
    ASSERT_TRUE(settings.ok()) << settings.status();
    EXPECT_EQ(settings->store_postgres, uri);
    EXPECT_EQ(settings->store_path, "");
  }
}

TEST_F(FlagsTest, ReplicasShareAPostgresStoreUnderALeaseOfASecondOrMore) {
  env_["WEFT_STORE"] = "postgres://weft@db/weft";
  env_["WEFT_REPLICAS"] = "true";
  env_["WEFT_REPLICA_ID"] = "weftd-2";
  env_["WEFT_LEASE_DURATION"] = "3s";
  env_["WEFT_STORE_POOL_SIZE"] = "8";
  {
    FlagSources sources;
    ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
    absl::StatusOr<Settings> settings = SettingsFromFlags(sources, "1");
    ASSERT_TRUE(settings.ok()) << settings.status();
    EXPECT_TRUE(settings->postgres.replicas);
    EXPECT_EQ(settings->postgres.replica_id, "weftd-2");
    EXPECT_EQ(settings->postgres.lease_duration, absl::Seconds(3));
    EXPECT_EQ(settings->postgres.pool_size, 8);
  }
  env_["WEFT_LEASE_DURATION"] = "500ms";
  ExpectRefusal("WEFT_LEASE_DURATION (--lease_duration): 500ms is too short");
  env_["WEFT_LEASE_DURATION"] = "5s";
  env_["WEFT_STORE_POOL_SIZE"] = "0";
  ExpectRefusal(
      "WEFT_STORE_POOL_SIZE (--store_pool_size): 0 is not between 1 and 64");
  env_["WEFT_STORE_POOL_SIZE"] = "4";
  env_["WEFT_STORE"] = "sqlite:/var/lib/weft/weft.db";
  ExpectRefusal(
      "WEFT_REPLICAS (--replicas) needs a PostgreSQL store the replicas share");
}

TEST_F(FlagsTest, AStoreThatIsNotOneIsRefusedNamingWhereItCameFrom) {
  for (const char* bad : {"sqlite:", "mysql://db/weft", "disk"}) {
    env_["WEFT_STORE"] = bad;
    FlagSources sources;
    ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
    EXPECT_THAT(
        SettingsFromFlags(sources, "1"),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 HasSubstr("WEFT_STORE (--store): \"" + std::string(bad) +
                           "\" is not a store; write \"memory\", "
                           "\"sqlite:PATH\" or \"postgres://USER@HOST/DB\"")));
  }
  // Not quoted with its password.
  env_["WEFT_STORE"] = "pg://weft:hunter2@db/weft";
  FlagSources with_password;
  ASSERT_TRUE(with_password.ApplyEnvironment(FakeGetenv).ok());
  absl::Status refused = SettingsFromFlags(with_password, "1").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), Not(HasSubstr("hunter2")));
  env_["WEFT_STORE"] = "memory";
  env_["WEFT_STORE_SYNC"] = "always";
  FlagSources sources;
  ASSERT_TRUE(sources.ApplyEnvironment(FakeGetenv).ok());
  EXPECT_THAT(SettingsFromFlags(sources, "1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("WEFT_STORE_SYNC (--store_sync): \"always\" "
                                 "is not a sync setting")));
}

}  // namespace
}  // namespace weft::weftd
