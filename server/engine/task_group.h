// TaskGroup: fan out, fail fast, cancel the siblings (Python's
// asyncio.TaskGroup, Nexios's TaskGroup), for callback-style work; with
// options, also gather-all-settled, quorum, and a bound on concurrency.
//
// clang-format off
//   TaskGroup group(parent_token);
//   for (const Item& item : items) {
//     group.Spawn([&item](const CancellationToken& token, Done done) {
//       Fetch(item, token, std::move(done));
//     });
//   }
//   std::move(group).Join([](absl::Status first_failure) { Show(first_failure); });
// clang-format on
//
// Join policies:
//  - kAll (the default): the first task to fail cancels the group, so every
//    other task sees its token cancelled ("cancelled because a sibling
//    failed: ..."); Join gets that failure.
//  - kAllSettled: nothing is cancelled; Join gets OK once every task is done,
//    whatever each one did.
//  - kQuorum: Join gets OK as soon as `quorum` tasks have succeeded, and the
//    rest are cancelled ("quorum reached"); it fails (with the code of the
//    last failure and a message listing the failures) as soon as the quorum
//    can no longer be reached, and the rest are cancelled.
// With max_concurrency > 0, at most that many tasks run at once; the others
// wait and start as running ones finish. Tasks still waiting when the group
// is decided or cancelled start with their token already cancelled.
//
// Join's callback runs once, after every task has called its Done. Cancelling
// the parent cancels the group the same way, and Join then reports the first
// failure (normally that cancellation).
//
// Thread-safety: tasks may complete on any thread. Spawn, Cancel and Join are
// for the owner; Spawn must not be called after Join.

#ifndef WEFT_SERVER_ENGINE_TASK_GROUP_H_
#define WEFT_SERVER_ENGINE_TASK_GROUP_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"

namespace weft::engine {

enum class JoinPolicy { kAll, kAllSettled, kQuorum };

struct TaskGroupOptions {
  JoinPolicy join = JoinPolicy::kAll;
  // kQuorum: how many tasks must succeed (at least 1).
  int quorum = 1;
  // At most this many tasks run at once; 0 for no bound.
  int max_concurrency = 0;
};

class TaskGroup {
 public:
  using Task = AsyncTask;

  explicit TaskGroup(const CancellationToken& parent = {},
                     TaskGroupOptions options = {});
  // A group must be joined before it is destroyed.
  ~TaskGroup();
  TaskGroup(TaskGroup&& other) noexcept;
  TaskGroup& operator=(TaskGroup&&) = delete;
  TaskGroup(const TaskGroup&) = delete;

  // Starts `task` now, or queues it under max_concurrency. If the group is
  // already decided or cancelled the task still runs, and sees its token
  // cancelled.
  void Spawn(Task task);

  // Cancels every task still running or waiting.
  void Cancel(absl::Status reason);

  CancellationToken token() const;

  // Declares that no more tasks will be spawned; `on_done` runs once every
  // task is done (inline if they already are).
  void Join(Done on_done) &&;

 private:
  class State;
  State* state_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_TASK_GROUP_H_
