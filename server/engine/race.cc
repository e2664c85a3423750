#include "server/engine/race.h"

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/engine/internal/pump.h"
#include "server/engine/internal/ref_counted.h"
#include "server/engine/sync.h"

namespace weft::engine {
namespace {

class RaceState : public RefCounted<RaceState> {
 public:
  RaceState(Env& env, const CancellationToken& parent,
            std::vector<RaceTask> tasks, RaceOptions options,
            absl::AnyInvocable<void(RaceResult) &&> done)
      : env_(env),
        parent_(parent),
        source_(parent),
        options_(options),
        tasks_(std::move(tasks)),
        results_(tasks_.size()),
        done_(std::move(done)) {
    result_.started.assign(tasks_.size(), false);
  }

  void Start() {
    const int n = static_cast<int>(tasks_.size());
    {
      MutexLock lock(&mu_);
      start_time_ = env_.Now();
      // Without a hedge delay every task starts now.
      startable_ = options_.hedge_delay <= absl::ZeroDuration() ? n : 1;
      if (n == 0) {
        decided_ = true;
        result_.status = absl::InvalidArgumentError("a race needs tasks");
      }
    }
    // The parent may be cancelled on another thread while this runs: its
    // callback then decides, and the race finishes (and drops on_cancel_)
    // only once Start is done with it.
    on_cancel_.emplace(parent_token(), [this](const absl::Status& reason) {
      OnParentCancelled(reason);
    });
    Pump();
    ScheduleHedge();
    {
      MutexLock lock(&mu_);
      starting_ = false;
    }
    MaybeFinish();
  }

 private:
  CancellationToken parent_token() const { return parent_; }

  // Starts every task that may start now. Re-entrant calls (a task finishing
  // inline and making the next one startable) leave the work to the outer
  // loop, so a chain of inline failures does not grow the stack.
  void Pump() {
    internal::Pump(
        mu_, pump_,
        [this]() -> std::optional<int> {
          mu_.AssertHeld();  // internal::Pump calls it under mu_.
          if (decided_ || next_ >= startable_ ||
              next_ >= static_cast<int>(tasks_.size())) {
            return std::nullopt;
          }
          result_.started[next_] = true;
          ++running_;
          return next_++;
        },
        [this](int index) {
          RaceTask task = std::move(tasks_[index]);
          RefPtr<RaceState> self(this);
          std::move(task)(source_.token(), [self, index](absl::Status s) {
            self->TaskDone(index, std::move(s));
          });
        });
  }

  // Arms the timer for the next hedged start, if any.
  void ScheduleHedge() {
    if (options_.hedge_delay <= absl::ZeroDuration()) return;
    MutexLock lock(&mu_);
    if (decided_ || has_timer_ ||
        startable_ >= static_cast<int>(tasks_.size())) {
      return;
    }
    has_timer_ = true;
    const absl::Time when = start_time_ + options_.hedge_delay * startable_;
    timer_ = env_.Schedule(
        when, [self = RefPtr<RaceState>(this)] { self->OnHedgeTimer(); });
  }

  void OnHedgeTimer() {
    {
      MutexLock lock(&mu_);
      has_timer_ = false;
      if (decided_) return;
      ++startable_;
    }
    Pump();
    ScheduleHedge();
    MaybeFinish();
  }

  void CancelHedge() {
    TimerId timer;
    {
      MutexLock lock(&mu_);
      if (!has_timer_) return;
      has_timer_ = false;
      timer = timer_;
    }
    env_.Cancel(timer);
  }

