// weftd: flags, wiring, signals. The only place that knows everything.

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/duration.h"
#include "server/common/flag_help.h"
#include "server/common/text.h"
#include "server/store/postgres.h"
#include "server/store/postgres_task_store.h"
#include "server/weftd/config.h"
#include "server/weftd/flags.h"
#include "server/weftd/log.h"
#include "server/weftd/replica.h"
#include "server/weftd/server.h"
#include "server/weftd/tls.h"

namespace {

// Every http call in flight holds a socket, and so does every client: raise
// the soft limit on open files to the hard one (often 1,024 of 524,288).
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "weftd: " << message << "\n";
  std::exit(2);
}

// Restarts this process once with glibc's malloc tunables set, keeping any
// the environment already gives: transparent huge pages for the heap (a page
// fault costs microseconds on this kind of VM, and large plans touch a lot
// of memory), one arena so that memory freed by one run serves the next
// whatever thread it lands on, and large per-thread caches so that one arena
// costs no throughput. Failing to restart is harmless.
void MaybeRestartWithMallocTunables(char** argv) {
  const std::string given = std::getenv("GLIBC_TUNABLES") != nullptr
                                ? std::getenv("GLIBC_TUNABLES")
                                : "";
  std::string tunables = given;
  for (const char* t : {"glibc.malloc.hugetlb=1", "glibc.malloc.arena_max=1",
                        "glibc.malloc.tcache_count=2000"}) {
    const std::string name(t, std::string(t).find('='));
    if (given.find(name) != std::string::npos) continue;
    if (!tunables.empty()) tunables += ':';
    tunables += t;
  }
  if (tunables == given) return;
  setenv("GLIBC_TUNABLES", tunables.c_str(), 1);
  execv("/proc/self/exe", argv);
}

// Ends the process if shutting down takes longer than it may: the grace
// period and a small bound for cancelling, or a few seconds after a second
// signal. Whatever a handler or a library is doing, weftd then stops.
class ShutdownWatchdog {
 public:
  explicit ShutdownWatchdog(absl::Duration grace)
      : deadline_(absl::Now() + grace + kCancelBound),
        thread_([this] { Watch(); }) {}
  ~ShutdownWatchdog() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }

  // A second signal: stop soon, whatever the grace period said.
  void Hurry() {
    absl::MutexLock lock(&mu_);
    deadline_ = std::min(deadline_, absl::Now() + kAfterSecondSignal);
  }

 private:
  // How long cancelling what runs may take once the grace period is over.
  static constexpr absl::Duration kCancelBound = absl::Seconds(10);
  static constexpr absl::Duration kAfterSecondSignal = absl::Seconds(5);

  void Watch() {
    absl::MutexLock lock(&mu_);
    while (!done_) {
      if (absl::Now() >= deadline_) {
        std::cerr << "weftd: shutting down took too long; stopping now"
                  << std::endl;
        _exit(1);
      }
      mu_.AwaitWithDeadline(
          absl::Condition(&done_),
          std::min(deadline_, absl::Now() + absl::Seconds(1)));
    }
  }

  absl::Mutex mu_;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// On SIGHUP: reads the file of --`flag` (`path`) again with `load` and puts
