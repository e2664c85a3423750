#include "tests/testing/failing_task_store.h"

#include <utility>

namespace weft::testing {

FailingTaskStore::FailingTaskStore(Completion completion)
    : completion_(completion) {
  if (completion_ == Completion::kThread)
    worker_ = std::thread([this] { Work(); });
}

FailingTaskStore::~FailingTaskStore() {
  {
    engine::MutexLock lock(&mu_);
    stopping_ = true;
    held_ = false;
    changed_.SignalAll();
  }
  if (worker_.joinable()) worker_.join();
  while (ApplyOne()) {
  }
}

void FailingTaskStore::FailWrites(absl::Status status) {
  engine::MutexLock lock(&mu_);
  fail_ = std::move(status);
}

void FailingTaskStore::Hold() {
  engine::MutexLock lock(&mu_);
  held_ = true;
}

void FailingTaskStore::Release() {
  {
    engine::MutexLock lock(&mu_);
    held_ = false;
    changed_.SignalAll();
  }
  if (completion_ == Completion::kInline) {
    while (ApplyOne()) {
    }
  }
}

int FailingTaskStore::pending() const {
  engine::MutexLock lock(&mu_);
  return static_cast<int>(pending_.size());
}

void FailingTaskStore::OnWrite(std::function<void()> fn) {
  engine::MutexLock lock(&mu_);
  on_write_ = std::move(fn);
}

void FailingTaskStore::Write(std::shared_ptr<const weft::v1::Task> task,
                             WriteDone done) {
  const std::string name = task->name();
  Submit(Op{std::move(task), name, std::move(done)});
}

void FailingTaskStore::Erase(std::string name, WriteDone done) {
  Submit(Op{nullptr, std::move(name), std::move(done)});
}

void FailingTaskStore::Submit(Op op) {
  std::function<void()> on_write;
  bool now;
  {
    engine::MutexLock lock(&mu_);
    on_write = on_write_;
    pending_.push_back(std::move(op));
    now = completion_ == Completion::kInline && !held_;
    changed_.SignalAll();
  }
  if (on_write) on_write();
  if (now) {
    while (ApplyOne()) {
    }
  }
}

bool FailingTaskStore::ApplyOne() {
  Op op;
  absl::Status status;
  {
    engine::MutexLock lock(&mu_);
    // One write at a time, in order: another thread applying goes on
    // through the rest.
    if (pending_.empty() || applying_ || (held_ && !stopping_)) return false;
    applying_ = true;
    op = std::move(pending_.front());
    pending_.pop_front();
    status = fail_;
  }
  if (status.ok()) {
    auto ignore = [](absl::Status) {};
    if (op.task != nullptr) {
      inner_.Write(std::move(op.task), ignore);
    } else {
      inner_.Erase(std::move(op.name), ignore);
    }
  }
  {
    engine::MutexLock lock(&mu_);
    applying_ = false;
  }
  std::move(op.done)(std::move(status));
  return true;
}

void FailingTaskStore::Work() {
  for (;;) {
    {
      engine::MutexLock lock(&mu_);
      while (!stopping_ && (pending_.empty() || held_)) changed_.Wait(&mu_);
      if (stopping_) return;
    }
    ApplyOne();
  }
}

std::shared_ptr<const weft::v1::Task> FailingTaskStore::Get(
    absl::string_view name) const {
  return inner_.Get(name);
}

void FailingTaskStore::Scan(
    uint64_t before,
    absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const {
  inner_.Scan(before, fn);
}

size_t FailingTaskStore::size() const { return inner_.size(); }

}  // namespace weft::testing
