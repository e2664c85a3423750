#include "server/weftd/flags.h"

#include <cctype>
#include <cstdlib>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/flag_help.h"
#include "server/common/text.h"
#include "server/handlers/allow_list.h"
#include "server/plan/compiler.h"
#include "server/plan/pools.h"
#include "server/store/postgres.h"
#include "server/weftd/config.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on: host:port (an IPv6 host in brackets, "
          "[::1]:50051), or unix:PATH; port 0 picks a free port.");
ABSL_FLAG(absl::Duration, max_run_duration, absl::Minutes(10),
          "Longest a Run may take when its caller set no deadline.");
ABSL_FLAG(int, max_plan_nodes, 10'000,
          "Most nodes a plan may have (1 to 1000000).");
ABSL_FLAG(int, max_map_items, 10'000,
          "Most items a map may run its child for, checked when it starts "
          "(0 to 1000000); the nodes its children add count against "
          "--max_plan_nodes.");
ABSL_FLAG(int, max_plan_depth, 16,
          "Deepest a plan may nest, a single call being 1 (1 to 41; with "
          "--max_value_depth, 2 * max_plan_depth + 3 * max_value_depth at "
          "most 85, so that every client can parse weftd's answers).");
ABSL_FLAG(int, max_value_depth, 16,
          "Levels of lists and objects a value may have: in args, returned by "
          "a call, and a parallel's or sequence's value, which adds a level "
          "around its children's (1 to 27; see --max_plan_depth).");
ABSL_FLAG(int, max_message_bytes, 4 << 20,
          "Largest request accepted, in bytes (1 KiB to 1 GiB).");
ABSL_FLAG(int, max_outcome_bytes, 4'000'000,
          "The largest answer carrying outcomes, plans or values, in bytes; "
          "the default stays within the 4 MiB gRPC clients accept. A run, "
          "task or lazy computation whose values pass it stops, its outcome "
          "the root FAILED with RESOURCE_EXHAUSTED; a larger answer is "
          "refused with RESOURCE_EXHAUSTED; a page of ListTasks or "
          "ListLazyValues ends before it (1 KiB to 1 GiB).");
ABSL_FLAG(int64_t, max_inflight_bytes, int64_t{512} << 20,
          "The memory that runs, running tasks and lazy computations in "
          "flight, HTTP bodies being received and answers being sent may "
          "hold together; what would pass it is refused with "
          "RESOURCE_EXHAUSTED (retry later).");
ABSL_FLAG(int64_t, plan_cache_bytes, int64_t{16} << 20,
          "The memory Run's compiled plans, kept by the bytes of their "
          "request so that the same request again is not parsed and "
          "compiled again, may take (0 to 1 GiB; 0 keeps none). Plans with "
          "$secret objects and requests over 64 KiB are not kept.");
ABSL_FLAG(int64_t, max_retained_task_bytes, int64_t{256} << 20,
          "The memory every task held (queued, running or finished: its plan "
          "and outcome) may take together; the oldest finished tasks are "
          "forgotten early to make room, and CreateTask is refused with "
          "RESOURCE_EXHAUSTED when live tasks fill it.");
ABSL_FLAG(int64_t, max_lazy_bytes, int64_t{128} << 20,
          "The memory lazy values may take together, definitions and cached "
          "values; a definition or a value that does not fit is refused with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_active_runs, 1000,
          "Runs in flight at once; beyond it Run gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM or SIGINT, how long runs in flight may go on before "
          "they are cancelled; a second signal ends it at once.");
ABSL_FLAG(std::string, pools, "default=2:1000",
          "Thread pools for offload nodes and blocking handlers, as "
          "name=threads:queue,...; must include default.");
ABSL_FLAG(int, max_running_tasks, 100,
          "Background tasks running at once; others wait in QUEUED.");
ABSL_FLAG(int, max_queued_tasks, 10'000,
          "Background tasks waiting at once; beyond it CreateTask gets "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_running_tasks_per_principal, 25,
          "With --auth_tokens: one principal's background tasks running at "
          "once; its others wait in QUEUED while other principals' start.");
ABSL_FLAG(int, max_queued_tasks_per_principal, 1000,
          "With --auth_tokens: one principal's background tasks waiting; "
          "beyond it that principal's CreateTask gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_runs_per_principal, 250,
          "With --auth_tokens: one principal's Run calls in flight; beyond "
          "it that principal's Run gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, task_retention, absl::Hours(1),
          "How long finished tasks are kept.");
ABSL_FLAG(int, max_retained_tasks, 10'000,
          "Most finished tasks kept; the oldest finished go first.");
ABSL_FLAG(absl::Duration, lazy_compute_timeout, absl::Minutes(10),
          "Longest one computation of a lazy value may run (its plan's own "
          "timeout may be shorter); it then fails with DEADLINE_EXCEEDED.");
