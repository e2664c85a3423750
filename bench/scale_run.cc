// Scale run: one Run of N sleeping leaves (root-only outcome) against a real
// weftd, measuring what the issue asks: wall time, weftd's extra peak memory,
// and weftd's thread count before and during the run.
//
//   build/bench/scale_run --weftd=build/server/weftd/weftd --leaves=100000
//   --sleep=1s
//
// It starts weftd itself (limits raised by flags), reads its /proc entries,
// and stops it with SIGTERM.

#include <unistd.h>

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "client/client.h"

ABSL_FLAG(std::string, weftd, "build/server/weftd/weftd", "The weftd binary.");
ABSL_FLAG(int, leaves, 100'000, "Sleeping leaves in the parallel.");
ABSL_FLAG(absl::Duration, sleep, absl::Seconds(1),
          "How long each leaf sleeps.");
ABSL_FLAG(int, runs, 2,
          "Runs in a row against the same weftd; the first is cold (a fresh "
          "process faulting its memory in), the rest warm.");

int main(int argc, char** argv) {
  // As weftd does: no lock-order graph for gRPC's absl::Mutex (Debian's
  // Abseil is built without NDEBUG).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const int leaves = absl::GetFlag(FLAGS_leaves);

  weft::bench::WeftdProcess weftd(
      absl::GetFlag(FLAGS_weftd),
      {absl::StrCat("--max_plan_nodes=", leaves + 1),
       "--max_message_bytes=268435456", "--max_outcome_bytes=268435456"});
  const std::string& address = weftd.address();

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
  const long weft_threads_before = weftd.WeftThreads();
  const long rss_before = weftd.Status("VmRSS");
  bool ok = true;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    // Sample the thread count while the run is in flight.
    weft::bench::ThreadSampler sampler(weftd);
    const absl::Time start = absl::Now();
    absl::StatusOr<weft::v1::RunResponse> response =
        client->Run(request, absl::Minutes(5));
    const absl::Duration wall = absl::Now() - start;
    sampler.Stop();
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
              << (weftd.Status("VmHWM") - rss_before) / 1024
              << " weftd_threads_before=" << sampler.threads_before()
              << " weftd_threads_max_during=" << sampler.threads_max()
              << " weft_threads_before=" << weft_threads_before
              << " weft_threads_max_during=" << sampler.weft_threads_max()
              << std::endl;
  }
  return ok ? 0 : 1;
}
