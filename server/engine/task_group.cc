#include "server/engine/task_group.h"

#include <cassert>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/engine/sync.h"

namespace weft::engine {

// Lives until every task and the Join are done; the last of them deletes it.
class TaskGroup::State {
 public:
  explicit State(const CancellationToken& parent) : source_(parent) {}

  CancellationToken token() const { return source_.token(); }
  void Cancel(absl::Status reason) { source_.Cancel(std::move(reason)); }

  void AddTask() {
    MutexLock lock(&mu_);
    ++pending_;
  }

  void TaskDone(absl::Status status) {
    bool cancel_siblings = false;
    if (!status.ok()) {
      MutexLock lock(&mu_);
      if (first_failure_.ok()) {
        first_failure_ = status;
        cancel_siblings = true;
      }
    }
    if (cancel_siblings) {
      source_.Cancel(absl::CancelledError(absl::StrCat(
          "cancelled because a sibling failed: ", status.message())));
    }
    Release();
  }

  void Join(OnDone on_done) {
    {
      MutexLock lock(&mu_);
      on_done_ = std::move(on_done);
    }
    Release();
  }

 private:
  void Release() {
    OnDone on_done;
    absl::Status result;
    {
      MutexLock lock(&mu_);
      if (--pending_ > 0) return;
      on_done = std::move(on_done_);
      result = first_failure_;
    }
    // pending_ reached zero only after Join, so on_done is set.
    delete this;
    std::move(on_done)(std::move(result));
  }

  CancellationSource source_;
  Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 1;  // Tasks, plus one for Join.
  absl::Status first_failure_ ABSL_GUARDED_BY(mu_);
  OnDone on_done_ ABSL_GUARDED_BY(mu_);
};

TaskGroup::TaskGroup(const CancellationToken& parent)
    : state_(new State(parent)) {}

TaskGroup::~TaskGroup() { assert(state_ == nullptr && "TaskGroup not joined"); }

TaskGroup::TaskGroup(TaskGroup&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

void TaskGroup::Spawn(Task task) {
  state_->AddTask();
  State* state = state_;
  std::move(task)(state->token(),
                  [state](absl::Status s) { state->TaskDone(std::move(s)); });
}

void TaskGroup::Cancel(absl::Status reason) {
  state_->Cancel(std::move(reason));
}

CancellationToken TaskGroup::token() const { return state_->token(); }

void TaskGroup::Join(OnDone on_done) && {
  State* state = std::exchange(state_, nullptr);
  state->Join(std::move(on_done));
}

}  // namespace weft::engine
