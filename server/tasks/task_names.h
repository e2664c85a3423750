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
#include <utility>

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

// Which tasks a caller reaches. A `user` principal reaches the tasks it
// created; to it another's task is NOT_FOUND, worded as for a name never
// given out, so that its existence does not show. An admin, and every caller
// of a weftd without callers, reaches every task.
class Reach {
 public:
  static Reach All() { return Reach(); }
  static Reach CreatedBy(std::string principal) {
    Reach r;
    r.all_ = false;
    r.principal_ = std::move(principal);
    return r;
  }
  bool all() const { return all_; }
  bool Covers(absl::string_view creator) const {
    return all_ || creator == principal_;
  }

 private:
  Reach() = default;
  bool all_ = true;
  std::string principal_;
};

// The names of tasks no longer held (expired or deleted) and why, at most
// `capacity` of them: the oldest is dropped first.
class ForgottenNames {
 public:
  explicit ForgottenNames(int capacity) : capacity_(capacity) {}

  // Remembers `name`, created by `creator`, with `why` (a static string),
  // replacing an earlier why.
  void Remember(const std::string& name, const char* why,
                const std::string& creator = "");

  // NOT_FOUND with reason TASK_NOT_FOUND and the task's ResourceInfo; the
  // message says why when the name is remembered and `reach` covers its
  // creator.
  absl::Status NotFound(absl::string_view name,
                        const Reach& reach = Reach::All()) const;

  int size() const { return static_cast<int>(order_.size()); }

 private:
  const int capacity_;
  std::deque<std::string> order_;
  struct Why {
    const char* why;
    std::string creator;
  };
  absl::flat_hash_map<std::string, Why> why_;
};

}  // namespace weft::tasks

#endif  // WEFT_SERVER_TASKS_TASK_NAMES_H_
