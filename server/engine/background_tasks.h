// BackgroundTasks: start work that outlives the request that created it, and
// read its status later (create_background_task plus a status endpoint).
//
// clang-format off
//   BackgroundTasks tasks(loop);
//   uint64_t id = tasks.Create([](const CancellationToken& token, Done done) {
//     SendNewsletter(token, std::move(done));
//   });
//   Show(tasks.Get(id)->state);  // kRunning, then kSucceeded / kFailed / kCancelled
//   tasks.Cancel(id, absl::CancelledError("stopped by the operator"));
//   Show(tasks.active());        // how many still run
//   tasks.CancelAll(absl::CancelledError("shutting down"));  // before destroying it
//   tasks.WaitIdle(absl::InfiniteFuture());
// clang-format on
//
// Thread-safety: thread-safe. The owner drains the work at shutdown
// (CancelAll, then WaitIdle) before destroying it.

#ifndef WEFT_SERVER_ENGINE_BACKGROUND_TASKS_H_
#define WEFT_SERVER_ENGINE_BACKGROUND_TASKS_H_

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"
#include "server/engine/env.h"
#include "server/engine/sync.h"

namespace weft::engine {

class BackgroundTasks {
 public:
  enum class State { kRunning, kSucceeded, kFailed, kCancelled };

  struct Info {
    State state = State::kRunning;
    absl::Status status;  // Once finished.
    absl::Time created;
    absl::Time ended;  // Once finished.
  };

  using Task = AsyncTask;

  explicit BackgroundTasks(Env& env) : env_(env) {}
  // Requires that no task still runs.
  ~BackgroundTasks();

  // Starts `task` now and returns its id (never 0).
  uint64_t Create(Task task);
  // nullopt for an id it does not know (never created, or forgotten).
  std::optional<Info> Get(uint64_t id) const;
  // Cancels a running task; false if unknown or already finished.
  bool Cancel(uint64_t id, absl::Status reason);
  // Drops a finished task's record; false if unknown or still running.
  bool Forget(uint64_t id);
  // Tasks still running.
  int active() const;
  // Cancels every running task.
  void CancelAll(absl::Status reason);
  // Waits until no task runs or `deadline` passes; true if none runs.
  bool WaitIdle(absl::Time deadline);

 private:
  struct Entry {
    Info info;
    CancellationSource source;
  };

  void Finished(uint64_t id, absl::Status status);

  Env& env_;
  mutable Mutex mu_;
  CondVar idle_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Entry> tasks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_BACKGROUND_TASKS_H_
