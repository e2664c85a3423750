// The C++ client library for weft: a thin, typed layer over the generated
// stubs. Plans are built with plan_builders.h; what only the `weft` CLI
// uses (the JSON forms it reads and prints, its progress line) is in
// cli_support.h.
//
// The Client takes stub interfaces, so code that uses it can be tested
// against the generated mocks (orchestrator_mock.grpc.pb.h).
//
// Thread-safety: a Client may be used from several threads at once.

#ifndef WEFT_CLIENT_CLIENT_H_
#define WEFT_CLIENT_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/struct.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "weft/v1/orchestrator.grpc.pb.h"

namespace weft::client {

// How a client reaches weftd and says who it is.
struct ConnectOptions {
  // TLS: the CA certificates (PEM file) that the server's certificate must
  // chain to; empty with TLS on: the system's roots.
  std::string tls_ca;
  // Mutual TLS: this client's certificate chain and key (PEM files).
  std::string tls_cert;
  std::string tls_key;
  // Sent as "authorization: Bearer TOKEN" with every call.
  std::string token;

  // TLS is on when any of the TLS files is given.
  bool tls() const {
    return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty();
  }
};

class Client {
 public:
  // Connects (lazily) to `address`, host:port, without TLS or a token.
  static std::unique_ptr<Client> Connect(const std::string& address);
  // As `options` says. Errors (INVALID_ARGUMENT) name a file that cannot be
  // read, or a certificate given without its key.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const std::string& address, const ConnectOptions& options);

  // `token`, if not empty, is sent with every call as a bearer token.
  Client(std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator,
         std::unique_ptr<grpc::health::v1::Health::StubInterface> health,
         std::string token = "");

  // `timeout` <= 0 sets no deadline. An RPC error comes back as the status
  // (its code and message as the server sent them), with the google.rpc
  // details weftd sent as payloads: read them with api/errors.h
  // (common::Reason, RetryDelay) and api/error_details.h (GetBadRequest...).
  absl::StatusOr<weft::v1::RunResponse> Run(const weft::v1::RunRequest& request,
                                            absl::Duration timeout) const;
  absl::StatusOr<weft::v1::ListHandlersResponse> ListHandlers(
      absl::Duration timeout) const;
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Check(
      const std::string& service, absl::Duration timeout) const;

  // Background tasks (see task.proto).
  absl::StatusOr<weft::v1::Task> CreateTask(
      const weft::v1::CreateTaskRequest& request, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::Task> GetTask(
      const weft::v1::GetTaskRequest& request, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::ListTasksResponse> ListTasks(
      const weft::v1::ListTasksRequest& request, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::Task> CancelTask(const std::string& name,
                                            absl::Duration timeout) const;
  // One WaitTask call: the task when it ends or when `wait` passes.
  absl::StatusOr<weft::v1::Task> WaitTask(const std::string& name,
                                          absl::Duration wait,
                                          absl::Duration timeout) const;
  absl::Status DeleteTask(const std::string& name,
                          absl::Duration timeout) const;
  // Calls `on_event` for each event of WatchTask until the task's terminal
  // event (OK). When the stream breaks (UNAVAILABLE, or an end before the
  // task's) it reconnects, resuming after the last event seen
  // (after_sequence), up to 5 times in a row without an event, all within
  // `timeout`.
  absl::Status WatchTask(
      const std::string& name, absl::Duration timeout,
      const std::function<void(const weft::v1::TaskEvent&)>& on_event) const;
  absl::StatusOr<weft::v1::ServerInfo> GetServerInfo(
      absl::Duration timeout) const;

  // Lazy values (see lazy.proto).
  absl::StatusOr<weft::v1::LazyValue> CreateLazyValue(
      const weft::v1::CreateLazyValueRequest& request,
      absl::Duration timeout) const;
  absl::StatusOr<weft::v1::LazyValue> GetLazyValue(
      const std::string& name, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::ResolveLazyValueResponse> ResolveLazyValue(
      const std::string& name, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::LazyValue> ResetLazyValue(
      const std::string& name, absl::Duration timeout) const;
  absl::StatusOr<weft::v1::ListLazyValuesResponse> ListLazyValues(
      const weft::v1::ListLazyValuesRequest& request,
      absl::Duration timeout) const;
  absl::Status DeleteLazyValue(const std::string& name,
                               absl::Duration timeout) const;
  // Writes the server's BackupStore copy to `path`: to a file beside it
  // first, renamed to `path` once every byte has come. Returns its size.
  absl::StatusOr<int64_t> BackupStore(const std::string& path,
                                      absl::Duration timeout) const;

 private:
  std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator_;
  std::unique_ptr<grpc::health::v1::Health::StubInterface> health_;
  // "Bearer TOKEN", or empty.
  std::string authorization_;
};

// Accepts "tasks/{id}" or the bare id.
std::string TaskName(absl::string_view name_or_id);
// Accepts "lazyValues/{id}" or the bare id.
std::string LazyValueName(absl::string_view name_or_id);

// Whether a task has reached one of its terminal states.
bool IsTerminal(weft::v1::TaskState state);

}  // namespace weft::client

#endif  // WEFT_CLIENT_CLIENT_H_