ABSL_FLAG(int, max_lazy_values, 10'000,
          "Most lazy values that may exist; beyond it CreateLazyValue gets "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, max_task_duration, absl::Hours(24),
          "Longest a background task may run; it then ends TIMED_OUT.");
ABSL_FLAG(std::string, store, "memory",
          "Where background tasks are kept: \"memory\" (lost when weftd "
          "exits); \"sqlite:PATH\", an SQLite file that keeps accepted "
          "tasks across restarts and crashes and resumes unfinished ones; or "
          "\"postgres://USER@HOST/DB?...\" (a libpq connection URI; the "
          "password best in ~/.pgpass or PGPASSWORD), a PostgreSQL database "
          "that does the same, for one weftd or, with --replicas, several.");
ABSL_FLAG(bool, replicas, false,
          "With --store=postgres://...: this weftd is one of several "
          "replicas sharing the database. Each owns the tasks it accepted "
          "and renews a lease on them; any replica reads every task; when a "
          "replica's lease ends, another adopts its tasks and resumes them "
          "from their journal (docs/operations.md, \"Replicas\").");
ABSL_FLAG(std::string, replica_id, "",
          "With --replicas: this replica's name in the database (default: "
          "the host's name). Restarted under its name, a replica takes its "
          "tasks back at once; two running under one name are refused.");
ABSL_FLAG(absl::Duration, lease_duration, absl::Seconds(5),
          "With --replicas: how long a replica's lease lasts unless renewed "
          "(every third of it). A replica that cannot renew in time stops "
          "(exits) and another adopts its tasks; longer rides out database "
          "hiccups, shorter adopts sooner. At least 1s.");
ABSL_FLAG(int, store_pool_size, 4,
          "With --replicas: the connections a replica reads the database "
          "through (GetTask, ListTasks and adoption), besides one for "
          "writes, one for its lease and one it listens on for NOTIFY.");
ABSL_FLAG(std::string, store_sync, "full",
          "With --store=sqlite:PATH: \"full\", a task acknowledged to its "
          "creator survives a power loss; or \"normal\", it survives a "
          "crash of weftd (kill -9) but the last ones before a power loss "
          "may be lost.");
ABSL_FLAG(std::string, config, "",
          "A config file: JSON of weft.v1.ServerConfig (proto/weft/v1/"
          "config.proto), which can set every flag, define pools and declare "
          "lazy values; flags and WEFT_* variables override it.");
ABSL_FLAG(bool, malloc_tuning, true,
          "Tune glibc's malloc for weft's many small allocations: transparent "
          "huge pages, one arena with large per-thread caches, freed memory "
          "kept for reuse. Tunables can only be set at start, so weftd "
          "restarts itself once with GLIBC_TUNABLES set (any given there "
          "already are kept).");
ABSL_FLAG(int, event_loop_threads, 2,
          "Threads of the engine's event loop (timers and completions).");
ABSL_FLAG(std::string, http_allow, "",
          "Where the http handler may connect, comma-separated: host names "
          "(api.example.com), host:port, *.suffix, addresses (10.1.2.3, "
          "[::1]:8080) and CIDR ranges (10.0.0.0/8). Checked on the address "
          "each connection is about to use. Empty: every http call is "
          "refused.");
ABSL_FLAG(int, http_max_connections_per_host, 0,
          "Connections the http handler opens at once to one host and port; "
          "calls beyond wait for a free one. 0: no limit.");
ABSL_FLAG(std::string, http_proxy, "",
          "Send every http call through this proxy (http://host:port). The "
          "*_proxy environment variables are always ignored.");

ABSL_FLAG(std::string, tls_cert, "",
          "Serve TLS with this certificate chain (PEM, leaf first); needs "
          "--tls_key. Read again on SIGHUP. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key, "",
          "The private key (PEM, unencrypted) of --tls_cert. Read again on "
          "SIGHUP.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "Mutual TLS: CA certificates (PEM) that every client certificate "
          "must chain to; every connection, health checks included, then "
          "needs one. Read again on SIGHUP. Needs --tls_cert.");
ABSL_FLAG(std::string, access_log, "",
          "One JSON line per RPC (time, method, principal, peer, code, "
          "reason, duration, task or lazy value, trace id): - for stderr, "
          "or a file, appended to and opened again on SIGHUP. Empty: off.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus metrics on (GET /metrics, plain "
          "HTTP); empty: off.");
ABSL_FLAG(std::string, secrets, "",
          "A JSON file of secrets, {\"secrets\": {\"NAME\": \"value\"}}: "
          "{\"$secret\": \"NAME\"} in a call's args is replaced by the "
          "value when the call starts, never stored or returned. Read again "
          "on SIGHUP.");
