#include "client/client.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "server/common/error_details.h"
#include "server/common/proto_time.h"
#include "server/common/serialize.h"

namespace weft::client {
namespace {

// The status with the google.rpc details weftd sent in the trailer
// (api/errors.h reads them); gRPC's own errors come without.
absl::Status FromGrpc(const grpc::Status& s) {
  google::rpc::Status rpc;
  if (s.error_details().empty() || !rpc.ParseFromString(s.error_details()) ||
      rpc.code() != s.error_code()) {
    rpc.Clear();
    rpc.set_code(s.error_code());
  }
  rpc.set_message(s.error_message());
  return common::FromRpcStatus(rpc);
}

// How many times in a row WatchTask reconnects without an event between.
constexpr int kWatchReconnects = 5;

// A context with `timeout` (none if <= 0) and the caller's credentials.
void Prepare(grpc::ClientContext* context, absl::Duration timeout,
             const std::string& authorization) {
  if (!authorization.empty()) {
    context->AddMetadata("authorization", authorization);
  }
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
}

}  // namespace

std::unique_ptr<Client> Client::Connect(const std::string& address) {
  absl::StatusOr<std::unique_ptr<Client>> client =
      Connect(address, ConnectOptions());
  return *std::move(client);  // Without files to read, it cannot fail.
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const std::string& address, const ConnectOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.tls()) {
    grpc::SslCredentialsOptions ssl;
    struct File {
      const std::string& path;
      std::string* pem;
      const char* flag;
    };
    for (const File& f :
         {File{options.tls_ca, &ssl.pem_root_certs, "tls_ca"},
          File{options.tls_cert, &ssl.pem_cert_chain, "tls_cert"},
          File{options.tls_key, &ssl.pem_private_key, "tls_key"}}) {
      if (f.path.empty()) continue;
      std::ifstream in(f.path);
      std::stringstream text;
      text << in.rdbuf();
      if (!in || in.bad()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", f.flag, " ", f.path, ": cannot read the file"));
      }
      *f.pem = text.str();
    }
    if (ssl.pem_cert_chain.empty() != ssl.pem_private_key.empty()) {
      return absl::InvalidArgumentError(
          "--tls_cert and --tls_key go together: a client certificate needs "
          "its key");
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // Full outcomes of big plans.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, credentials, args);
  auto client =
      std::make_unique<Client>(weft::v1::Orchestrator::NewStub(channel),
                               grpc::health::v1::Health::NewStub(channel));
  if (!options.token.empty()) {
    client->authorization_ = absl::StrCat("Bearer ", options.token);
  }
  return client;
}

Client::Client(
    std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator,
    std::unique_ptr<grpc::health::v1::Health::StubInterface> health,
    std::string token)
    : orchestrator_(std::move(orchestrator)),
      health_(std::move(health)),
      authorization_(token.empty() ? "" : absl::StrCat("Bearer ", token)) {}

namespace {

// Calls one unary method of `stub` with a fresh context and `timeout`.
template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Unary(
    const std::string& authorization, Stub& stub,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request, absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(&context, timeout, authorization);
  Response response;
  grpc::Status s = (stub.*method)(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

using Stub = weft::v1::Orchestrator::StubInterface;

}  // namespace

absl::StatusOr<weft::v1::RunResponse> Client::Run(
    const weft::v1::RunRequest& request, absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::Run, request, timeout);
}

absl::StatusOr<weft::v1::ListHandlersResponse> Client::ListHandlers(
    absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::ListHandlers,
               weft::v1::ListHandlersRequest(), timeout);
}

absl::StatusOr<weft::v1::Task> Client::CreateTask(
    const weft::v1::CreateTaskRequest& request, absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::CreateTask, request,
               timeout);
}

absl::StatusOr<weft::v1::Task> Client::GetTask(
    const weft::v1::GetTaskRequest& request, absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::GetTask, request,
               timeout);
}

absl::StatusOr<weft::v1::ListTasksResponse> Client::ListTasks(
    const weft::v1::ListTasksRequest& request, absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::ListTasks, request,
               timeout);
}

absl::StatusOr<weft::v1::Task> Client::CancelTask(
    const std::string& name, absl::Duration timeout) const {
  weft::v1::CancelTaskRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::CancelTask, request,
               timeout);
}

absl::StatusOr<weft::v1::Task> Client::WaitTask(const std::string& name,
                                                absl::Duration wait,
                                                absl::Duration timeout) const {
  weft::v1::WaitTaskRequest request;
  request.set_name(name);
  common::SetDuration(wait, request.mutable_timeout());
  return Unary(authorization_, *orchestrator_, &Stub::WaitTask, request,
               timeout);
}

absl::Status Client::DeleteTask(const std::string& name,
                                absl::Duration timeout) const {
  weft::v1::DeleteTaskRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::DeleteTask, request,
               timeout)
      .status();
}

