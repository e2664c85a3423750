// Scale run: one Run of N sleeping leaves (root-only outcome) against a real
// weftd, measuring what the issue asks: wall time, weftd's extra peak memory,
// and weftd's thread count before and during the run.
//
//   build/bench/scale_run --weftd=build/server/weftd --leaves=100000 --sleep=1s
//
// It starts weftd itself (limits raised by flags), reads its /proc entries,
// and stops it with SIGTERM.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "server/engine/sync.h"

ABSL_FLAG(std::string, weftd, "build/server/weftd", "The weftd binary.");
ABSL_FLAG(int, leaves, 100'000, "Sleeping leaves in the parallel.");
ABSL_FLAG(absl::Duration, sleep, absl::Seconds(1),
          "How long each leaf sleeps.");
ABSL_FLAG(int, runs, 2,
          "Runs in a row against the same weftd; the first is cold (a fresh "
          "process faulting its memory in), the rest warm.");

namespace {

// Threads of `pid` whose name starts with "weft-" (the event loop, its
// timer, the pools): the ones weft owns.
long WeftThreads(pid_t pid) {
  long n = 0;
  for (const auto& task : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/task"))) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("weft-", 0) == 0) ++n;
  }
  return n;
}

// A field of /proc/PID/status, in kB or a count.
long ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0)
      return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int leaves = absl::GetFlag(FLAGS_leaves);

  int out[2];
  if (pipe(out) != 0) return 1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    const std::string nodes = absl::StrCat("--max_plan_nodes=", leaves + 1);
    execl(absl::GetFlag(FLAGS_weftd).c_str(), "weftd", "--listen=127.0.0.1:0",
          nodes.c_str(), "--max_message_bytes=268435456",
          "--max_outcome_bytes=268435456", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[256];
  if (fgets(line, sizeof line, f) == nullptr) {
    std::cerr << "weftd did not start\n";
    return 1;
  }
  std::string address(line);
  address = address.substr(std::string("listening on ").size());
  address.erase(address.find_last_not_of("\n") + 1);

  weft::v1::RunRequest request;
  request.set_detail(weft::v1::OUTCOME_DETAIL_ROOT);
  auto* parallel = request.mutable_plan()->mutable_parallel();
  const std::string duration =
      absl::StrCat(absl::ToDoubleSeconds(absl::GetFlag(FLAGS_sleep)), "s");
  for (int i = 0; i < leaves; ++i) {
    auto* call = parallel->add_children()->mutable_call();
    call->set_handler("sleep");
    (*call->mutable_args()->mutable_fields())["duration"].set_string_value(
        duration);
  }
  std::unique_ptr<weft::client::Client> client =
      weft::client::Client::Connect(address);
  // Warm the connection, then measure.
  (void)client->Check("", absl::Seconds(10));
  const long weft_threads_before = WeftThreads(pid);
  const long rss_before = ProcStatus(pid, "VmRSS");
  bool ok = true;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    // Sample the thread count while the run is in flight.
    weft::engine::Mutex mu;
    bool running = true;
    const long threads_before = ProcStatus(pid, "Threads");
    long threads_max = threads_before;
    long weft_threads_max = weft_threads_before;
    std::thread sampler([&] {
      for (;;) {
        {
          weft::engine::MutexLock lock(&mu);
          if (!running) return;
        }
        threads_max = std::max(threads_max, ProcStatus(pid, "Threads"));
        weft_threads_max = std::max(weft_threads_max, WeftThreads(pid));
        usleep(20'000);
      }
    });
    const absl::Time start = absl::Now();
    absl::StatusOr<weft::v1::RunResponse> response =
        client->Run(request, absl::Minutes(5));
    const absl::Duration wall = absl::Now() - start;
    {
      weft::engine::MutexLock lock(&mu);
      running = false;
    }
    sampler.join();
    if (!response.ok()) {
      std::cerr << "Run failed: " << response.status() << "\n";
      ok = false;
      break;
    }
    ok &= response->outcome().state() == weft::v1::NODE_STATE_SUCCEEDED;
    std::cout << (run == 0 ? "cold" : "warm") << " leaves=" << leaves
              << " sleep=" << duration << " state="
              << weft::v1::NodeState_Name(response->outcome().state())
              << " values="
              << response->outcome().value().list_value().values_size()
              << " wall=" << absl::FormatDuration(wall)
              << " weftd_extra_peak_rss_mb="
              << (ProcStatus(pid, "VmHWM") - rss_before) / 1024
              << " weftd_threads_before=" << threads_before
              << " weftd_threads_max_during=" << threads_max
              << " weft_threads_before=" << weft_threads_before
              << " weft_threads_max_during=" << weft_threads_max << std::endl;
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return ok ? 0 : 1;
}
