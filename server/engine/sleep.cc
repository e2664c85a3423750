#include "server/engine/sleep.h"

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "server/engine/internal/ref_counted.h"
#include "server/engine/sync.h"

namespace weft::engine {
namespace {

// One sleep. References: the starter's, while it arms the timer, and the
// timer function's, until it runs or is cancelled.
class SleepOp : public RefCounted<SleepOp> {
 public:
  SleepOp(Env& env, Done done) : env_(env), done_(std::move(done)) {}

  void Start(const CancellationToken& token, absl::Time until) {
    // Register first: if the token is already cancelled, OnCancel runs now
    // and sees no timer.
    on_cancel_.emplace(
        token, [this](const absl::Status& reason) { OnCancel(reason); });
    absl::Status early;
    {
      MutexLock lock(&mu_);
      if (early_reason_.ok()) {
        timer_ = env_.Schedule(
            until, [self = RefPtr<SleepOp>(this)] { self->OnTimer(); });
        armed_ = true;
        return;
      }
      early = early_reason_;
    }
    Finish(std::move(early));
  }

 private:
  void OnTimer() {
    // After this no cancellation function is running or will run.
    on_cancel_.reset();
    Finish(absl::OkStatus());
  }

  void OnCancel(const absl::Status& reason) {
    // Until this returns, the timer's function (held back in OnTimer's
    // on_cancel_.reset()) or the starter holds a reference; TryRef keeps that
    // from mattering.
    if (!TryRef()) return;
    RefPtr<SleepOp> self = RefPtr<SleepOp>::Adopt(this);
    TimerId timer;
    {
      MutexLock lock(&mu_);
      if (!armed_) {
        early_reason_ = reason;
        return;
      }
      timer = timer_;
    }
    // If the timer already fired, the sleep is over and OnTimer reports it.
    if (env_.Cancel(timer)) Finish(reason);
  }

  void Finish(absl::Status status) {
    Done done;
    {
      MutexLock lock(&mu_);
      done = std::move(done_);
      done_ = nullptr;
    }
    if (done) std::move(done)(std::move(status));
  }

  Env& env_;
  Mutex mu_;
  Done done_ ABSL_GUARDED_BY(mu_);
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  TimerId timer_ ABSL_GUARDED_BY(mu_);
  absl::Status early_reason_ ABSL_GUARDED_BY(mu_);
  std::optional<CancellationCallback> on_cancel_;
};

}  // namespace

void SleepUntil(Env& env, const CancellationToken& token, absl::Time until,
                Done done) {
  if (token.cancelled()) {
    std::move(done)(token.reason());
    return;
  }
  RefPtr<SleepOp> op =
      RefPtr<SleepOp>::Adopt(new SleepOp(env, std::move(done)));
  op->Start(token, until);
}

}  // namespace weft::engine