// the table in `holder` (auth::Callers, plan::Secrets); a bad file keeps the
// one in force. Says which on `line`.
template <typename Load, typename Holder>
void ReloadTable(absl::string_view flag, const std::string& path,
                 absl::string_view items, Load load, Holder& holder,
                 std::string* line) {
  auto table = load(path);
  if (table.ok()) {
    absl::StrAppend(line, " read --", flag, " again (", (*table)->size(), " ",
                    items, ");");
    holder.Replace(*std::move(table));
  } else {
    absl::StrAppend(line, " --", flag, " ", table.status().message(), "; the ",
                    items, " in force stay;");
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "weftd [--flag=value ...]: runs plans of concurrent work over gRPC.\n"
      "Every flag can also be set as WEFT_<FLAG> in the environment or in a "
      "--config file; the command line wins over the environment, the "
      "environment over the file.");
  if (weft::common::AskedForHelp(argc, argv)) {
    weft::common::PrintHelp(std::cout, {"server/"});
    return 0;
  }
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC
  // takes several per call) would also maintain a lock-order graph for
  // deadlock detection: a few percent of weftd's time under load, for checks
  // meant for debug builds. Our own locks are engine::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  weft::weftd::FlagSources sources;
  const std::string config_path =
      weft::weftd::FlagSources::ConfigPath(argc, argv);
  weft::v1::ServerConfig config;
  if (!config_path.empty()) {
    absl::StatusOr<weft::v1::ServerConfig> read =
        sources.ApplyConfig(config_path);
    if (!read.ok()) Die(std::string(read.status().message()));
    config = *std::move(read);
  }
  if (absl::Status s = sources.ApplyEnvironment(
          [](const char* name) -> const char* { return std::getenv(name); });
      !s.ok()) {
    Die(std::string(s.message()));
  }
  const std::map<std::string, std::string> before =
      weft::weftd::FlagSources::Snapshot();
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    Die(absl::StrCat("unexpected argument ", weft::common::Quote(rest[1])));
  }
  if (absl::Status s = sources.Check(before); !s.ok()) {
    Die(std::string(s.message()));
  }
  absl::StatusOr<weft::weftd::Settings> settings =
      weft::weftd::SettingsFromFlags(sources, WEFT_VERSION);
  if (!settings.ok()) Die(std::string(settings.status().message()));
  if (settings->malloc_tuning) MaybeRestartWithMallocTunables(argv);
  const weft::weftd::ServerOptions& options = settings->server;
  const auto& orch = options.orchestrator;
  const absl::Duration grace = settings->shutdown_grace;

  RaiseOpenFileLimit();

  if (settings->malloc_tuning) {
    // Keep freed memory for the next run instead of handing it back to the
    // kernel and faulting it in again. The price: after a burst, RSS stays
    // near its peak.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }

  // Block the stop signals and SIGHUP (read the files again) in every
  // thread; this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t signals = stop_signals;
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // protobuf and gRPC complain about bad requests on their own: rate-limit
  // them, since any caller can send one.
  weft::weftd::InstallLibraryLogs();

  weft::weftd::ServerOptions server_options = options;
  std::unique_ptr<weft::weftd::TlsFiles> tls;
  if (!settings->tls.cert.empty()) {
    absl::StatusOr<std::unique_ptr<weft::weftd::TlsFiles>> opened =
        weft::weftd::TlsFiles::Open(settings->tls);
    if (!opened.ok()) Die(std::string(opened.status().message()));
    tls = *std::move(opened);
    server_options.credentials = tls->Credentials();
  }
  if (!settings->auth_tokens.empty()) {
    absl::StatusOr<std::shared_ptr<const weft::auth::PrincipalTable>> table =
        weft::weftd::LoadPrincipals(settings->auth_tokens);
    if (!table.ok()) {
      Die(absl::StrCat("--auth_tokens ", table.status().message()));
    }
    server_options.callers =
        std::make_shared<weft::auth::Callers>(*std::move(table));
  }
  std::unique_ptr<weft::weftd::AccessLog> access_log;
  if (!settings->access_log.empty()) {
    absl::StatusOr<std::unique_ptr<weft::weftd::AccessLog>> opened =
        weft::weftd::AccessLog::Open(settings->access_log);
    if (!opened.ok()) {
      Die(absl::StrCat("--access_log ", opened.status().message()));
    }
    access_log = *std::move(opened);
    server_options.access_log = access_log.get();
  }
  if (!settings->secrets.empty()) {
    absl::StatusOr<std::shared_ptr<const weft::plan::SecretTable>> table =
        weft::weftd::LoadSecrets(settings->secrets);
    if (!table.ok()) Die(absl::StrCat("--secrets ", table.status().message()));
    server_options.secrets =
        std::make_shared<weft::plan::Secrets>(*std::move(table));
  }
  std::string store_line;
  // Where tasks are kept, for the start-up line.
  std::string store_where;
  // With --replicas: the store, for the adopter.
  weft::store::PostgresTaskStore* replica_store = nullptr;
  if (!settings->store_postgres.empty()) {
    weft::store::PostgresOptions pg_options = settings->postgres;
    if (pg_options.replicas) {
      pg_options.on_lease_lost = [] {
        // Fail-stop: another replica may be adopting this one's tasks, so
        // none of them may go on running here. A restart rejoins.
        std::cerr << "weftd: this replica lost its lease (it could not renew "
                     "it in time): stopping now, so that its tasks run only "
                     "where they are adopted; start it again to rejoin"
                  << std::endl;
        std::_Exit(3);
      };
    }
    absl::StatusOr<std::unique_ptr<weft::store::PostgresTaskStore>> store =
        weft::store::PostgresTaskStore::Open(settings->store_postgres,
                                             pg_options);
    if (!store.ok()) Die(std::string(store.status().message()));
    if (pg_options.replicas) replica_store = store->get();
    store_where = absl::StrCat(
        "PostgreSQL at ",
        weft::store::pg::RedactConninfo(settings->store_postgres),
        pg_options.replicas
            ? absl::StrCat(
                  " as replica \"", (*store)->replica_id(), "\" (generation ",
                  (*store)->generation(), ", lease ",
                  weft::common::FormatJsonDuration(pg_options.lease_duration),
                  ")")
            : "");
    server_options.task_store = *std::move(store);
  } else if (settings->store_path.empty()) {
    store_line =
        "tasks are kept in memory (--store=memory): they are lost when weftd "
        "exits; --store=sqlite:PATH or postgres://... keeps them";
  } else {
    weft::store::SqliteOptions store_options;
    store_options.sync = settings->store_sync;
    absl::StatusOr<std::unique_ptr<weft::store::SqliteTaskStore>> store =
        weft::store::SqliteTaskStore::Open(settings->store_path, store_options);
    if (!store.ok()) Die(std::string(store.status().message()));
    server_options.task_store = *std::move(store);
    store_where = absl::StrCat(
        settings->store_path, " (store_sync=",
        settings->store_sync == weft::store::SqliteOptions::Sync::kFull
            ? "full"
            : "normal",
        ")");
  }

  std::unique_ptr<weft::weftd::WeftServer> owned;
  try {
    owned = std::make_unique<weft::weftd::WeftServer>(server_options);
  } catch (const std::system_error& e) {
    // Threads (the event loop's, the pools') could not be started.
    Die(
        absl::StrCat("cannot start weftd's threads (--event_loop_threads, "
                     "--pools): ",
                     e.what()));
  }
  weft::weftd::WeftServer& server = *owned;
  if (absl::Status s = server.DeclareLazyValues(config); !s.ok()) {
    Die(absl::StrCat("--config ", config_path, ": ", s.message()));
  }
  if (!store_where.empty()) {
    for (const std::string& line : server.RestoreLazyValues()) {
      std::cerr << "weftd: " << line << std::endl;
    }
    const absl::Time began = absl::Now();
    const weft::tasks::Recovery found = server.RecoverTasks();
    store_line =
        absl::StrCat("tasks are kept in ", store_where, ": took back ",
                     found.finished, " finished, ", found.queued,
                     " queued and ", found.resumed, " running (resumed) in ",
                     weft::common::FormatJsonDuration(absl::Now() - began));
    if (found.failed > 0) {
      absl::StrAppend(&store_line, "; ", found.failed,
                      " could not run again (their plan no longer compiles) "
                      "and ended FAILED");
    }
  }
  // Replicas: tasks of replicas whose lease ended are adopted now, then
  // every half lease.
  std::unique_ptr<weft::weftd::Adopter> adopter;
  if (replica_store != nullptr) {
    adopter = std::make_unique<weft::weftd::Adopter>(
        *replica_store, server, settings->postgres.lease_duration / 2,
        [](std::string line) { std::cerr << "weftd: " << line << std::endl; });
    adopter->AdoptNow();
  }
  absl::StatusOr<std::string> address = server.Start();
  if (!address.ok()) Die(std::string(address.status().message()));

  std::cerr << "weftd " << WEFT_VERSION << ": serving on " << *address
            << " (max_active_runs=" << orch.max_active_runs
            << " max_plan_nodes=" << orch.limits.max_plan_nodes
            << " max_plan_depth=" << orch.limits.max_plan_depth
            << " max_value_depth=" << orch.limits.max_value_depth
            << " max_message_bytes=" << options.max_message_bytes
            << " max_outcome_bytes=" << orch.max_outcome_bytes
            << " max_run_duration="
            << weft::common::FormatJsonDuration(orch.max_run_duration)
            << " shutdown_grace=" << weft::common::FormatJsonDuration(grace)
            << " event_loop_threads=" << options.event_loop_threads
            << " pools=" << settings->pools_text << " http_allow="
            << (options.http.allow.empty() ? "(nothing)"
                                           : options.http.allow.text())
            << " lazy_values=" << config.lazy_values_size() << ")" << std::endl;
  std::cerr << "weftd: " << store_line << std::endl;
  std::cerr << "weftd: "
            << (tls == nullptr ? "plaintext: no --tls_cert"
                : tls->mutual()
                    ? "TLS with client certificates (--tls_client_ca)"
                    : "TLS (--tls_cert)")
            << "; "
            << (server_options.callers == nullptr
                    ? "no --auth_tokens: every caller is an admin"
                    : "callers from --auth_tokens")
            << std::endl;
  if (tls == nullptr && server_options.callers != nullptr &&
      !absl::StartsWith(*address, "unix:") &&
      !absl::StartsWith(*address, "127.") &&
      !absl::StartsWith(*address, "[::1]") &&
      !absl::StartsWith(*address, "localhost:")) {
    std::cerr << "weftd: warning: --auth_tokens without --tls_cert: bearer "
                 "tokens cross the network in the clear"
              << std::endl;
  }
  if (!server.metrics_address().empty()) {
    std::cerr << "weftd: metrics on http://" << server.metrics_address()
              << "/metrics" << std::endl;
  }
  std::cout << "listening on " << *address << std::endl;

  int signal = 0;
  for (;;) {
    sigwait(&signals, &signal);
    if (signal != SIGHUP) break;
    // Read the files again; a bad one is logged and the one in force stays.
    std::string line = "weftd: SIGHUP:";
    if (tls != nullptr) {
      absl::Status s = tls->Reload();
      absl::StrAppend(&line, s.ok() ? " read the TLS files again;"
                                    : absl::StrCat(" ", s.message(),
                                                   "; the TLS files in use "
                                                   "stay;"));
    }
    if (server_options.callers != nullptr) {
      ReloadTable("auth_tokens", settings->auth_tokens, "principals",
                  weft::weftd::LoadPrincipals, *server_options.callers, &line);
    }
    if (server_options.secrets != nullptr) {
      ReloadTable("secrets", settings->secrets, "secrets",
                  weft::weftd::LoadSecrets, *server_options.secrets, &line);
    }
    if (access_log != nullptr && access_log->path() != "-") {
      absl::Status s = access_log->Reopen();
      absl::StrAppend(&line, s.ok()
                                 ? " opened --access_log again;"
                                 : absl::StrCat(" --access_log ", s.message(),
                                                "; the file in use stays;"));
    }
    if (tls == nullptr && server_options.callers == nullptr &&
        server_options.secrets == nullptr &&
        (access_log == nullptr || access_log->path() == "-")) {
      absl::StrAppend(&line, " nothing to read again;");
    }
    line.pop_back();
    std::cerr << line << std::endl;
  }
  ShutdownWatchdog watchdog(grace);
  adopter.reset();  // Nothing is adopted once shutdown has begun.
  // A second signal during the grace period cuts it short.
  std::atomic<bool> stopped{false};
  std::thread impatient([&] {
    int again = 0;
    sigwait(&stop_signals, &again);
    if (!stopped.load()) {
      watchdog.Hurry();
      server.EndGracePeriod();
    }
  });
  const weft::weftd::ShutdownReport report = server.Shutdown(grace);
  stopped.store(true);
  pthread_kill(impatient.native_handle(), SIGTERM);
  impatient.join();
  std::cerr << "weftd: stopped on "
            << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << "; ";
  const int cut =
      report.runs_cancelled + report.tasks_cancelled + report.tasks_stopped;
  if (report.runs_in_flight == 0 && report.tasks_running == 0) {
    std::cerr << "nothing was running";
  } else {
    std::cerr << report.runs_in_flight << " run(s) were in flight and "
              << report.tasks_running << " task(s) running; ";
    if (cut == 0) {
      std::cerr << "all ended within the "
                << weft::common::FormatJsonDuration(grace) << " grace period";
    } else {
      if (report.tasks_stopped > 0) {
        std::cerr << report.runs_cancelled << " run(s) were cancelled and "
                  << report.tasks_stopped
                  << " task(s) stopped (they resume at the next start)";
      } else {
        std::cerr << report.runs_cancelled << " run(s) and "
                  << report.tasks_cancelled << " task(s) were cancelled";
      }
      std::cerr << " when the " << weft::common::FormatJsonDuration(grace)
                << " grace period "
                << (report.grace_cut_short ? "was cut short by a second signal"
                                           : "ended");
    }
  }
  if (report.tasks_kept > 0) {
    std::cerr << "; " << report.tasks_kept
              << " unfinished task(s) stay in the store for the next start";
  }
  std::cerr << std::endl;
  return 0;
}
