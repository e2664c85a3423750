// FailingTaskStore: a TaskStore for tests that fails, holds back or delays
// its writes on demand, to test what the registry does when a durable store
// is slow or fails. It keeps the TaskStore contract: writes are applied (or
// failed) in the order they were made, each `done` is called once and
// outside its lock, and every `done` has run when it is destroyed.
//
// Thread-safety: thread-safe.

#ifndef WEFT_TESTS_TESTING_FAILING_TASK_STORE_H_
#define WEFT_TESTS_TESTING_FAILING_TASK_STORE_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "server/engine/sync.h"
#include "server/store/task_store.h"

namespace weft::testing {

class FailingTaskStore final : public store::TaskStore {
 public:
  enum class Completion {
    kInline,  // `done` runs before Write returns (unless held).
    kThread,  // `done` runs on the store's own thread, as a durable store's.
  };
  explicit FailingTaskStore(Completion completion = Completion::kInline);
  ~FailingTaskStore() override;

  // Writes applied from now on fail with `status` and change nothing; OK
  // lets them through again.
  void FailWrites(absl::Status status);
  // Writes made from now on wait, in order, until Release.
  void Hold();
  // Lets the held writes through (with kInline, applied here, their `done`
  // called on this thread) and stops holding.
  void Release();
  // Writes made and not yet applied.
  int pending() const;
  // Called at the start of every Write and Erase, on the caller's thread.
  void OnWrite(std::function<void()> fn);

  void Write(std::shared_ptr<const weft::v1::Task> task,
             WriteDone done) override;
  void Erase(std::string name, WriteDone done) override;
  std::shared_ptr<const weft::v1::Task> Get(
      absl::string_view name) const override;
  void Scan(uint64_t before,
            absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn)
      const override;
  size_t size() const override;

 private:
  struct Op {
    std::shared_ptr<const weft::v1::Task> task;  // nullptr: erase `name`.
    std::string name;
    WriteDone done;
  };
  void Submit(Op op);
  // Applies the first pending write, or fails it; false if there is none.
  bool ApplyOne();
  void Work();

  const Completion completion_;
  store::InMemoryTaskStore inner_;
  mutable engine::Mutex mu_;
  engine::CondVar changed_;
  std::deque<Op> pending_ ABSL_GUARDED_BY(mu_);
  // Whether a thread is applying a write now (so the next waits: in order).
  bool applying_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_write_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_FAILING_TASK_STORE_H_
