#include "server/service/plan_cache.h"

#include <iterator>
#include <utility>

namespace weft::service {

std::shared_ptr<const PlanCache::Entry> PlanCache::Find(
    absl::string_view request) {
  if (!enabled()) return nullptr;
  engine::MutexLock lock(&mu_);
  auto it = index_.find(request);
  if (it == index_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->entry;
}

void PlanCache::Insert(absl::string_view request,
                       std::shared_ptr<const Entry> entry) {
  const int64_t cost = static_cast<int64_t>(request.size()) + entry->bytes;
  if (!enabled() || request.size() > kMaxRequestBytes || cost > max_bytes_) {
    return;
  }
  std::list<Node> evicted;  // Freed after the lock is released.
  engine::MutexLock lock(&mu_);
  if (index_.contains(request)) return;  // Another call compiled it too.
  lru_.push_front(Node{std::string(request), std::move(entry), cost});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += cost;
  while (bytes_ > max_bytes_) {
    auto last = std::prev(lru_.end());
    index_.erase(last->key);
    bytes_ -= last->cost;
    evicted.splice(evicted.begin(), lru_, last);
  }
}

size_t PlanCache::size() const {
  engine::MutexLock lock(&mu_);
  return lru_.size();
}

int64_t PlanCache::bytes() const {
  engine::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace weft::service
