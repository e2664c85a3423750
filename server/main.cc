// weftd: flags, wiring, signals. The only place that knows everything.

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
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
#include "server/handlers/duration.h"
#include "server/service/config.h"
#include "server/service/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on, host:port; port 0 picks a free port.");
ABSL_FLAG(absl::Duration, max_run_duration, absl::Minutes(10),
          "Longest a Run may take when its caller set no deadline.");
ABSL_FLAG(int, max_plan_nodes, 10'000, "Most nodes a plan may have.");
ABSL_FLAG(int, max_plan_depth, 32, "Deepest a plan may nest (1 to 256).");
ABSL_FLAG(int, max_message_bytes, 4 << 20,
          "Largest request accepted, in bytes.");
ABSL_FLAG(int, max_outcome_bytes, 64 << 20,
          "Largest outcome a Run returns, in bytes; larger ones get "
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
ABSL_FLAG(std::string, http_proxy, "",
          "Send every http call through this proxy (http://host:port). The "
          "*_proxy environment variables are always ignored.");

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

// Every flag defined in this file; each can also be set by WEFT_<NAME> in
// the environment.
std::vector<absl::CommandLineFlag*> OurFlags() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), "server/main.cc"))
      flags.push_back(flag);
  }
  return flags;
}

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "weftd: " << message << "\n";
  std::exit(2);
}

// Sets flags from WEFT_* variables; the command line, parsed after, wins.
void ApplyEnvironment() {
  for (absl::CommandLineFlag* flag : OurFlags()) {
    std::string var = "WEFT_";
    for (char c : flag->Name()) var += static_cast<char>(std::toupper(c));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      Die(absl::StrCat(var, "=", value, ": ", error));
    }
  }
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

// The --config path, read before the flags are parsed (the file sets
// flags, which the environment and then the command line override).
std::string ConfigPath(int argc, char** argv) {
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

// Sets the flags the config file gives.
weft::v1::ServerConfig ApplyConfig(const std::string& path) {
  absl::StatusOr<weft::v1::ServerConfig> config =
      weft::service::LoadConfig(path);
  if (!config.ok()) Die(absl::StrCat("--config ", config.status().message()));
  for (const auto& [name, value] : weft::service::ConfigFlags(*config)) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error = "no such flag";
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      Die(absl::StrCat("--config ", path, ": ", name, ": ", error));
    }
  }
  return *std::move(config);
}

