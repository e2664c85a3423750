#include "server/service/health_service.h"

#include <optional>
#include <utility>

#include "server/service/reactor.h"

namespace weft::service {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace {
constexpr char kOrchestrator[] = "weft.v1.Orchestrator";
}  // namespace

// One Watch stream: writes the current status, then each change. Only the
// latest status matters, so changes that arrive during a write collapse into
// one.
class HealthService::Watcher final : public WriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  // Called with service_->mu_ held.
  void Update(ServingStatus status) {
    engine::MutexLock lock(&mu_);
    if (finished_) return;
    pending_ = status;
    MaybeWriteLocked();
  }

  // Called with service_->mu_ held.
  void End(grpc::Status status) {
    engine::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    if (!writing_)
      Finish(std::move(status));
    else
      final_status_ = std::move(status);
  }

  void OnWriteDone(bool ok) override {
    CalledByGrpc(this);
    engine::MutexLock lock(&mu_);
    writing_ = false;
    if (finished_) {
      if (final_status_.has_value()) {
        grpc::Status status = *std::move(final_status_);
        final_status_.reset();
        Finish(std::move(status));
      }
      return;
    }
    if (!ok) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    CalledByGrpc(this);
    engine::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    if (!writing_) {
      Finish(grpc::Status::CANCELLED);
    } else {
      final_status_ = grpc::Status::CANCELLED;
    }
  }

  void OnDone() override {
    CalledByGrpc(this);
    {
      // A reaction that called Finish may still hold the lock: let it go
      // first.
      engine::MutexLock lock(&mu_);
    }
    service_->RemoveWatcher(this);
    delete this;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || !pending_.has_value() || pending_ == sent_) return;
    sent_ = pending_;
    response_.set_status(*pending_);
    writing_ = true;
    StartWrite(&response_);
  }

  HealthService* const service_;
  const std::string name_;
  engine::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  std::optional<ServingStatus> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<ServingStatus> sent_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> final_status_ ABSL_GUARDED_BY(mu_);

 public:
  const std::string& name() const { return name_; }
};

HealthService::HealthService() = default;

HealthService::~HealthService() {
  // The server has shut down by now, so every watcher is done.
  engine::MutexLock lock(&mu_);
  while (!watchers_.empty()) watchers_gone_.Wait(&mu_);
}

HealthService::ServingStatus HealthService::StatusOf(
    const std::string& service) const {
  if (!service.empty() && service != kOrchestrator) {
    return HealthCheckResponse::SERVICE_UNKNOWN;
  }
  return serving_ ? HealthCheckResponse::SERVING
                  : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  engine::MutexLock lock(&mu_);
  serving_ = serving;
  for (Watcher* w : watchers_) w->Update(StatusOf(w->name()));
}

void HealthService::Shutdown() {
  engine::MutexLock lock(&mu_);
  serving_ = false;
  shut_down_ = true;
  for (Watcher* w : watchers_) {
    w->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
}

void HealthService::RemoveWatcher(Watcher* w) {
  engine::MutexLock lock(&mu_);
  watchers_.erase(w);
  if (watchers_.empty()) watchers_gone_.SignalAll();
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ServingStatus status;
  {
    engine::MutexLock lock(&mu_);
    status = StatusOf(request->service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        "unknown service \"" + request->service() +
            "\"; this server reports \"\" and \"weft.v1.Orchestrator\""));
    return Handed(reactor);
  }
  response->set_status(status);
  reactor->Finish(grpc::Status::OK);
  return Handed(reactor);
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, request->service());
  engine::MutexLock lock(&mu_);
  watchers_.insert(watcher);
  if (shut_down_) {
    watcher->End(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  } else {
    watcher->Update(StatusOf(request->service()));
  }
  return watcher;
}

}  // namespace weft::service