ABSL_FLAG(std::string, auth_tokens, "",
          "Callers: a JSON file of weft.v1.AuthTokens naming principals, "
          "each with a role (admin or user) and the SHA-256 of its bearer "
          "token or its client certificate's subject. Every RPC but health "
          "and reflection then needs one (UNAUTHENTICATED otherwise). Read "
          "again on SIGHUP; a bad file then keeps the one in force. Empty: "
          "no auth, every caller is an admin.");

namespace weft::weftd {

std::vector<absl::CommandLineFlag*> WeftdFlags() {
  return common::FlagsDefinedIn({"server/"});
}

std::string EnvironmentVariable(absl::string_view flag) {
  std::string var = "WEFT_";
  for (char c : flag) var += static_cast<char>(std::toupper(c));
  return var;
}

std::string FlagSources::Describe(const std::string& flag) const {
  auto it = sources_.find(flag);
  if (it == sources_.end()) return absl::StrCat("--", flag);
  return absl::StrCat(it->second, " (--", flag, ")");
}

std::string FlagSources::ConfigPath(int argc, char** argv) {
  const char* env = std::getenv("WEFT_CONFIG");
  std::string path = env != nullptr ? env : "";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if ((arg == "--config" || arg == "-config") && i + 1 < argc) {
      path = argv[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      path = arg.substr(sizeof("--config=") - 1);
    } else if (absl::StartsWith(arg, "-config=")) {
      path = arg.substr(sizeof("-config=") - 1);
    }
  }
  return path;
}

absl::StatusOr<weft::v1::ServerConfig> FlagSources::ApplyConfig(
    const std::string& path) {
  absl::StatusOr<weft::v1::ServerConfig> config = LoadConfig(path);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--config ", config.status().message()));
  }
  for (const auto& [name, value] : ConfigFlags(*config)) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    const std::string field = ConfigFieldName(name);
    std::string error = "no such flag";
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", path, ": ", field, ": ", error));
    }
    sources_[name] = absl::StrCat(field, " in ", path);
  }
  return config;
}

absl::Status FlagSources::ApplyEnvironment(const char* (*getenv)(const char*)) {
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    const std::string var = EnvironmentVariable(flag->Name());
    const char* value = getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          var, " (--", flag->Name(), "): ", common::Abbreviate(error, 200)));
    }
    sources_[std::string(flag->Name())] = var;
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> FlagSources::Snapshot() {
  std::map<std::string, std::string> values;
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    values[std::string(flag->Name())] = flag->CurrentValue();
  }
  return values;
}

