#include <algorithm>
#include <utility>
#include <vector>

#include "server/store/task_store.h"

namespace weft::store {

std::vector<std::shared_ptr<const weft::v1::Task>> TaskStore::Owned() const {
  std::vector<std::shared_ptr<const weft::v1::Task>> tasks;
  Scan(0, [&](uint64_t, const weft::v1::Task& task) {
    if (std::shared_ptr<const weft::v1::Task> t = Get(task.name())) {
      tasks.push_back(std::move(t));
    }
    return true;
  });
  std::reverse(tasks.begin(), tasks.end());
  return tasks;
}

void TaskTable::Put(std::shared_ptr<const weft::v1::Task> task,
                    uint64_t position) {
  {
    engine::MutexLock lock(&mu_);
    auto it = positions_.find(task->name());
    if (it == positions_.end()) {
      if (position == 0) position = last_position_ + 1;
      last_position_ = std::max(last_position_, position);
      it = positions_.emplace(task->name(), position).first;
    }
    // The replaced task is freed outside the lock.
    std::swap(by_position_[it->second], task);
  }
  task.reset();
}

void TaskTable::Remove(absl::string_view name) {
  std::shared_ptr<const weft::v1::Task> task;  // Freed outside the lock.
  engine::MutexLock lock(&mu_);
  auto it = positions_.find(name);
  if (it == positions_.end()) return;
  auto pos = by_position_.find(it->second);
  task = std::move(pos->second);
  by_position_.erase(pos);
  positions_.erase(it);
}

uint64_t TaskTable::PositionOf(absl::string_view name) const {
  engine::MutexLock lock(&mu_);
  auto it = positions_.find(name);
  return it == positions_.end() ? 0 : it->second;
}

uint64_t TaskTable::last_position() const {
  engine::MutexLock lock(&mu_);
  return last_position_;
}

std::shared_ptr<const weft::v1::Task> TaskTable::Get(
    absl::string_view name) const {
  engine::MutexLock lock(&mu_);
  auto it = positions_.find(name);
  if (it == positions_.end()) return nullptr;
  return by_position_.at(it->second);
}

void TaskTable::Scan(
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

size_t TaskTable::size() const {
  engine::MutexLock lock(&mu_);
  return positions_.size();
}

void InMemoryTaskStore::Write(std::shared_ptr<const weft::v1::Task> task,
                              WriteDone done) {
  table_.Put(std::move(task));
  std::move(done)(absl::OkStatus());
}

void InMemoryTaskStore::Erase(std::string name, WriteDone done) {
  table_.Remove(name);
  std::move(done)(absl::OkStatus());
}

std::shared_ptr<const weft::v1::Task> InMemoryTaskStore::Get(
    absl::string_view name) const {
  return table_.Get(name);
}

void InMemoryTaskStore::Scan(
    uint64_t before,
    absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const {
  table_.Scan(before, fn);
}

size_t InMemoryTaskStore::size() const { return table_.size(); }

}  // namespace weft::store
