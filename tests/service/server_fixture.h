// A WeftServer on a free loopback port, with stubs to call it.

#ifndef WEFT_TESTS_SERVICE_SERVER_FIXTURE_H_
#define WEFT_TESTS_SERVICE_SERVER_FIXTURE_H_

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/weftd/server.h"
#include "tests/testing/json.h"
#include "tests/testing/sync.h"

namespace weft::testing {

class ServerFixture {
 public:
  explicit ServerFixture(weftd::ServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    server_ = std::make_unique<weftd::WeftServer>(std::move(options));
    absl::StatusOr<std::string> address = server_->Start();
    EXPECT_TRUE(address.ok()) << address.status();
    address_ = *address;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), args);
    orchestrator_ = weft::v1::Orchestrator::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  // Runs `request_json` (a RunRequest in JSON) and returns the RPC status.
  grpc::Status Run(absl::string_view request_json,
                   weft::v1::RunResponse* response,
                   absl::Duration timeout = absl::ZeroDuration()) {
    grpc::ClientContext context;
    if (timeout > absl::ZeroDuration()) {
      context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    }
    return orchestrator_->Run(
        &context, FromJson<weft::v1::RunRequest>(request_json), response);
  }

  // Waits until `condition` holds; false if it never did within kWait.
  template <typename F>
  static bool WaitFor(F condition) {
    return weft::testing::WaitFor(std::move(condition));
  }

  // Waits until `n` runs are in flight; false if that never happened.
  bool WaitForActiveRuns(int n) {
    return WaitFor([&] { return server_->orchestrator().active_runs() == n; });
  }

  // Waits until the health service says NOT_SERVING.
  bool WaitUntilNotServing() {
    return WaitFor([&] {
      grpc::ClientContext context;
      grpc::health::v1::HealthCheckResponse response;
      health_->Check(&context, {}, &response);
      return response.status() ==
             grpc::health::v1::HealthCheckResponse::NOT_SERVING;
    });
  }

  weftd::WeftServer& server() { return *server_; }
  weft::v1::Orchestrator::Stub& orchestrator() { return *orchestrator_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }
  const std::shared_ptr<grpc::Channel>& channel() { return channel_; }

 private:
  std::unique_ptr<weftd::WeftServer> server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<weft::v1::Orchestrator::Stub> orchestrator_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace weft::testing

#endif  // WEFT_TESTS_SERVICE_SERVER_FIXTURE_H_
