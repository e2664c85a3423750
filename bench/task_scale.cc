// Task scale run: N background tasks of one sleep each, created as fast as
// one client can (a window of CreateTask calls in flight on one channel),
// against a real weftd with its admission limits raised. Measures the
// creation rate and CreateTask's latency, weftd's peak memory per task, and
// that every task reaches SUCCEEDED; with --store=sqlite, the bytes a task
// takes on disk, and with --restart how long a new weftd takes to start on
// the store it left (every task retained).
//
//   build/bench/task_scale --weftd=build/server/weftd/weftd --tasks=100000
//   --sleep=1s [--store=sqlite [--store_sync=full] [--restart]]

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "server/engine/sync.h"
#include "weft/v1/orchestrator.grpc.pb.h"

ABSL_FLAG(std::string, weftd, "build/server/weftd/weftd", "The weftd binary.");
ABSL_FLAG(int, tasks, 100'000, "Tasks to create.");
ABSL_FLAG(absl::Duration, sleep, absl::Seconds(1), "How long each sleeps.");
ABSL_FLAG(int, window, 256, "CreateTask calls in flight at once.");
ABSL_FLAG(std::string, store, "memory",
          "weftd's store: memory, or sqlite (a file in a temporary folder).");
ABSL_FLAG(std::string, store_sync, "full", "--store_sync, with sqlite.");
ABSL_FLAG(bool, restart, false,
          "With sqlite: stop weftd after the run and time a new one's start "
          "on the same file.");

namespace {

using weft::engine::CondVar;
using weft::engine::Mutex;
using weft::engine::MutexLock;

struct Call {
  grpc::ClientContext context;
  weft::v1::Task task;
  absl::Time sent;
};

// The store's files (the database, its WAL and shared memory), in bytes.
int64_t StoreBytes(const std::string& path) {
  int64_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code error;
    const auto size = std::filesystem::file_size(path + suffix, error);
    if (!error) total += static_cast<int64_t>(size);
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  // As weftd does: no lock-order graph for gRPC's absl::Mutex (Debian's
  // Abseil is built without NDEBUG).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_tasks);
  const std::string limit = absl::StrCat(n);
  // What the registry counts for a small task (its request and record, then
  // its outcome: about 5.7 KB; more than the RSS it takes), with room.
  std::vector<std::string> flags = {
      "--max_running_tasks=" + limit, "--max_queued_tasks=" + limit,
      "--max_retained_tasks=" + limit,
      absl::StrCat("--max_retained_task_bytes=",
                   std::max<int64_t>(int64_t{n} * 8192, int64_t{256} << 20))};
  const bool sqlite = absl::GetFlag(FLAGS_store) == "sqlite";
  std::string folder;
  std::string path;
  if (sqlite) {
    folder = std::filesystem::temp_directory_path() / "weft-task-scale-XXXXXX";
    if (::mkdtemp(folder.data()) == nullptr) {
      std::cerr << "cannot make a folder for the store\n";
      return 1;
    }
    path = folder + "/weft.db";
    flags.push_back("--store=sqlite:" + path);
    flags.push_back("--store_sync=" + absl::GetFlag(FLAGS_store_sync));
  }
  auto owned = std::make_unique<weft::bench::WeftdProcess>(
      absl::GetFlag(FLAGS_weftd), flags);
  weft::bench::WeftdProcess& weftd = *owned;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(weftd.address(), grpc::InsecureChannelCredentials());
  std::unique_ptr<weft::v1::Orchestrator::Stub> stub =
      weft::v1::Orchestrator::NewStub(channel);

  weft::v1::CreateTaskRequest request;
  auto* call = request.mutable_plan()->mutable_call();
  call->set_handler("sleep");
  (*call->mutable_args()->mutable_fields())["duration"].set_string_value(
      absl::StrCat(absl::ToDoubleSeconds(absl::GetFlag(FLAGS_sleep)), "s"));

  auto info = [&] {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    weft::v1::ServerInfo server_info;
    grpc::Status s = stub->GetServerInfo(
        &context, weft::v1::GetServerInfoRequest(), &server_info);
    if (!s.ok()) std::cerr << "GetServerInfo: " << s.error_message() << "\n";
    return server_info;
  };
  (void)info();  // Connects.
  const long rss_before = weftd.Status("VmRSS");

  Mutex mu;
  CondVar cv;
  int in_flight = 0;
  int errors = 0;
  std::string first_error;
  std::unordered_set<std::string> names;
  names.reserve(n);
  std::vector<double> latencies_ms;
  latencies_ms.reserve(n);
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    {
      MutexLock lock(&mu);
      while (in_flight >= absl::GetFlag(FLAGS_window)) cv.Wait(&mu);
      ++in_flight;
    }
    auto* c = new Call;
    c->sent = absl::Now();
    c->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    stub->async()->CreateTask(
        &c->context, &request, &c->task, [&, c](grpc::Status s) {
          const absl::Duration took = absl::Now() - c->sent;
          MutexLock lock(&mu);
          if (s.ok()) {
            latencies_ms.push_back(absl::ToDoubleMilliseconds(took));
            names.insert(c->task.name());
          } else if (errors++ == 0) {
            first_error = s.error_message();
          }
          delete c;
          --in_flight;
          cv.Signal();
        });
  }
  {
    MutexLock lock(&mu);
    while (in_flight > 0) cv.Wait(&mu);
  }
  const absl::Duration creating = absl::Now() - start;

  // Every task to its end: the server's counts by state.
  int succeeded = 0;
  int other = 0;
  const absl::Time give_up = absl::Now() + absl::Minutes(5);
  while (absl::Now() < give_up) {
    succeeded = other = 0;
    const weft::v1::ServerInfo now = info();
    for (const weft::v1::TaskCount& c : now.tasks()) {
      (c.state() == weft::v1::TASK_STATE_SUCCEEDED ? succeeded : other) +=
          c.count();
    }
    if (succeeded + other == n && other == 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration all_done = absl::Now() - start;
  const long peak_kb = weftd.Status("VmHWM") - rss_before;
  bool ok = errors == 0 && static_cast<int>(names.size()) == n &&
            succeeded == n && other == 0;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto percentile = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[static_cast<size_t>(p * (latencies_ms.size() - 1))];
  };
  std::string disk;
  if (sqlite) {
    const int64_t bytes = StoreBytes(path);
    disk = absl::StrFormat(" store_bytes=%d store_bytes_per_task=%.0f", bytes,
                           static_cast<double>(bytes) / n);
  }
  if (sqlite && absl::GetFlag(FLAGS_restart)) {
    owned.reset();  // SIGTERM; every task has ended and is retained.
    const absl::Time begin = absl::Now();
    weft::bench::WeftdProcess again(absl::GetFlag(FLAGS_weftd), flags);
    const absl::Duration started = absl::Now() - begin;
    succeeded = 0;
    {
      grpc::ClientContext context;
      weft::v1::ServerInfo server_info;
      auto restarted = weft::v1::Orchestrator::NewStub(grpc::CreateChannel(
          again.address(), grpc::InsecureChannelCredentials()));
      if (restarted
              ->GetServerInfo(&context, weft::v1::GetServerInfoRequest(),
                              &server_info)
              .ok()) {
        for (const weft::v1::TaskCount& c : server_info.tasks()) {
          if (c.state() == weft::v1::TASK_STATE_SUCCEEDED) {
            succeeded = c.count();
          }
        }
      }
    }
    ok = ok && succeeded == n;
    absl::StrAppend(&disk,
                    absl::StrFormat(" restart=%s restart_tasks=%d",
                                    absl::FormatDuration(started), succeeded));
  }
  if (!folder.empty()) std::filesystem::remove_all(folder);
  std::cout << absl::StrFormat(
                   "tasks=%d created=%d errors=%d create_wall=%s "
                   "create_rate=%.0f/s all_succeeded_after=%s succeeded=%d "
                   "other=%d weftd_extra_peak_rss_mb=%ld "
                   "peak_bytes_per_task=%.0f p50_ms=%.2f p99_ms=%.2f%s",
                   n, names.size(), errors, absl::FormatDuration(creating),
                   n / absl::ToDoubleSeconds(creating),
                   absl::FormatDuration(all_done), succeeded, other,
                   peak_kb / 1024, peak_kb * 1024.0 / n, percentile(0.5),
                   percentile(0.99), disk)
            << std::endl;
  if (errors > 0) std::cerr << "first error: " << first_error << "\n";
  return ok ? 0 : 1;
}
