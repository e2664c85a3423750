// TaskStore: where background tasks are kept. The TaskRegistry decides what
// happens to tasks; the store only keeps them, so that a durable store can
// replace the in-memory one without touching the registry or the service.
//
// The registry writes a task on creation and on every change of state (not
// on progress, which it tracks itself while the task runs).
//
// Thread-safety: implementations are thread-safe.

#ifndef WEFT_SERVER_STORE_TASK_STORE_H_
#define WEFT_SERVER_STORE_TASK_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "server/engine/sync.h"
#include "weft/v1/task.pb.h"

namespace weft::store {

class TaskStore {
 public:
  virtual ~TaskStore() = default;

  // Inserts the task (its name, "tasks/{id}", is the key) or replaces it.
  // A new task gets the next position in creation order.
  virtual void Put(weft::v1::Task task) = 0;

  // nullptr if the store does not hold that name. The task is shared, not
  // copied: it may hold a large outcome.
  virtual std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const = 0;

  // False if the store did not hold it.
  virtual bool Delete(absl::string_view name) = 0;

  // Calls `fn(position, task)` for tasks newest first, starting below
  // `before` (a position from an earlier call; 0 for the newest), until `fn`
  // returns false. Positions only grow, so a scan resumed after a position
  // neither repeats nor skips tasks that were there.
  virtual void Scan(
      uint64_t before,
      absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const = 0;

  virtual size_t size() const = 0;
};

class InMemoryTaskStore final : public TaskStore {
 public:
  void Put(weft::v1::Task task) override;
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  bool Delete(absl::string_view name) override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;

 private:
  mutable engine::Mutex mu_;
  uint64_t next_position_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, uint64_t> positions_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::shared_ptr<const weft::v1::Task>> by_position_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::store

#endif  // WEFT_SERVER_STORE_TASK_STORE_H_
