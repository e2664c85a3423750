#include "server/weftd/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/common/error_details.h"
#include "server/common/errors.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"
#include "server/service/orchestrator_service.h"
#include "server/weftd/metrics.h"
#include "weft/v1/orchestrator.pb.h"

namespace weft::weftd {
namespace {

using grpc::experimental::InterceptionHookPoints;

int OpenAppend(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

// `s` as a JSON string.
std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// The resource a typed request names: its `name` field.
template <typename Request>
std::string RequestName(void* message) {
  return static_cast<const Request*>(message)->name();
}

using NameFn = std::string (*)(void*);

const absl::flat_hash_map<std::string, NameFn>& NamedRequests() {
  static const auto* names = new absl::flat_hash_map<std::string, NameFn>{
      {"/weft.v1.Orchestrator/GetTask", &RequestName<weft::v1::GetTaskRequest>},
      {"/weft.v1.Orchestrator/CancelTask",
       &RequestName<weft::v1::CancelTaskRequest>},
      {"/weft.v1.Orchestrator/WaitTask",
       &RequestName<weft::v1::WaitTaskRequest>},
      {"/weft.v1.Orchestrator/WatchTask",
       &RequestName<weft::v1::WatchTaskRequest>},
      {"/weft.v1.Orchestrator/DeleteTask",
       &RequestName<weft::v1::DeleteTaskRequest>},
      {"/weft.v1.Orchestrator/GetLazyValue",
       &RequestName<weft::v1::GetLazyValueRequest>},
      {"/weft.v1.Orchestrator/ResolveLazyValue",
       &RequestName<weft::v1::ResolveLazyValueRequest>},
      {"/weft.v1.Orchestrator/ResetLazyValue",
       &RequestName<weft::v1::ResetLazyValueRequest>},
      {"/weft.v1.Orchestrator/DeleteLazyValue",
       &RequestName<weft::v1::DeleteLazyValueRequest>},
  };
  return *names;
}

// Methods whose answer (raw bytes: a Task or a LazyValue) names what they
// made, in field 1.
// The methods weftd serves, as their gRPC paths: what metrics may label.
bool IsServedMethod(absl::string_view method) {
  static const auto* served = [] {
    auto* set = new absl::flat_hash_set<std::string>();
    for (const char* service : {"weft.v1.Orchestrator", "grpc.health.v1.Health",
                                "grpc.reflection.v1.ServerReflection",
                                "grpc.reflection.v1alpha.ServerReflection"}) {
      const google::protobuf::ServiceDescriptor* d =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
              service);
      for (int i = 0; d != nullptr && i < d->method_count(); ++i) {
        set->insert(absl::StrCat("/", service, "/", d->method(i)->name()));
      }
    }
    return set;
  }();
  return served->contains(method);
}

// A method path as a caller sent it, safe to log: printable ASCII, at most
// 200 bytes.
std::string PrintableMethod(absl::string_view method) {
  std::string out(method.substr(0, 200));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

bool NamesInAnswer(absl::string_view method) {
  return method == "/weft.v1.Orchestrator/CreateTask" ||
         method == "/weft.v1.Orchestrator/CreateLazyValue";
}

// Field 1 of a serialized Task or LazyValue (its name), if it comes first
// as protobuf writes it.
std::string NameInAnswer(grpc::ByteBuffer* answer) {
  std::vector<grpc::Slice> slices;
  if (answer == nullptr || !answer->Dump(&slices).ok() || slices.empty()) {
    return "";
  }
  // The name is in the first bytes: tag 0x0a, a one- or two-byte length.
  std::string head;
  for (const grpc::Slice& s : slices) {
    head.append(reinterpret_cast<const char*>(s.begin()), s.size());
    if (head.size() >= 256) break;
  }
  if (head.size() < 2 || head[0] != 0x0a) return "";
  size_t length = static_cast<unsigned char>(head[1]);
  size_t start = 2;
  if (length & 0x80) {
    if (head.size() < 3) return "";
    length =
        (length & 0x7f) | (size_t{static_cast<unsigned char>(head[2])} << 7);
    start = 3;
  }
  if (start + length > head.size()) return "";
  return head.substr(start, length);
}

class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(grpc::experimental::ServerRpcInfo* info, AccessLog* log,
                  RpcMetrics* metrics, const auth::Callers* callers)
      : info_(info),
        log_(log),
        metrics_(metrics),
        callers_(callers),
        start_(absl::Now()),
        // Any path reaches the interceptor (gRPC answers unknown ones
        // UNIMPLEMENTED after it): metrics label only the methods served.
        metric_method_(IsServedMethod(info->method()) ? info->method()
                                                      : "unknown") {
    record_.method = PrintableMethod(info->method());
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (log_ == nullptr) {
      // Metrics alone: the method, the code and the time.
      if (methods->QueryInterceptionHookPoint(
              InterceptionHookPoints::PRE_SEND_STATUS)) {
        metrics_->Record(metric_method_,
                         common::CodeName(static_cast<absl::StatusCode>(
                             methods->GetSendStatus().error_code())),
                         absl::Now() - start_);
      }
      methods->Proceed();
      return;
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      const auto* metadata = methods->GetRecvInitialMetadata();
      if (metadata != nullptr) {
        auto trace = metadata->find("traceparent");
        if (trace != metadata->end()) {
          record_.trace_id = common::TraceId(
              absl::string_view(trace->second.data(), trace->second.size()));
        }
        grpc::ServerContextBase* context = info_->server_context();
        const std::shared_ptr<const grpc::AuthContext> auth =
            context->auth_context();
        absl::StatusOr<auth::Principal> caller =
            service::CallerOf(callers_, *metadata, auth.get());
        if (caller.ok()) record_.principal = caller->name;
        record_.peer = context->peer();
      }
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE)) {
      auto it = NamedRequests().find(record_.method);
      void* message = methods->GetRecvMessage();
      if (it != NamedRequests().end() && message != nullptr) {
        record_.resource = it->second(message);
      }
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_MESSAGE) &&
        NamesInAnswer(record_.method)) {
      record_.resource = NameInAnswer(methods->GetSerializedSendMessage());
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      record_.code =
          common::CodeName(static_cast<absl::StatusCode>(status.error_code()));
      if (!status.ok() && !status.error_details().empty()) {
        google::rpc::Status rpc;
        if (rpc.ParseFromString(status.error_details())) {
          record_.reason = common::Reason(common::FromRpcStatus(rpc));
        }
      }
      record_.time = absl::Now();
      record_.duration = record_.time - start_;
      log_->Write(FormatAccessRecord(record_));
      if (metrics_ != nullptr) {
        metrics_->Record(metric_method_, record_.code, record_.duration);
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  AccessLog* const log_;
  RpcMetrics* const metrics_;
  const auth::Callers* const callers_;
  const absl::Time start_;
  const std::string metric_method_;
  AccessRecord record_;
};

class CallInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  CallInterceptorFactory(AccessLog* log, RpcMetrics* metrics,
                         const auth::Callers* callers)
      : log_(log), metrics_(metrics), callers_(callers) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(info, log_, metrics_, callers_);
  }

