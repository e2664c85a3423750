// weft.v1.Orchestrator's BackupStore: the task store's copy, made beside it
// on a thread of its own, streamed in pieces of 1 MiB, then removed.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/service/orchestrator_service.h"
#include "server/service/reactor.h"
#include "server/service/reply.h"

namespace weft::service {
namespace {

constexpr size_t kPieceBytes = 1 << 20;

}  // namespace

class OrchestratorService::BackupReactor final
    : public WriteReactor<weft::v1::BackupStoreResponse> {
 public:
  explicit BackupReactor(OrchestratorService* service) : service_(service) {}

  void Start() {
    if (service_->task_store_ == nullptr) {
      Finish(ToGrpc(absl::FailedPreconditionError("this server has no store")));
      return;
    }
    if (service_->backing_up_.exchange(true)) {
      Finish(ToGrpc(absl::ResourceExhaustedError(
          "a backup of the store is being made already; retry once it is "
          "done")));
      return;
    }
    owns_turn_ = true;
    // The copy reads the whole store: off gRPC's threads.
    copier_ = std::thread([this] {
      absl::StatusOr<std::string> copy =
          service_->task_store_->BackupToNewFile();
      if (!copy.ok()) {
        Finish(ToGrpc(copy.status()));
        return;
      }
      path_ = *std::move(copy);
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) {
        Finish(ToGrpc(absl::InternalError(absl::StrCat(
            "cannot read the copy ", path_, ": ", std::strerror(errno)))));
        return;
      }
      total_ = ::lseek(fd_, 0, SEEK_END);
      ::lseek(fd_, 0, SEEK_SET);
      SendNext();
    });
  }

  void OnWriteDone(bool ok) override {
    CalledByGrpc(this);
    if (!ok) {
      // The caller left.
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the caller left"));
      return;
    }
    SendNext();
  }

  void OnDone() override {
    CalledByGrpc(this);
    // The copier's last act was a call into gRPC, which came before this.
    if (copier_.joinable()) copier_.join();
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
    if (owns_turn_) service_->backing_up_.store(false);
    delete this;
  }

 private:
  // One piece at a time: from the copier, then from each OnWriteDone.
  void SendNext() {
    response_.set_total_bytes(total_);
    std::string* data = response_.mutable_data();
    data->resize(kPieceBytes);
    const ssize_t n = ::read(fd_, data->data(), kPieceBytes);
    if (n < 0) {
      Finish(ToGrpc(absl::InternalError(absl::StrCat(
          "cannot read the copy ", path_, ": ", std::strerror(errno)))));
      return;
    }
    data->resize(static_cast<size_t>(n));
    if (n == 0 && sent_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    sent_ += n;
    StartWrite(&response_);
  }

  OrchestratorService* const service_;
  bool owns_turn_ = false;
  std::thread copier_;
  std::string path_;
  int fd_ = -1;
  int64_t total_ = 0;
  int64_t sent_ = 0;
  weft::v1::BackupStoreResponse response_;
};

grpc::ServerWriteReactor<weft::v1::BackupStoreResponse>*
OrchestratorService::BackupStore(grpc::CallbackServerContext* context,
                                 const weft::v1::BackupStoreRequest*) {
  if (absl::StatusOr<auth::Principal> caller =
          AdminCaller(*context, "BackupStore");
      !caller.ok()) {
    return RefusedStream<weft::v1::BackupStoreResponse>::Of(caller.status());
  }
  auto* reactor = new BackupReactor(this);
  reactor->Start();
  return Handed(reactor);
}

}  // namespace weft::service
