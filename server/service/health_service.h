// grpc.health.v1.Health, served from weft's own compiled health.proto (not
// gRPC's built-in health service) so that clients can describe and call it
// through server reflection, with no local .proto files.
//
// Knows two services: "" (the server as a whole) and "weft.v1.Orchestrator".
// Both are SERVING from start until SetServing(false) at shutdown.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_SERVICE_HEALTH_SERVICE_H_
#define WEFT_SERVER_SERVICE_HEALTH_SERVICE_H_

#include <set>

#include "absl/base/thread_annotations.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/engine/sync.h"

namespace weft::service {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService();
  ~HealthService() override;

  // Sets every known service to SERVING or NOT_SERVING and tells watchers.
  void SetServing(bool serving);
  // Ends every Watch stream (with UNAVAILABLE), so that the server can shut
  // down; later Watch calls end at once the same way.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;

  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;

  void RemoveWatcher(Watcher* w);

  // SERVICE_UNKNOWN for a name it does not know.
  ServingStatus StatusOf(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Lock order: mu_, then a Watcher's own lock. Calling into gRPC while
  // holding them is safe because gRPC never runs a user reactor's reactions
  // inline from StartWrite() or Finish().
  mutable engine::Mutex mu_;
  engine::CondVar watchers_gone_;
  bool serving_ ABSL_GUARDED_BY(mu_) = true;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_HEALTH_SERVICE_H_
