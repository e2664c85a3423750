#include "server/engine/task_group.h"

#include <cassert>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/engine/internal/pump.h"
#include "server/engine/sync.h"

namespace weft::engine {

// Lives until every task and the Join are done; the last of them deletes it.
class TaskGroup::State {
 public:
  State(const CancellationToken& parent, TaskGroupOptions options)
      : source_(parent), options_(options) {}

  CancellationToken token() const { return source_.token(); }
  void Cancel(absl::Status reason) { source_.Cancel(std::move(reason)); }

  void Spawn(Task task) {
    {
      MutexLock lock(&mu_);
      ++pending_;
      ++spawned_;
      // Start at once when nothing waits ahead of it and there is room;
      // otherwise queue, in order, for the pump.
      const bool room =
          options_.max_concurrency <= 0 || running_ < options_.max_concurrency;
      if (!waiting_.empty() || !room || pump_.pumping) {
        waiting_.push_back(std::move(task));
        task = nullptr;
      } else {
        ++running_;
      }
    }
    if (task) {
      std::move(task)(source_.token(),
                      [this](absl::Status s) { TaskDone(std::move(s)); });
    } else {
      Pump();
    }
  }

  void Join(Done on_done) {
    absl::Status cancel_reason;
    {
      MutexLock lock(&mu_);
      on_done_ = std::move(on_done);
      joined_ = true;
      cancel_reason = Evaluate();
    }
    if (!cancel_reason.ok()) source_.Cancel(std::move(cancel_reason));
    Release();
  }

 private:
  // Starts waiting tasks while there is room. Re-entrant calls (a task that
  // finishes inline makes room for the next) leave the work to the outer
  // loop, so long chains of inline completions do not grow the stack.
  void Pump() {
    {
      MutexLock lock(&mu_);
      ++pending_;  // Holds the state alive while this call runs.
    }
    internal::Pump(
        mu_, pump_,
        [this]() -> std::optional<Task> {
          mu_.AssertHeld();  // internal::Pump calls it under mu_.
          const bool room = options_.max_concurrency <= 0 ||
                            running_ < options_.max_concurrency ||
                            source_.cancelled();
          if (waiting_.empty() || !room) return std::nullopt;
          Task task = std::move(waiting_.front());
          waiting_.pop_front();
          ++running_;
          return task;
        },
        [this](Task task) {
          std::move(task)(source_.token(),
                          [this](absl::Status s) { TaskDone(std::move(s)); });
        });
    Release();
  }

  void TaskDone(absl::Status status) {
    absl::Status cancel_reason;
    bool pump = false;
    {
      MutexLock lock(&mu_);
      --running_;
      if (status.ok()) {
        ++succeeded_;
      } else {
        ++failed_;
        failures_.push_back(status);
        if (first_failure_.ok()) first_failure_ = status;
      }
      cancel_reason = Evaluate();
      pump = !waiting_.empty();
    }
    if (!cancel_reason.ok()) source_.Cancel(std::move(cancel_reason));
    if (pump) Pump();
    Release();
  }

  // Decides the group if its policy says so; returns the reason to cancel
  // the remaining tasks with, or OK.
  absl::Status Evaluate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (decided_) return absl::OkStatus();
    switch (options_.join) {
      case JoinPolicy::kAll:
        if (!first_failure_.ok()) {
          decided_ = true;
          result_ = first_failure_;
          return WithReason(absl::CancelledError(absl::StrCat(
                                "cancelled because a sibling failed: ",
                                first_failure_.message())),
                            "SIBLING_FAILED");
        }
        return absl::OkStatus();
      case JoinPolicy::kAllSettled:
        return absl::OkStatus();
      case JoinPolicy::kQuorum:
        if (succeeded_ >= options_.quorum) {
          decided_ = true;
          result_ = absl::OkStatus();
          return WithReason(absl::CancelledError(
                                absl::StrCat("cancelled: the quorum of ",
                                             options_.quorum, " was reached")),
                            "QUORUM_REACHED");
        }
        // Only once every task is known can the quorum become impossible.
        if (joined_ && spawned_ - failed_ < options_.quorum) {
          decided_ = true;
          std::string message =
              absl::StrCat("the quorum of ", options_.quorum,
                           " can no longer be reached: ", failed_, " of ",
                           spawned_, " failed: ");
          for (size_t i = 0; i < failures_.size(); ++i) {
            absl::StrAppend(&message, i ? "; " : "", failures_[i].message());
          }
          result_ = WithReason(absl::Status(failures_.back().code(), message),
                               "QUORUM_UNREACHABLE");
          return WithReason(
              absl::CancelledError(absl::StrCat("cancelled: ", message)),
              "SIBLING_FAILED");
        }
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  void Release() {
    Done on_done;
    absl::Status result;
    {
      MutexLock lock(&mu_);
      if (--pending_ > 0) return;
      on_done = std::move(on_done_);
      if (decided_) {
        result = result_;
      } else if (options_.join == JoinPolicy::kAllSettled) {
        result = absl::OkStatus();
      } else {
        // Undecided at the end: kAll with no failure, or a parent
        // cancellation that every task absorbed.
        result = first_failure_;
      }
    }
    // pending_ reached zero only after Join, so on_done is set.
    delete this;
    std::move(on_done)(std::move(result));
  }

  CancellationSource source_;
  const TaskGroupOptions options_;
  Mutex mu_;
  // Tasks spawned and not done, plus one for Join and one per Pump call.
  int pending_ ABSL_GUARDED_BY(mu_) = 1;
  int spawned_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  bool decided_ ABSL_GUARDED_BY(mu_) = false;
  internal::PumpState pump_;  // Guarded by mu_.
  std::deque<Task> waiting_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  absl::Status first_failure_ ABSL_GUARDED_BY(mu_);
  absl::Status result_ ABSL_GUARDED_BY(mu_);
  Done on_done_ ABSL_GUARDED_BY(mu_);
};

TaskGroup::TaskGroup(const CancellationToken& parent, TaskGroupOptions options)
    : state_(new State(parent, options)) {}

TaskGroup::~TaskGroup() { assert(state_ == nullptr && "TaskGroup not joined"); }

TaskGroup::TaskGroup(TaskGroup&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

void TaskGroup::Spawn(Task task) { state_->Spawn(std::move(task)); }

void TaskGroup::Cancel(absl::Status reason) {
  state_->Cancel(std::move(reason));
}

CancellationToken TaskGroup::token() const { return state_->token(); }

void TaskGroup::Join(Done on_done) && {
  State* state = std::exchange(state_, nullptr);
  state->Join(std::move(on_done));
}

}  // namespace weft::engine
