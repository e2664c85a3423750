// Task names ("tasks/{id}", the id 128 random bits in hex) and the names the
// registry no longer holds, so that NOT_FOUND can say why (after LevelDB's
// filename.h: what names look like, in one place).
//
// Thread-safety: the functions are thread-safe; ForgottenNames is not (the
// registry guards it with its lock).

#ifndef WEFT_SERVER_TASKS_TASK_NAMES_H_
#define WEFT_SERVER_TASKS_TASK_NAMES_H_

#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::tasks {

// A new name, "tasks/" and 32 hex digits from the kernel's random source.
std::string NewTaskName();

// The id of a well-formed task name; otherwise INVALID_ARGUMENT with
// reason INVALID_FIELD on field `name`, saying what a name looks like.
absl::StatusOr<std::string> ParseTaskName(absl::string_view name);

// The names of tasks no longer held (expired or deleted) and why, at most
// `capacity` of them: the oldest is dropped first.
class ForgottenNames {
 public:
  explicit ForgottenNames(int capacity) : capacity_(capacity) {}

  // Remembers `name` with `why` (a static string), replacing an earlier why.
  void Remember(const std::string& name, const char* why);

  // NOT_FOUND with reason TASK_NOT_FOUND and the task's ResourceInfo; the
  // message says why when the name is remembered.
  absl::Status NotFound(absl::string_view name) const;

  int size() const { return static_cast<int>(order_.size()); }

 private:
  const int capacity_;
  std::deque<std::string> order_;
  absl::flat_hash_map<std::string, const char*> why_;
};

}  // namespace weft::tasks

#endif  // WEFT_SERVER_TASKS_TASK_NAMES_H_