 private:
  AccessLog* const log_;
  RpcMetrics* const metrics_;
  const auth::Callers* const callers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(
    const std::string& path) {
  if (path == "-") return std::unique_ptr<AccessLog>(new AccessLog(path, 2));
  const int fd = OpenAppend(path);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot open for appending: ", strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(path, fd));
}

AccessLog::~AccessLog() {
  engine::MutexLock lock(&mu_);
  if (fd_ != 2) close(fd_);
}

absl::Status AccessLog::Reopen() {
  if (path_ == "-") return absl::OkStatus();
  const int fd = OpenAppend(path_);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat(path_, ": cannot open for appending: ", strerror(errno)));
  }
  int old;
  {
    engine::MutexLock lock(&mu_);
    old = fd_;
    fd_ = fd;
  }
  close(old);
  return absl::OkStatus();
}

void AccessLog::Write(absl::string_view line) {
  std::string out(line);
  out += '\n';
  engine::MutexLock lock(&mu_);
  // One write: O_APPEND keeps lines whole. A full disk loses the line
  // rather than blocking calls.
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = write(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string FormatAccessRecord(const AccessRecord& r) {
  std::string out =
      absl::StrCat("{\"time\": ",
                   JsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", r.time,
                                               absl::UTCTimeZone())),
                   ", \"method\": ", JsonString(r.method));
  auto add = [&](absl::string_view key, const std::string& value) {
    if (!value.empty())
      absl::StrAppend(&out, ", \"", key, "\": ", JsonString(value));
  };
  add("principal", r.principal);
  add("peer", r.peer);
  add("code", r.code);
  add("reason", r.reason);
  absl::StrAppendFormat(&out, ", \"duration_ms\": %.3f",
                        absl::ToDoubleMilliseconds(r.duration));
  add("resource", r.resource);
  add("trace_id", r.trace_id);
  return out + "}";
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallInterceptors(AccessLog* log, RpcMetrics* metrics,
                 const auth::Callers* callers) {
  return std::make_unique<CallInterceptorFactory>(log, metrics, callers);
}

}  // namespace weft::weftd