  void TaskDone(int index, absl::Status status) {
    std::optional<absl::Status> cancel_losers;
    bool start_next = false;
    bool decided_now = false;
    {
      MutexLock lock(&mu_);
      const bool was_decided = decided_;
      --running_;
      results_[index] = status;
      if (!decided_ && !status.ok() && parent_.cancelled()) {
        // Cancelled from above: the race ends with the parent's reason, and
        // no hedge starts.
        Decide(-1, parent_.reason());
      } else if (!decided_) {
        if (status.ok() || options_.mode == RaceMode::kFirstComplete) {
          Decide(index, status);
          // Named now, under the lock: once it is released the last loser
          // may end the race, and its done may free what task_name reads.
          cancel_losers =
              WithReason(absl::CancelledError(absl::StrCat(
                             "cancelled: lost the race to ", Name(index))),
                         "RACE_LOST");
        } else if (++failed_ == static_cast<int>(tasks_.size())) {
          Decide(-1, AllFailed(status.code()));
        } else if (failed_ == next_ && startable_ == next_) {
          // Every started task failed: start the next one now.
          ++startable_;
          start_next = true;
        }
      }
      decided_now = decided_ && !was_decided;
    }
    if (decided_now) CancelHedge();
    if (cancel_losers) source_.Cancel(*std::move(cancel_losers));
    if (start_next) {
      CancelHedge();
      Pump();
      ScheduleHedge();
    }
    MaybeFinish();
  }

  std::string Name(int index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return options_.task_name ? options_.task_name(index)
                              : absl::StrCat("task ", index);
  }

  void OnParentCancelled(const absl::Status& reason) {
    if (!TryRef()) return;
    RefPtr<RaceState> self = RefPtr<RaceState>::Adopt(this);
    {
      MutexLock lock(&mu_);
      if (decided_) return;
      Decide(-1, reason);
    }
    CancelHedge();
    MaybeFinish();
  }

  void Decide(int winner, absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    decided_ = true;
    result_.winner = winner;
    result_.status = std::move(status);
  }

  absl::Status AllFailed(absl::StatusCode last_code) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string message =
        absl::StrCat("all ", tasks_.size(), " alternatives failed: ");
    for (size_t i = 0; i < results_.size(); ++i) {
      absl::StrAppend(&message, i ? "; " : "", results_[i].message());
    }
    absl::Status out(last_code, message);
    // With the reason (payloads) of the last failure of that code.
    for (auto it = results_.rbegin(); it != results_.rend(); ++it) {
      if (it->code() != last_code) continue;
      it->ForEachPayload([&](absl::string_view url, const absl::Cord& value) {
        out.SetPayload(url, value);
      });
      break;
    }
    return out;
  }

  void MaybeFinish() {
    absl::AnyInvocable<void(RaceResult) &&> done;
    RaceResult result;
    {
      MutexLock lock(&mu_);
      if (!decided_ || running_ > 0 || pump_.pumping || starting_ ||
          finished_) {
        return;
      }
      finished_ = true;
      done = std::move(done_);
      result = std::move(result_);
    }
    on_cancel_.reset();
    std::move(done)(std::move(result));
  }

  Env& env_;
  const CancellationToken parent_;
  CancellationSource source_;
  const RaceOptions options_;
  std::vector<RaceTask> tasks_;  // Each moved out when it starts.
  std::optional<CancellationCallback> on_cancel_;

  Mutex mu_;
  std::vector<absl::Status> results_ ABSL_GUARDED_BY(mu_);
  absl::AnyInvocable<void(RaceResult) &&> done_ ABSL_GUARDED_BY(mu_);
  RaceResult result_ ABSL_GUARDED_BY(mu_);
  absl::Time start_time_ ABSL_GUARDED_BY(mu_);
  int next_ ABSL_GUARDED_BY(mu_) = 0;       // Tasks started so far.
  int startable_ ABSL_GUARDED_BY(mu_) = 0;  // Tasks allowed to start.
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  bool decided_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Until Start has set up on_cancel_, started the first tasks and the hedge.
  bool starting_ ABSL_GUARDED_BY(mu_) = true;
  internal::PumpState pump_;  // Guarded by mu_.
  bool has_timer_ ABSL_GUARDED_BY(mu_) = false;
  TimerId timer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void RunUntilFirstComplete(Env& env, const CancellationToken& parent,
                           std::vector<RaceTask> tasks, RaceOptions options,
                           absl::AnyInvocable<void(RaceResult) &&> done) {
  RefPtr<RaceState>::Adopt(
      new RaceState(env, parent, std::move(tasks), options, std::move(done)))
      ->Start();
}

}  // namespace weft::engine
