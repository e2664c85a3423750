// PlanCache: Run's compiled plans, by the bytes of their request.
//
// A client that sends the same RunRequest again (the same fan-out behind a
// dashboard, a workflow called with the same plan) has it parsed and
// compiled once: a compiled plan is immutable and may be run by several
// runs at once (plan/compiler.h). The key is the request's exact bytes, so
// two requests share an entry only when every field is the same (the plan,
// its args, the outcome detail). The service keeps no plan that has
// $secret objects: those are checked against the secrets in force, which
// SIGHUP may change, on every compile. Entries go least recently used
// first once their keys and plans (what a run charges for its request)
// pass `max_bytes`.
//
//   PlanCache cache(16 << 20);
//   std::shared_ptr<const PlanCache::Entry> hit = cache.Find(bytes);
//   if (hit == nullptr) cache.Insert(bytes, CompileIt(bytes));
//
// Thread-safety: thread-safe; entries are immutable.

#ifndef WEFT_SERVER_SERVICE_PLAN_CACHE_H_
#define WEFT_SERVER_SERVICE_PLAN_CACHE_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "server/engine/sync.h"
#include "server/plan/compiler.h"
#include "weft/v1/orchestrator.pb.h"

namespace weft::service {

class PlanCache {
 public:
  struct Entry {
    // Keeps the request (and the arena it was parsed into) alive.
    std::shared_ptr<const plan::CompiledPlan> plan;
    const weft::v1::RunRequest* request = nullptr;
    // What the parsed request and its compiled plan hold.
    int64_t bytes = 0;
  };

  // Requests larger than this are not kept.
  static constexpr size_t kMaxRequestBytes = 64 << 10;

  // `max_bytes` 0: keeps nothing.
  explicit PlanCache(int64_t max_bytes) : max_bytes_(max_bytes) {}
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;

  bool enabled() const { return max_bytes_ > 0; }

  // The entry for a request of these bytes, or null.
  std::shared_ptr<const Entry> Find(absl::string_view request);
  // Keeps `entry` for `request`, unless it is too large or already there.
  void Insert(absl::string_view request, std::shared_ptr<const Entry> entry);

  size_t size() const;
  int64_t bytes() const;
  // Finds that found an entry, and that did not.
  int64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  int64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  struct Node {
    std::string key;
    std::shared_ptr<const Entry> entry;
    int64_t cost = 0;
  };

  const int64_t max_bytes_;
  mutable engine::Mutex mu_;
  // Most recently used first.
  std::list<Node> lru_ ABSL_GUARDED_BY(mu_);
  // Keys point into lru_'s nodes, which do not move.
  absl::flat_hash_map<absl::string_view, std::list<Node>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> hits_{0};
  std::atomic<int64_t> misses_{0};
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_PLAN_CACHE_H_
