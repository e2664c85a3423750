// The C++ client library for weft: a thin, typed layer over the generated
// stubs, plan builders, and the JSON forms the CLI reads and prints.
//
// The Client takes stub interfaces, so code that uses it can be tested
// against the generated mocks (orchestrator_mock.grpc.pb.h).
//
// Thread-safety: a Client may be used from several threads at once.

#ifndef WEFT_CLIENT_CLIENT_H_
#define WEFT_CLIENT_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "weft/v1/orchestrator.grpc.pb.h"

namespace weft::client {

class Client {
 public:
  // Connects (lazily) to `address`, host:port, without TLS.
  static std::unique_ptr<Client> Connect(const std::string& address);

  Client(std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator,
         std::unique_ptr<grpc::health::v1::Health::StubInterface> health);

  // `timeout` <= 0 sets no deadline. An RPC error comes back as the status
  // (its code and message as the server sent them).
  absl::StatusOr<weft::v1::RunResponse> Run(const weft::v1::RunRequest& request,
                                            absl::Duration timeout) const;
  absl::StatusOr<weft::v1::ListHandlersResponse> ListHandlers(
      absl::Duration timeout) const;
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Check(
      const std::string& service, absl::Duration timeout) const;

 private:
  std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator_;
  std::unique_ptr<grpc::health::v1::Health::StubInterface> health_;
};

// Plan builders:
//   RunRequest r;
//   *r.mutable_plan() = Parallel({
//       Id("user", Call("sleep", *ArgsFromJson(R"({"duration": "0.3s"})"))),
//       Id("stats", Call("value", *ArgsFromJson(R"({"value": 42})")))});
weft::v1::PlanNode Call(absl::string_view handler,
                        google::protobuf::Struct args = {});
weft::v1::PlanNode Parallel(std::vector<weft::v1::PlanNode> children);
weft::v1::PlanNode Id(absl::string_view id, weft::v1::PlanNode node);
weft::v1::PlanNode Timeout(absl::Duration timeout, weft::v1::PlanNode node);

// Parses a JSON object into handler args.
absl::StatusOr<google::protobuf::Struct> ArgsFromJson(absl::string_view json);

// Reads what `weft run` accepts: a RunRequest ({"plan": ...}) or a bare plan
// node ({"parallel": ...}), in the proto3 JSON mapping.
absl::StatusOr<weft::v1::RunRequest> ParseRunRequestJson(
    absl::string_view json);

// Proto3 JSON, camelCase field names, indented by two spaces like grpcurl.
// Object keys of Struct values come out sorted, so output is stable.
std::string ToJson(const google::protobuf::Message& message);
// The same on one line, without spaces.
std::string ToCompactJson(const google::protobuf::Message& message);

}  // namespace weft::client

#endif  // WEFT_CLIENT_CLIENT_H_