absl::Status FlagSources::Check(
    const std::map<std::string, std::string>& before) {
  for (absl::CommandLineFlag* flag : WeftdFlags()) {
    const std::string name(flag->Name());
    auto was = before.find(name);
    if (was == before.end() || was->second != flag->CurrentValue()) {
      sources_.erase(name);
    }
    if (absl::Status s = CheckFlagValue(name, flag->CurrentValue()); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(name), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Settings> SettingsFromFlags(const FlagSources& sources,
                                           absl::string_view version) {
  Settings settings;
  ServerOptions& options = settings.server;
  absl::StatusOr<std::string> listen =
      ParseListenAddress(absl::GetFlag(FLAGS_listen));
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        sources.Describe("listen"), ": ", listen.status().message()));
  }
  options.listen = absl::GetFlag(FLAGS_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  options.event_loop_threads = absl::GetFlag(FLAGS_event_loop_threads);
  settings.pools_text = absl::GetFlag(FLAGS_pools);
  absl::StatusOr<std::vector<plan::PoolSpec>> pools =
      plan::ParsePoolSpecs(settings.pools_text);
  if (!pools.ok()) return pools.status();
  options.pools = *std::move(pools);
  auto& orch = options.orchestrator;
  orch.limits.max_plan_nodes = absl::GetFlag(FLAGS_max_plan_nodes);
  orch.limits.max_plan_depth = absl::GetFlag(FLAGS_max_plan_depth);
  orch.limits.max_value_depth = absl::GetFlag(FLAGS_max_value_depth);
  orch.limits.max_map_items = absl::GetFlag(FLAGS_max_map_items);
  if (absl::Status s = plan::CheckLimits(orch.limits); !s.ok()) return s;
  orch.max_active_runs = absl::GetFlag(FLAGS_max_active_runs);
  orch.max_runs_per_principal = absl::GetFlag(FLAGS_max_runs_per_principal);
  orch.max_outcome_bytes = absl::GetFlag(FLAGS_max_outcome_bytes);
  orch.plan_cache_bytes = absl::GetFlag(FLAGS_plan_cache_bytes);
  orch.max_run_duration = absl::GetFlag(FLAGS_max_run_duration);
  orch.version = std::string(version);
  auto& tasks = options.tasks;
  tasks.max_running_tasks = absl::GetFlag(FLAGS_max_running_tasks);
  tasks.max_queued_tasks = absl::GetFlag(FLAGS_max_queued_tasks);
  tasks.max_running_per_principal =
      absl::GetFlag(FLAGS_max_running_tasks_per_principal);
  tasks.max_queued_per_principal =
      absl::GetFlag(FLAGS_max_queued_tasks_per_principal);
  tasks.task_retention = absl::GetFlag(FLAGS_task_retention);
  tasks.max_retained_tasks = absl::GetFlag(FLAGS_max_retained_tasks);
  tasks.max_task_duration = absl::GetFlag(FLAGS_max_task_duration);
  tasks.max_outcome_bytes = orch.max_outcome_bytes;
  tasks.max_retained_bytes = absl::GetFlag(FLAGS_max_retained_task_bytes);
  options.lazies.compute_timeout = absl::GetFlag(FLAGS_lazy_compute_timeout);
  options.lazies.max_values = absl::GetFlag(FLAGS_max_lazy_values);
  options.lazies.max_value_bytes = orch.max_outcome_bytes;
  options.lazies.max_bytes = absl::GetFlag(FLAGS_max_lazy_bytes);
  absl::StatusOr<handlers::AllowList> allow =
      handlers::AllowList::Parse(absl::GetFlag(FLAGS_http_allow));
  if (!allow.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_allow: ", allow.status().message()));
  }
  options.http.allow = *std::move(allow);
  options.http.proxy = absl::GetFlag(FLAGS_http_proxy);
  options.http.max_connections_per_host =
      absl::GetFlag(FLAGS_http_max_connections_per_host);
  const std::string store = absl::GetFlag(FLAGS_store);
  if (absl::StartsWith(store, "sqlite:") && store.size() > 7) {
    settings.store_path = store.substr(7);
  } else if ((absl::StartsWith(store, "postgres://") ||
              absl::StartsWith(store, "postgresql://"))) {
    settings.store_postgres = store;
  } else if (store != "memory") {
    // Quoted without a password it may hold.
    return absl::InvalidArgumentError(
        absl::StrCat(sources.Describe("store"), ": ",
                     common::Quote(store::pg::RedactConninfo(store)),
                     " is not a store; write \"memory\", \"sqlite:PATH\" or "
                     "\"postgres://USER@HOST/DB\""));
  }
  settings.postgres.replicas = absl::GetFlag(FLAGS_replicas);
  settings.postgres.replica_id = absl::GetFlag(FLAGS_replica_id);
  settings.postgres.lease_duration = absl::GetFlag(FLAGS_lease_duration);
  settings.postgres.pool_size = absl::GetFlag(FLAGS_store_pool_size);
  if (settings.postgres.replicas && settings.store_postgres.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(sources.Describe("replicas"),
                     " needs a PostgreSQL store the replicas share "
                     "(--store=postgres://USER@HOST/DB)"));
  }
  if (settings.postgres.lease_duration < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        sources.Describe("lease_duration"), ": ",
        absl::FormatDuration(settings.postgres.lease_duration),
        " is too short; a lease lasts at least 1s (it is renewed every "
        "third of it)"));
  }
  if (settings.postgres.pool_size < 1 || settings.postgres.pool_size > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(sources.Describe("store_pool_size"), ": ",
                     settings.postgres.pool_size, " is not between 1 and 64"));
  }
  const std::string sync = absl::GetFlag(FLAGS_store_sync);
  if (sync == "full") {
    settings.store_sync = store::SqliteOptions::Sync::kFull;
  } else if (sync == "normal") {
    settings.store_sync = store::SqliteOptions::Sync::kNormal;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(sources.Describe("store_sync"), ": ", common::Quote(sync),
                     " is not a sync setting; write \"full\" or \"normal\""));
  }
  settings.tls.cert = absl::GetFlag(FLAGS_tls_cert);
  settings.tls.key = absl::GetFlag(FLAGS_tls_key);
  settings.tls.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (settings.tls.cert.empty() != settings.tls.key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        sources.Describe(settings.tls.cert.empty() ? "tls_key" : "tls_cert"),
        " is set without ",
        settings.tls.cert.empty() ? "--tls_cert" : "--tls_key",
        ": TLS needs both the certificate and its key"));
  }
  if (!settings.tls.client_ca.empty() && settings.tls.cert.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(sources.Describe("tls_client_ca"),
                     " is set without --tls_cert: mutual TLS needs the "
                     "server's own certificate and key too"));
  }
  settings.auth_tokens = absl::GetFlag(FLAGS_auth_tokens);
  settings.secrets = absl::GetFlag(FLAGS_secrets);
  settings.access_log = absl::GetFlag(FLAGS_access_log);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  settings.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  settings.malloc_tuning = absl::GetFlag(FLAGS_malloc_tuning);
  return settings;
}

}  // namespace weft::weftd
