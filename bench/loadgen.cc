// A closed-loop gRPC load generator: keeps `concurrency` unary calls in
// flight over `connections` channels for `duration` (after `warmup`), and
// prints one line: requests per second and latency percentiles.
//
//   build/bench/loadgen --target=127.0.0.1:50051
//     --method=/weft.v1.Orchestrator/Run --request_type=weft.v1.RunRequest
//     --request='{"plan": {"call": {"handler": "value", "args": {"value":
//     1}}}}'
//     --concurrency=32 --connections=2 --duration=5s --warmup=1s
//
// The request is JSON for `request_type` (any message compiled into this
// binary), sent as its binary encoding to `method`, so the same bytes can go
// to weftd and to the echo server. Uses gRPC's callback API: no thread per
// call.

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "server/engine/sync.h"
#include "weft/v1/orchestrator.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address.");
ABSL_FLAG(std::string, method, "/weft.v1.Orchestrator/Run",
          "Full method name.");
ABSL_FLAG(std::string, request_type, "weft.v1.RunRequest",
          "Message type of --request.");
ABSL_FLAG(std::string, request, "", "The request, as JSON.");
ABSL_FLAG(std::string, request_file, "", "Or a file holding it.");
ABSL_FLAG(int, concurrency, 32, "Calls in flight at once.");
ABSL_FLAG(int, connections, 1,
          "Channels (TCP connections) to spread them over.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "How long to measure.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "How long to run first, unmeasured.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60), "Deadline of each call.");
ABSL_FLAG(std::string, label, "", "Names the run in the output line.");
ABSL_FLAG(std::string, token, "",
          "Sent as `authorization: Bearer TOKEN` on every call.");
ABSL_FLAG(std::string, json_out, "", "Also write the result here, as JSON.");
ABSL_FLAG(std::string, tls_ca, "",
          "TLS: the CA certificate (PEM file) the server's certificate is "
          "checked against. Empty: plaintext.");

namespace {

using weft::engine::Mutex;
using weft::engine::MutexLock;

struct Result {
  int64_t ok = 0;
  int64_t errors = 0;
  std::string first_error;
  std::vector<double> latencies_ms;
};

class Load {
 public:
  Load(std::vector<std::unique_ptr<grpc::GenericStub>> stubs,
       std::string method, grpc::ByteBuffer request, absl::Duration timeout,
       std::string authorization)
      : stubs_(std::move(stubs)),
        method_(std::move(method)),
        request_(std::move(request)),
        timeout_(timeout),
        authorization_(std::move(authorization)) {}

  // Runs until `end`, measuring calls that start after `measure_from`.
  Result Run(int concurrency, absl::Time measure_from, absl::Time end) {
    measure_from_ = measure_from;
    end_ = end;
    {
      MutexLock lock(&mu_);
      in_flight_ = concurrency;
    }
    for (int i = 0; i < concurrency; ++i) Issue(i);
    MutexLock lock(&mu_);
    while (in_flight_ > 0) idle_.Wait(&mu_);
    return std::move(result_);
  }

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    absl::Time start;
  };

  void Issue(int slot) {
    const absl::Time now = absl::Now();
    if (now >= end_) {
      MutexLock lock(&mu_);
      if (--in_flight_ == 0) idle_.SignalAll();
      return;
    }
    auto* call = new Call;
    call->start = now;
    call->context.set_deadline(absl::ToChronoTime(now + timeout_));
    if (!authorization_.empty()) {
      call->context.AddMetadata("authorization", authorization_);
    }
    grpc::GenericStub& stub = *stubs_[slot % stubs_.size()];
    stub.UnaryCall(&call->context, method_, grpc::StubOptions(), &request_,
                   &call->response, [this, call, slot](grpc::Status s) {
                     const absl::Time done = absl::Now();
                     if (call->start >= measure_from_) {
                       MutexLock lock(&mu_);
                       if (s.ok()) {
                         ++result_.ok;
                         result_.latencies_ms.push_back(
                             absl::ToDoubleMilliseconds(done - call->start));
                       } else {
                         if (result_.errors++ == 0) {
                           result_.first_error = absl::StrCat(
                               s.error_code(), ": ", s.error_message());
                         }
                       }
                     }
                     delete call;
                     Issue(slot);
                   });
  }

  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  const std::string method_;
  const grpc::ByteBuffer request_;
  const absl::Duration timeout_;
  const std::string authorization_;
  absl::Time measure_from_;
  absl::Time end_;
  Mutex mu_;
  weft::engine::CondVar idle_;
  int in_flight_ = 0;
  Result result_;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = static_cast<size_t>(p * (sorted.size() - 1));
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  // As weftd does: no lock-order graph for gRPC's absl::Mutex (Debian's
  // Abseil is built without NDEBUG).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  std::string json = absl::GetFlag(FLAGS_request);
  if (!absl::GetFlag(FLAGS_request_file).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_request_file));
    json.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Links weft's messages in, so their types are in the generated pool.
  (void)weft::v1::RunRequest::descriptor();
  const google::protobuf::Descriptor* type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
          absl::GetFlag(FLAGS_request_type));
  if (type == nullptr) {
    std::cerr << "loadgen: unknown --request_type\n";
    return 2;
  }
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> message(
      factory.GetPrototype(type)->New());
  if (auto s = google::protobuf::util::JsonStringToMessage(json, message.get());
      !s.ok()) {
    std::cerr << "loadgen: --request: " << s.ToString() << "\n";
    return 2;
  }
  const std::string bytes = message->SerializeAsString();
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer request(&slice, 1);

  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca); !ca.empty()) {
    std::ifstream in(ca);
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs.assign(std::istreambuf_iterator<char>(in), {});
    if (!in || tls.pem_root_certs.empty()) {
      std::cerr << "loadgen: --tls_ca: cannot read " << ca << "\n";
      return 2;
    }
    credentials = grpc::SslCredentials(tls);
  }
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_connections)); ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt("weft.loadgen.channel",
                i);  // Distinct channels, distinct connections.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(
        std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
            absl::GetFlag(FLAGS_target), credentials, args)));
  }

  const std::string token = absl::GetFlag(FLAGS_token);
  Load load(std::move(stubs), absl::GetFlag(FLAGS_method), request,
            absl::GetFlag(FLAGS_timeout),
            token.empty() ? "" : absl::StrCat("Bearer ", token));
  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + absl::GetFlag(FLAGS_warmup);
  Result r = load.Run(absl::GetFlag(FLAGS_concurrency), measure_from,
                      measure_from + absl::GetFlag(FLAGS_duration));
  std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
  const double seconds = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
  const double rps = r.ok / seconds;
  const std::string line = absl::StrFormat(
      "%s rps=%.0f p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms ok=%d errors=%d "
      "request_bytes=%d concurrency=%d connections=%d",
      absl::GetFlag(FLAGS_label), rps, Percentile(r.latencies_ms, 0.5),
      Percentile(r.latencies_ms, 0.9), Percentile(r.latencies_ms, 0.99),
      r.latencies_ms.empty() ? 0.0 : r.latencies_ms.back(), r.ok, r.errors,
      bytes.size(), absl::GetFlag(FLAGS_concurrency),
      absl::GetFlag(FLAGS_connections));
  std::cout << line << std::endl;
  if (r.errors > 0)
    std::cerr << "loadgen: first error: " << r.first_error << "\n";
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream out(absl::GetFlag(FLAGS_json_out));
    out << absl::StrFormat(
        "{\"label\": \"%s\", \"rps\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": "
        "%.4f, "
        "\"p99_ms\": %.4f, \"max_ms\": %.4f, \"ok\": %d, \"errors\": %d, "
        "\"request_bytes\": %d, \"concurrency\": %d, \"connections\": %d}\n",
        absl::GetFlag(FLAGS_label), rps, Percentile(r.latencies_ms, 0.5),
        Percentile(r.latencies_ms, 0.9), Percentile(r.latencies_ms, 0.99),
        r.latencies_ms.empty() ? 0.0 : r.latencies_ms.back(), r.ok, r.errors,
        bytes.size(), absl::GetFlag(FLAGS_concurrency),
        absl::GetFlag(FLAGS_connections));
  }
  return r.errors > 0 && r.ok == 0 ? 1 : 0;
}
