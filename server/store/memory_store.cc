#include <utility>
#include <vector>

#include "server/store/task_store.h"

namespace weft::store {

void InMemoryTaskStore::Write(std::shared_ptr<const weft::v1::Task> task,
                              WriteDone done) {
  {
    engine::MutexLock lock(&mu_);
    auto [it, inserted] = positions_.emplace(task->name(), next_position_);
    if (inserted) ++next_position_;
    // The replaced task is freed outside the lock.
    std::swap(by_position_[it->second], task);
  }
  task.reset();
  std::move(done)(absl::OkStatus());
}

void InMemoryTaskStore::Erase(std::string name, WriteDone done) {
  std::shared_ptr<const weft::v1::Task> task;  // Freed outside the lock.
  {
    engine::MutexLock lock(&mu_);
    auto it = positions_.find(name);
    if (it != positions_.end()) {
      auto pos = by_position_.find(it->second);
      task = std::move(pos->second);
      by_position_.erase(pos);
      positions_.erase(it);
    }
  }
  task.reset();
  std::move(done)(absl::OkStatus());
}

std::shared_ptr<const weft::v1::Task> InMemoryTaskStore::Get(
    absl::string_view name) const {
  engine::MutexLock lock(&mu_);
  auto it = positions_.find(name);
  if (it == positions_.end()) return nullptr;
  return by_position_.at(it->second);
}

void InMemoryTaskStore::Scan(
    uint64_t before,
    absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const {
  // Take a batch under the lock, call `fn` outside it.
  std::vector<std::pair<uint64_t, std::shared_ptr<const weft::v1::Task>>> batch;
  for (;;) {
    batch.clear();
    {
      engine::MutexLock lock(&mu_);
      auto it =
          before == 0 ? by_position_.end() : by_position_.lower_bound(before);
      while (it != by_position_.begin() && batch.size() < 256) {
        --it;
        batch.emplace_back(it->first, it->second);
      }
    }
    if (batch.empty()) return;
    for (const auto& [position, task] : batch) {
      if (!fn(position, *task)) return;
      before = position;
    }
  }
}

size_t InMemoryTaskStore::size() const {
  engine::MutexLock lock(&mu_);
  return positions_.size();
}

}  // namespace weft::store
