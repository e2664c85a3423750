// TaskGroup: fan out, fail fast, cancel the siblings (Python's
// asyncio.TaskGroup, Nexios's TaskGroup), for callback-style work.
//
//   TaskGroup group(parent_token);
//   for (const Item& item : items) {
//     group.Spawn([&item](const CancellationToken& token, Done done) {
//       Fetch(item, token, std::move(done));
//     });
//   }
//   std::move(group).Join([](absl::Status first_failure) { ... });
//
// Each task starts at once, inside Spawn(), with the group's token. The first
// task to fail cancels the group, so every other task sees its token
// cancelled with the reason "cancelled because a sibling failed: ...". Join's
// callback runs once, after every task has called its Done, with OK or the
// first failure. Cancelling the parent cancels the group the same way, and
// Join then reports the first task's failure (normally that cancellation).
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

class TaskGroup {
 public:
  using Task = absl::AnyInvocable<void(const CancellationToken&, Done) &&>;
  using OnDone = absl::AnyInvocable<void(absl::Status first_failure) &&>;

  explicit TaskGroup(const CancellationToken& parent = {});
  // A group must be joined before it is destroyed.
  ~TaskGroup();
  TaskGroup(TaskGroup&& other) noexcept;
  TaskGroup& operator=(TaskGroup&&) = delete;
  TaskGroup(const TaskGroup&) = delete;

  // Starts `task` now. If the group is already cancelled the task still
  // runs, and sees its token cancelled.
  void Spawn(Task task);

  // Cancels every task still running. Later failures are still reported to
  // Join as the first failure if none came before.
  void Cancel(absl::Status reason);

  CancellationToken token() const;

  // Declares that no more tasks will be spawned; `on_done` runs once every
  // task is done (inline if they already are).
  void Join(OnDone on_done) &&;

 private:
  class State;
  State* state_;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_TASK_GROUP_H_