void CheckPositive(const char* name, int value) {
  if (value <= 0)
    Die(absl::StrCat("--", name, " must be positive, got ", value));
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "weftd: runs plans of concurrent work over gRPC.\n"
      "Every flag can also be set as WEFT_<FLAG> in the environment; the "
      "command line wins.");
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC
  // takes several per call) would also maintain a lock-order graph for
  // deadlock detection: a few percent of weftd's time under load, for checks
  // meant for debug builds. Our own locks are engine::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string config_path = ConfigPath(argc, argv);
  weft::v1::ServerConfig config;
  if (!config_path.empty()) config = ApplyConfig(config_path);
  ApplyEnvironment();
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    Die(absl::StrCat("unexpected argument \"", rest[1], "\""));
  }
  if (absl::GetFlag(FLAGS_malloc_tuning)) MaybeRestartWithMallocTunables(argv);

  weft::service::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.event_loop_threads = absl::GetFlag(FLAGS_event_loop_threads);
  absl::StatusOr<std::vector<weft::plan::PoolSpec>> pools =
      weft::plan::ParsePoolSpecs(absl::GetFlag(FLAGS_pools));
  if (!pools.ok()) Die(std::string(pools.status().message()));
  options.pools = *std::move(pools);
  auto& orch = options.orchestrator;
  orch.limits.max_plan_nodes = absl::GetFlag(FLAGS_max_plan_nodes);
  orch.limits.max_plan_depth = absl::GetFlag(FLAGS_max_plan_depth);
  orch.max_active_runs = absl::GetFlag(FLAGS_max_active_runs);
  orch.max_outcome_bytes = absl::GetFlag(FLAGS_max_outcome_bytes);
  orch.version = WEFT_VERSION;
  auto& tasks = options.tasks;
  tasks.max_running_tasks = absl::GetFlag(FLAGS_max_running_tasks);
  tasks.max_queued_tasks = absl::GetFlag(FLAGS_max_queued_tasks);
  tasks.task_retention = absl::GetFlag(FLAGS_task_retention);
  tasks.max_retained_tasks = absl::GetFlag(FLAGS_max_retained_tasks);
  tasks.max_task_duration = absl::GetFlag(FLAGS_max_task_duration);
  orch.max_run_duration = absl::GetFlag(FLAGS_max_run_duration);
  options.lazies.compute_timeout = absl::GetFlag(FLAGS_lazy_compute_timeout);
  options.lazies.max_values = absl::GetFlag(FLAGS_max_lazy_values);
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  absl::StatusOr<weft::handlers::AllowList> allow =
      weft::handlers::AllowList::Parse(absl::GetFlag(FLAGS_http_allow));
  if (!allow.ok()) {
    Die(absl::StrCat("--http_allow: ", allow.status().message()));
  }
  options.http.allow = *std::move(allow);
  options.http.proxy = absl::GetFlag(FLAGS_http_proxy);

  CheckPositive("max_plan_nodes", orch.limits.max_plan_nodes);
  CheckPositive("max_plan_depth", orch.limits.max_plan_depth);
  if (orch.limits.max_plan_depth > 256) {
    Die(absl::StrCat("--max_plan_depth must be at most 256, got ",
                     orch.limits.max_plan_depth));
  }
  CheckPositive("max_message_bytes", options.max_message_bytes);
  CheckPositive("max_active_runs", orch.max_active_runs);
  CheckPositive("max_outcome_bytes", orch.max_outcome_bytes);
  CheckPositive("max_running_tasks", tasks.max_running_tasks);
  if (tasks.max_queued_tasks < 0)
    Die("--max_queued_tasks must not be negative");
  CheckPositive("max_retained_tasks", tasks.max_retained_tasks);
  CheckPositive("max_lazy_values", options.lazies.max_values);
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"task_retention",
                                               tasks.task_retention},
        {"max_task_duration", tasks.max_task_duration},
        {"lazy_compute_timeout", options.lazies.compute_timeout}}) {
    if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
      Die(absl::StrCat("--", name, " must be positive and finite"));
    }
  }
  CheckPositive("event_loop_threads", options.event_loop_threads);
  if (orch.max_run_duration <= absl::ZeroDuration()) {
    Die("--max_run_duration must be positive");
  }
  if (grace < absl::ZeroDuration())
    Die("--shutdown_grace must not be negative");

  RaiseOpenFileLimit();

  if (absl::GetFlag(FLAGS_malloc_tuning)) {
    // Keep freed memory for the next run instead of handing it back to the
    // kernel and faulting it in again. The price: after a burst, RSS stays
    // near its peak.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }

  // Block the stop signals in every thread; this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  weft::service::WeftServer server(options);
  if (absl::Status s = server.DeclareLazyValues(config); !s.ok()) {
    Die(absl::StrCat("--config ", config_path, ": ", s.message()));
  }
  absl::StatusOr<std::string> address = server.Start();
  if (!address.ok()) Die(std::string(address.status().message()));

  std::cerr << "weftd " << WEFT_VERSION << ": serving on " << *address
            << " (max_active_runs=" << orch.max_active_runs
            << " max_plan_nodes=" << orch.limits.max_plan_nodes
            << " max_plan_depth=" << orch.limits.max_plan_depth
            << " max_message_bytes=" << options.max_message_bytes
            << " max_outcome_bytes=" << orch.max_outcome_bytes
            << " max_run_duration="
            << weft::handlers::FormatJsonDuration(orch.max_run_duration)
            << " shutdown_grace=" << weft::handlers::FormatJsonDuration(grace)
            << " event_loop_threads=" << options.event_loop_threads
            << " pools=" << absl::GetFlag(FLAGS_pools) << " http_allow="
            << (options.http.allow.empty() ? "(nothing)"
                                           : options.http.allow.text())
            << " lazy_values=" << config.lazy_values_size() << ")" << std::endl;
  std::cout << "listening on " << *address << std::endl;

  int signal = 0;
  sigwait(&stop_signals, &signal);
  // A second signal during the grace period cuts it short.
  std::atomic<bool> stopped{false};
  std::thread impatient([&] {
    int again = 0;
    sigwait(&stop_signals, &again);
    if (!stopped.load()) server.EndGracePeriod();
  });
  const weft::service::ShutdownReport report = server.Shutdown(grace);
  stopped.store(true);
  pthread_kill(impatient.native_handle(), SIGTERM);
  impatient.join();
  std::cerr << "weftd: stopped on "
            << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << "; "
            << report.runs_in_flight << " run(s) were in flight, "
            << report.runs_cancelled << " cancelled; " << report.tasks_running
            << " task(s) were running, " << report.tasks_cancelled
            << " cancelled; when the "
            << weft::handlers::FormatJsonDuration(grace) << " grace period "
            << (report.grace_cut_short ? "was cut short by a second signal"
                                       : "ended")
            << std::endl;
  return 0;
}
