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
#include "client/cli.h"
#include "server/handlers/duration.h"
#include "server/handlers/text.h"
#include "server/service/config.h"
#include "server/service/log.h"
#include "server/service/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on: host:port (an IPv6 host in brackets, "
          "[::1]:50051), or unix:PATH; port 0 picks a free port.");
ABSL_FLAG(absl::Duration, max_run_duration, absl::Minutes(10),
          "Longest a Run may take when its caller set no deadline.");
ABSL_FLAG(int, max_plan_nodes, 10'000,
          "Most nodes a plan may have (1 to 1000000).");
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

// Where each flag's value came from, for error messages: the config file's
// field, a WEFT_* variable, or the command line.
std::map<std::string, std::string>& FlagSources() {
  static auto* sources = new std::map<std::string, std::string>;
  return *sources;
}

// How an error names a flag: "--name", "WEFT_NAME (--name)" or "nameInJson
// in FILE (--name)".
std::string FlagSource(const std::string& name) {
  auto it = FlagSources().find(name);
  if (it == FlagSources().end()) return absl::StrCat("--", name);
  return absl::StrCat(it->second, " (--", name, ")");
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
      Die(absl::StrCat(var, " (--", flag->Name(),
                       "): ", weft::handlers::Abbreviate(error, 200)));
    }
    FlagSources()[std::string(flag->Name())] = var;
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
    const std::string field = weft::service::ConfigFieldName(name);
    std::string error = "no such flag";
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      Die(absl::StrCat("--config ", path, ": ", field, ": ", error));
    }
    FlagSources()[name] = absl::StrCat(field, " in ", path);
  }
  return *std::move(config);
}

// Every numeric and duration flag within its range, naming where a bad
// value came from.
// `before`: the flags' values before the command line was parsed; a flag
// it changed is named as on the command line.
void CheckFlags(const std::map<std::string, std::string>& before) {
  for (absl::CommandLineFlag* flag : OurFlags()) {
    const std::string name(flag->Name());
    auto was = before.find(name);
    if (was == before.end() || was->second != flag->CurrentValue()) {
      FlagSources().erase(name);
    }
    if (absl::Status s =
            weft::service::CheckFlagValue(name, flag->CurrentValue());
        !s.ok()) {
      Die(absl::StrCat(FlagSource(name), ": ", s.message()));
    }
  }
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

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "weftd [--flag=value ...]: runs plans of concurrent work over gRPC.\n"
      "Every flag can also be set as WEFT_<FLAG> in the environment or in a "
      "--config file; the command line wins over the environment, the "
      "environment over the file.");
  if (weft::cli::AskedForHelp(argc, argv)) {
    weft::cli::PrintHelp(std::cout, {"server/main.cc"});
    return 0;
  }
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC
  // takes several per call) would also maintain a lock-order graph for
  // deadlock detection: a few percent of weftd's time under load, for checks
  // meant for debug builds. Our own locks are engine::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string config_path = ConfigPath(argc, argv);
  weft::v1::ServerConfig config;
  if (!config_path.empty()) config = ApplyConfig(config_path);
  ApplyEnvironment();
  std::map<std::string, std::string> before;
  for (absl::CommandLineFlag* flag : OurFlags()) {
    before[std::string(flag->Name())] = flag->CurrentValue();
  }
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    Die(absl::StrCat("unexpected argument ", weft::handlers::Quote(rest[1])));
  }
  CheckFlags(before);
  absl::StatusOr<std::string> listen =
      weft::service::ParseListenAddress(absl::GetFlag(FLAGS_listen));
  if (!listen.ok()) {
    Die(absl::StrCat(FlagSource("listen"), ": ", listen.status().message()));
  }
  if (absl::GetFlag(FLAGS_malloc_tuning)) MaybeRestartWithMallocTunables(argv);

  weft::service::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  options.event_loop_threads = absl::GetFlag(FLAGS_event_loop_threads);
  absl::StatusOr<std::vector<weft::plan::PoolSpec>> pools =
      weft::plan::ParsePoolSpecs(absl::GetFlag(FLAGS_pools));
  if (!pools.ok()) Die(std::string(pools.status().message()));
  options.pools = *std::move(pools);
  auto& orch = options.orchestrator;
  orch.limits.max_plan_nodes = absl::GetFlag(FLAGS_max_plan_nodes);
  orch.limits.max_plan_depth = absl::GetFlag(FLAGS_max_plan_depth);
  orch.limits.max_value_depth = absl::GetFlag(FLAGS_max_value_depth);
  if (absl::Status s = weft::plan::CheckLimits(orch.limits); !s.ok()) {
    Die(std::string(s.message()));
  }
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
  options.lazies.max_value_bytes = orch.max_outcome_bytes;
  options.lazies.max_bytes = absl::GetFlag(FLAGS_max_lazy_bytes);
  tasks.max_outcome_bytes = orch.max_outcome_bytes;
  tasks.max_retained_bytes = absl::GetFlag(FLAGS_max_retained_task_bytes);
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  absl::StatusOr<weft::handlers::AllowList> allow =
      weft::handlers::AllowList::Parse(absl::GetFlag(FLAGS_http_allow));
  if (!allow.ok()) {
    Die(absl::StrCat("--http_allow: ", allow.status().message()));
  }
  options.http.allow = *std::move(allow);
  options.http.proxy = absl::GetFlag(FLAGS_http_proxy);

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

  // protobuf and gRPC complain about bad requests on their own: rate-limit
  // them, since any caller can send one.
  weft::service::InstallLibraryLogs();

  std::unique_ptr<weft::service::WeftServer> owned;
  try {
    owned = std::make_unique<weft::service::WeftServer>(options);
  } catch (const std::system_error& e) {
    // Threads (the event loop's, the pools') could not be started.
    Die(
        absl::StrCat("cannot start weftd's threads (--event_loop_threads, "
                     "--pools): ",
                     e.what()));
  }
  weft::service::WeftServer& server = *owned;
  if (absl::Status s = server.DeclareLazyValues(config); !s.ok()) {
    Die(absl::StrCat("--config ", config_path, ": ", s.message()));
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
  ShutdownWatchdog watchdog(grace);
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
  const weft::service::ShutdownReport report = server.Shutdown(grace);
  stopped.store(true);
  pthread_kill(impatient.native_handle(), SIGTERM);
  impatient.join();
  std::cerr << "weftd: stopped on "
            << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << "; ";
  const int cancelled = report.runs_cancelled + report.tasks_cancelled;
  if (report.runs_in_flight == 0 && report.tasks_running == 0) {
    std::cerr << "nothing was running";
  } else {
    std::cerr << report.runs_in_flight << " run(s) were in flight and "
              << report.tasks_running << " task(s) running; ";
    if (cancelled == 0) {
      std::cerr << "all ended within the "
                << weft::handlers::FormatJsonDuration(grace) << " grace period";
    } else {
      std::cerr << report.runs_cancelled << " run(s) and "
                << report.tasks_cancelled << " task(s) were cancelled when the "
                << weft::handlers::FormatJsonDuration(grace) << " grace period "
                << (report.grace_cut_short ? "was cut short by a second signal"
                                           : "ended");
    }
  }
  std::cerr << std::endl;
  return 0;
}
