// HTTP scale: one Run of N http calls in parallel to the local HTTP fixture,
// which answers each after a delay, against a real weftd. Measures what the
// http issue asks: how long the N calls take in all (ideally the delay),
// and weftd's thread count before and during the run.
//
//   build/bench/http_scale --weftd=build/server/weftd/weftd --calls=1000
//   --delay_ms=200
//
// The fixture runs in this process on its own thread (epoll, backlog 4,096);
// weftd is started with --http_allow naming it.

#include <unistd.h>

#include <algorithm>
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
#include "tests/fixture/http_fixture.h"

ABSL_FLAG(std::string, weftd, "build/server/weftd/weftd", "The weftd binary.");
ABSL_FLAG(int, calls, 1000, "http calls in the parallel.");
ABSL_FLAG(int, delay_ms, 200, "How long the fixture takes to answer each.");
ABSL_FLAG(std::string, path, "/users/42",
          "What each call asks the fixture for (a small JSON body).");
ABSL_FLAG(int, runs, 3,
          "Runs in a row against the same weftd; the first opens the "
          "connections, the rest may reuse them.");

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const int delay_ms = absl::GetFlag(FLAGS_delay_ms);

  auto fixture = weft::testing::HttpFixture::Start();
  if (!fixture.ok()) {
    std::cerr << fixture.status() << "\n";
    return 1;
  }
  weft::bench::WeftdProcess weftd(
      absl::GetFlag(FLAGS_weftd),
      {absl::StrCat("--http_allow=127.0.0.1:", (*fixture)->port()),
       absl::StrCat("--max_plan_nodes=", calls + 1)});

  weft::v1::RunRequest request;
  request.set_detail(weft::v1::OUTCOME_DETAIL_ROOT);
  auto* parallel = request.mutable_plan()->mutable_parallel();
  for (int i = 0; i < calls; ++i) {
    auto* call = parallel->add_children()->mutable_call();
    call->set_handler("http");
    (*call->mutable_args()->mutable_fields())["url"].set_string_value(
        (*fixture)->Url(
            absl::StrCat(absl::GetFlag(FLAGS_path), "?delay=", delay_ms)));
  }
  std::unique_ptr<weft::client::Client> client =
      weft::client::Client::Connect(weftd.address());
  (void)client->Check("", absl::Seconds(10));
  bool ok = true;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    weft::bench::ThreadSampler sampler(weftd);
    const int64_t connections_before = (*fixture)->connections();
    const absl::Time start = absl::Now();
    absl::StatusOr<weft::v1::RunResponse> response =
        client->Run(request, absl::Minutes(2));
    const absl::Duration wall = absl::Now() - start;
    sampler.Stop();
    if (!response.ok()) {
      std::cerr << "Run failed: " << response.status() << "\n";
      return 1;
    }
    const auto& outcome = response->outcome();
    ok &= outcome.state() == weft::v1::NODE_STATE_SUCCEEDED &&
          outcome.value().list_value().values_size() == calls;
    std::cout << (run == 0 ? "first" : "again") << " calls=" << calls
              << " delay=" << delay_ms
              << "ms state=" << weft::v1::NodeState_Name(outcome.state())
              << " answered=" << outcome.value().list_value().values_size()
              << " wall=" << absl::FormatDuration(wall) << " new_connections="
              << (*fixture)->connections() - connections_before
              << " weftd_threads_before=" << sampler.threads_before()
              << " weftd_threads_max_during=" << sampler.threads_max()
              << " weft_threads_before=" << sampler.weft_threads_before()
              << " weft_threads_max_during=" << sampler.weft_threads_max()
              << std::endl;
  }
  return ok ? 0 : 1;
}
