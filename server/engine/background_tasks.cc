#include "server/engine/background_tasks.h"

#include <cassert>
#include <utility>
#include <vector>

namespace weft::engine {

BackgroundTasks::~BackgroundTasks() {
  MutexLock lock(&mu_);
  assert(active_ == 0 && "BackgroundTasks destroyed with tasks running");
}

uint64_t BackgroundTasks::Create(Task task) {
  uint64_t id;
  CancellationToken token;
  {
    MutexLock lock(&mu_);
    id = ++next_id_;
    Entry& e = tasks_[id];
    e.info.created = env_.Now();
    token = e.source.token();
    ++active_;
  }
  std::move(task)(token,
                  [this, id](absl::Status s) { Finished(id, std::move(s)); });
  return id;
}

void BackgroundTasks::Finished(uint64_t id, absl::Status status) {
  MutexLock lock(&mu_);
  auto it = tasks_.find(id);
  Entry& e = it->second;
  e.info.ended = env_.Now();
  if (status.ok()) {
    e.info.state = State::kSucceeded;
  } else if (status.code() == absl::StatusCode::kCancelled &&
             e.source.cancelled()) {
    e.info.state = State::kCancelled;
  } else {
    e.info.state = State::kFailed;
  }
  e.info.status = std::move(status);
  if (--active_ == 0) idle_.SignalAll();
}

std::optional<BackgroundTasks::Info> BackgroundTasks::Get(uint64_t id) const {
  MutexLock lock(&mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second.info;
}

bool BackgroundTasks::Cancel(uint64_t id, absl::Status reason) {
  CancellationSource source;
  {
    MutexLock lock(&mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.info.state != State::kRunning) {
      return false;
    }
    source = it->second.source;
  }
  // Not under the lock: the task may finish inline, which takes it.
  return source.Cancel(std::move(reason));
}

bool BackgroundTasks::Forget(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end() || it->second.info.state == State::kRunning)
    return false;
  tasks_.erase(it);
  return true;
}

int BackgroundTasks::active() const {
  MutexLock lock(&mu_);
  return active_;
}

void BackgroundTasks::CancelAll(absl::Status reason) {
  std::vector<CancellationSource> running;
  {
    MutexLock lock(&mu_);
    for (auto& [id, e] : tasks_) {
      if (e.info.state == State::kRunning) running.push_back(e.source);
    }
  }
  for (const CancellationSource& s : running) s.Cancel(reason);
}

bool BackgroundTasks::WaitIdle(absl::Time deadline) {
  MutexLock lock(&mu_);
  while (active_ > 0) {
    if (!idle_.WaitUntil(&mu_, deadline) && absl::Now() >= deadline) break;
  }
  return active_ == 0;
}

}  // namespace weft::engine
