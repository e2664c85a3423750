// Task scale run: N background tasks of one sleep each, created as fast as
// one client can (a window of CreateTask calls in flight on one channel),
// against a real weftd with its admission limits raised. Measures what issue
// 5 asks: the creation rate, weftd's peak memory per task, and that every
// task reaches SUCCEEDED.
//
//   build/bench/task_scale --weftd=build/server/weftd/weftd --tasks=100000
//   --sleep=1s

#include <iostream>
#include <memory>
#include <string>
#include <unordered_set>

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

namespace {

using weft::engine::CondVar;
using weft::engine::Mutex;
using weft::engine::MutexLock;

struct Call {
  grpc::ClientContext context;
  weft::v1::Task task;
};

}  // namespace

int main(int argc, char** argv) {
  // As weftd does: no lock-order graph for gRPC's absl::Mutex (Debian's
  // Abseil is built without NDEBUG).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_tasks);
  const std::string limit = absl::StrCat(n);
  weft::bench::WeftdProcess weftd(
      absl::GetFlag(FLAGS_weftd),
      {"--max_running_tasks=" + limit, "--max_queued_tasks=" + limit,
       "--max_retained_tasks=" + limit});
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
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    {
      MutexLock lock(&mu);
      while (in_flight >= absl::GetFlag(FLAGS_window)) cv.Wait(&mu);
      ++in_flight;
    }
    auto* c = new Call;
    c->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    stub->async()->CreateTask(&c->context, &request, &c->task,
                              [&, c](grpc::Status s) {
                                MutexLock lock(&mu);
                                if (s.ok()) {
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
  const bool ok = errors == 0 && static_cast<int>(names.size()) == n &&
                  succeeded == n && other == 0;
  std::cout << absl::StrFormat(
                   "tasks=%d created=%d errors=%d create_wall=%s "
                   "create_rate=%.0f/s all_succeeded_after=%s succeeded=%d "
                   "other=%d weftd_extra_peak_rss_mb=%ld "
                   "peak_bytes_per_task=%.0f",
                   n, names.size(), errors, absl::FormatDuration(creating),
                   n / absl::ToDoubleSeconds(creating),
                   absl::FormatDuration(all_done), succeeded, other,
                   peak_kb / 1024, peak_kb * 1024.0 / n)
            << std::endl;
  if (errors > 0) std::cerr << "first error: " << first_error << "\n";
  return ok ? 0 : 1;
}
