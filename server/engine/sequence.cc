#include "server/engine/sequence.h"

#include <utility>

#include "absl/base/thread_annotations.h"
#include "server/engine/sync.h"

namespace weft::engine {
namespace {

// Deletes itself after `done`.
class SequenceState {
 public:
  SequenceState(const CancellationToken& token, std::vector<SequenceTask> tasks,
                absl::AnyInvocable<void(SequenceResult) &&> done)
      : token_(token), tasks_(std::move(tasks)), done_(std::move(done)) {}

  // Runs tasks while each one finishes inline; returns when one goes
  // asynchronous (its completion resumes the loop) or the sequence ends.
  void Run() {
    for (;;) {
      int index;
      {
        MutexLock lock(&mu_);
        if (result_.status.ok() && next_ < static_cast<int>(tasks_.size()) &&
            token_.cancelled()) {
          result_.status = token_.reason();
        }
        if (!result_.status.ok() || next_ == static_cast<int>(tasks_.size())) {
          break;
        }
        index = next_++;
        result_.ran = next_;
        completed_inline_ = false;
        in_task_ = true;
      }
      std::move(tasks_[index])(
          token_, [this](absl::Status s) { TaskDone(std::move(s)); });
      {
        MutexLock lock(&mu_);
        in_task_ = false;
        // Not finished inline: the completion continues from there.
        if (!completed_inline_) return;
      }
    }
    Finish();
  }

 private:
  void TaskDone(absl::Status status) {
    {
      MutexLock lock(&mu_);
      if (!status.ok()) result_.status = std::move(status);
      if (in_task_) {
        completed_inline_ = true;
        return;
      }
    }
    Run();
  }

  void Finish() {
    absl::AnyInvocable<void(SequenceResult)&&> done = std::move(done_);
    SequenceResult result;
    {
      MutexLock lock(&mu_);
      result = std::move(result_);
    }
    delete this;
    std::move(done)(std::move(result));
  }

  const CancellationToken token_;
  std::vector<SequenceTask> tasks_;
  absl::AnyInvocable<void(SequenceResult) &&> done_;
  Mutex mu_;
  SequenceResult result_ ABSL_GUARDED_BY(mu_);
  int next_ ABSL_GUARDED_BY(mu_) = 0;
  bool in_task_ ABSL_GUARDED_BY(mu_) = false;
  bool completed_inline_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

void RunInSequence(const CancellationToken& token,
                   std::vector<SequenceTask> tasks,
                   absl::AnyInvocable<void(SequenceResult) &&> done) {
  (new SequenceState(token, std::move(tasks), std::move(done)))->Run();
}

}  // namespace weft::engine