absl::Status Client::WatchTask(
    const std::string& name, absl::Duration timeout,
    const std::function<void(const weft::v1::TaskEvent&)>& on_event) const {
  // The whole watch ends by the timeout, reconnections included.
  const absl::Time deadline = timeout > absl::ZeroDuration()
                                  ? absl::Now() + timeout
                                  : absl::InfiniteFuture();
  int64_t last = 0;
  bool ended = false;
  absl::Duration backoff = absl::Milliseconds(100);
  for (int failures = 0;;) {
    grpc::ClientContext context;
    Prepare(&context, absl::ZeroDuration(), authorization_);
    if (deadline != absl::InfiniteFuture()) {
      context.set_deadline(absl::ToChronoTime(deadline));
    }
    weft::v1::WatchTaskRequest request;
    request.set_name(name);
    request.set_after_sequence(last);
    std::unique_ptr<grpc::ClientReaderInterface<weft::v1::TaskEvent>> reader =
        orchestrator_->WatchTask(&context, request);
    weft::v1::TaskEvent event;
    bool progressed = false;
    while (reader->Read(&event)) {
      progressed = true;
      last = event.sequence();
      ended = IsTerminal(event.task().state());
      on_event(event);
    }
    grpc::Status s = reader->Finish();
    if (s.ok() && ended) return absl::OkStatus();
    // The connection broke or the server went away: resume from the last
    // event, a few times, within the deadline.
    const bool retry =
        s.error_code() == grpc::StatusCode::UNAVAILABLE || (s.ok() && !ended);
    if (progressed) failures = 0;
    if (!retry || ++failures > kWatchReconnects ||
        absl::Now() + backoff >= deadline) {
      if (!s.ok()) return FromGrpc(s);
      return absl::UnavailableError(absl::StrCat(
          "the watch ended before the task did (", kWatchReconnects,
          " reconnections); get the task and watch again"));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::StatusOr<int64_t> Client::BackupStore(const std::string& path,
                                            absl::Duration timeout) const {
  const std::string part = path + ".part";
  std::ofstream out(part, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", part, ": ", std::strerror(errno)));
  }
  grpc::ClientContext context;
  Prepare(&context, timeout, authorization_);
  std::unique_ptr<grpc::ClientReaderInterface<weft::v1::BackupStoreResponse>>
      reader = orchestrator_->BackupStore(&context, {});
  weft::v1::BackupStoreResponse piece;
  int64_t received = 0;
  int64_t total = -1;
  while (reader->Read(&piece)) {
    out.write(piece.data().data(),
              static_cast<std::streamsize>(piece.data().size()));
    received += static_cast<int64_t>(piece.data().size());
    total = piece.total_bytes();
  }
  grpc::Status s = reader->Finish();
  out.close();
  absl::Status failed;
  if (!s.ok()) {
    failed = FromGrpc(s);
  } else if (!out) {
    failed = absl::DataLossError(absl::StrCat("writing ", part, " failed"));
  } else if (received != total) {
    failed = absl::DataLossError(
        absl::StrCat("the copy is ", total, " bytes but ", received, " came"));
  } else if (std::rename(part.c_str(), path.c_str()) != 0) {
    failed = absl::FailedPreconditionError(absl::StrCat(
        "cannot rename ", part, " to ", path, ": ", std::strerror(errno)));
  }
  if (!failed.ok()) {
    std::remove(part.c_str());
    return failed;
  }
  return received;
}

absl::StatusOr<weft::v1::LazyValue> Client::CreateLazyValue(
    const weft::v1::CreateLazyValueRequest& request,
    absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::CreateLazyValue, request,
               timeout);
}

absl::StatusOr<weft::v1::LazyValue> Client::GetLazyValue(
    const std::string& name, absl::Duration timeout) const {
  weft::v1::GetLazyValueRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::GetLazyValue, request,
               timeout);
}

absl::StatusOr<weft::v1::ResolveLazyValueResponse> Client::ResolveLazyValue(
    const std::string& name, absl::Duration timeout) const {
  weft::v1::ResolveLazyValueRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::ResolveLazyValue, request,
               timeout);
}

absl::StatusOr<weft::v1::LazyValue> Client::ResetLazyValue(
    const std::string& name, absl::Duration timeout) const {
  weft::v1::ResetLazyValueRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::ResetLazyValue, request,
               timeout);
}

absl::StatusOr<weft::v1::ListLazyValuesResponse> Client::ListLazyValues(
    const weft::v1::ListLazyValuesRequest& request,
    absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::ListLazyValues, request,
               timeout);
}

absl::Status Client::DeleteLazyValue(const std::string& name,
                                     absl::Duration timeout) const {
  weft::v1::DeleteLazyValueRequest request;
  request.set_name(name);
  return Unary(authorization_, *orchestrator_, &Stub::DeleteLazyValue, request,
               timeout)
      .status();
}

absl::StatusOr<weft::v1::ServerInfo> Client::GetServerInfo(
    absl::Duration timeout) const {
  return Unary(authorization_, *orchestrator_, &Stub::GetServerInfo,
               weft::v1::GetServerInfoRequest(), timeout);
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
Client::Check(const std::string& service, absl::Duration timeout) const {
  grpc::ClientContext context;
  Prepare(&context, timeout, authorization_);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = health_->Check(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response.status();
}

std::string LazyValueName(absl::string_view name_or_id) {
  if (absl::StartsWith(name_or_id, "lazyValues/")) {
    return std::string(name_or_id);
  }
  return absl::StrCat("lazyValues/", name_or_id);
}

std::string TaskName(absl::string_view name_or_id) {
  if (absl::StartsWith(name_or_id, "tasks/")) return std::string(name_or_id);
  return absl::StrCat("tasks/", name_or_id);
}

bool IsTerminal(weft::v1::TaskState state) {
  switch (state) {
    case weft::v1::TASK_STATE_SUCCEEDED:
    case weft::v1::TASK_STATE_FAILED:
    case weft::v1::TASK_STATE_CANCELLED:
    case weft::v1::TASK_STATE_TIMED_OUT:
      return true;
    default:
      return false;
  }
}

}  // namespace weft::client
