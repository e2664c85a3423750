// LazyRegistry: lazy values by name (AsyncLazy as a service). Each is a
// compiled plan whose root value is computed once, on first resolve, shared
// by every concurrent resolver, and cached per its ttl, refresh_after and
// cache_failures_for (see engine/async_lazy.h for the semantics).
//
// Every computation is bounded by `compute_timeout` (and by its plan's own
// timeout), so one that every resolver left still ends. Its value may take at
// most `max_value_bytes` (serialized), counted while the plan builds it, and
// lazy values together (their definitions and cached values) at most
// `max_bytes` of memory: a definition that does not fit is refused, and a
// value that does not fit fails its computation, with RESOURCE_EXHAUSTED. A
// cached value is held once, however many resolvers and plans use it. Before a
// computation starts, the definitions are searched for a cycle reachable from
// the value (a plan that resolves itself, directly or through other lazy
// values): such a computation fails with FAILED_PRECONDITION naming the cycle
// instead of waiting forever.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_LAZY_REGISTRY_H_
#define WEFT_SERVER_LAZY_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/env.h"
#include "server/engine/memory_budget.h"
#include "server/engine/sync.h"
#include "server/plan/compiler.h"
#include "server/plan/lazy_resolver.h"
#include "weft/v1/lazy.pb.h"

namespace weft::lazy {

class LazyRegistry : public plan::LazyResolver {
 public:
  struct Options {
    // The longest one computation may run (--lazy_compute_timeout).
    absl::Duration compute_timeout = absl::Minutes(10);
    // The most lazy values that may exist (--max_lazy_values).
    int max_values = 10'000;
    // The largest value one may have, serialized (--max_outcome_bytes).
    int64_t max_value_bytes = 64 << 20;
    // The memory all lazy values may take, definitions and cached values
    // (--max_lazy_bytes).
    int64_t max_bytes = 128 << 20;
    // Optional: what computations in flight are charged to
    // (--max_inflight_bytes).
    engine::MemoryBudget* inflight = nullptr;
  };

  // A cached value, shared by the cache and everyone answered with it; its
  // memory stays charged to the cache's budget while any of them holds it.
  struct Cached {
    google::protobuf::Value value;
    int64_t wire_bytes = 0;
    // The cache's budget, kept alive by every value charged to it (a value
    // may outlive the registry in a response being sent).
    std::shared_ptr<engine::MemoryBudget> cache;
    engine::MemoryCharge charge;
  };
  using CachedPtr = std::shared_ptr<const Cached>;
  using ResolveDone = absl::AnyInvocable<void(absl::StatusOr<CachedPtr>) &&>;
  // A resolve's answer: the value, whether the cache held it already, the
  // generation it was computed for and when.
  struct Resolved {
    CachedPtr cached;
    bool cache_hit = false;
    int64_t generation = 0;
    absl::Time computed_at;
  };
  using ResolvedDone = absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&>;

  struct Totals {
    int count = 0;
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t loads = 0;
    int64_t load_failures = 0;
  };

  // `env` runs the computations and is their clock; it must outlive this.
  LazyRegistry(engine::Env& env, Options options);
  // Closes every lazy value (CloseAll).
  ~LazyRegistry() override;

  // Removes every lazy value: computations are cancelled and resolvers get
  // ABORTED with `reason`'s message.
  void CloseAll(const absl::Status& reason);

  // Checks a definition (ttl, refresh_after, cache_failures_for; the plan is
  // compiled by the caller). Errors are INVALID_ARGUMENT naming the field
  // under `path` ("lazy_value").
  static absl::Status CheckDefinition(const weft::v1::LazyValue& definition,
                                      absl::string_view path);

  // Declares lazyValues/{id} with `definition` (whose plan `plan` is the
  // compiled form, made with this registry as its plan::LazyResolver). The same
  // definition again returns the existing value; another gets
  // ALREADY_EXISTS. `request_bytes`: the memory the request holds (the plan
  // and its arena), which the definition keeps.
  absl::StatusOr<weft::v1::LazyValue> Create(
      absl::string_view id, const weft::v1::LazyValue& definition,
      std::shared_ptr<const plan::CompiledPlan> plan,
      int64_t request_bytes = 0);

  // The definition, cache state and counters; never computes. The value
  // only with `charge`: its size is added to it before the value is copied,
  // and RESOURCE_EXHAUSTED returned when its budget cannot take it. (Create
  // and Reset answer without the value.)
  absl::StatusOr<weft::v1::LazyValue> Get(
      absl::string_view name, engine::MemoryCharge* charge = nullptr) const;
  // Forgets the cached value; returns the value as it then stands.
  absl::StatusOr<weft::v1::LazyValue> Reset(absl::string_view name);
  // Removes it; its resolvers get ABORTED.
  absl::Status Delete(absl::string_view name);

  struct Page {
    std::vector<weft::v1::LazyValue> values;
    std::string next_page_token;
  };
  // By name; `page_size` 0 means 100. A page also ends before its values
  // would pass `max_bytes` (serialized; it holds at least one value), and
  // with `charge` they are charged to it as Get does (without, no values).
  absl::StatusOr<Page> List(
      int page_size, absl::string_view page_token,
      int64_t max_bytes = std::numeric_limits<int64_t>::max(),
      engine::MemoryCharge* charge = nullptr) const;

  Totals totals() const;
  // What lazy values hold (definitions and cached values): --max_lazy_bytes.
  const engine::MemoryBudget& memory() const { return *cache_; }

  // Replicas: brings lazy value `name` up to date with what the shared
  // store holds (weftd::LazySync), then runs `then`, exactly once, on any
  // thread. Set before the first resolve, or null to stop.
  using Refresher = std::function<void(const std::string& name,
                                       absl::AnyInvocable<void() &&> then)>;
  void SetRefresher(Refresher refresher);
  // Runs the refresher for `name`, or `then` at once without one. Every
  // resolve (ResolveShared, Resolve) starts with this, so that a reset or
  // a new definition made on another replica is seen first.
  void Refresh(const std::string& name, absl::AnyInvocable<void() &&> then);

  // plan::LazyResolver: a copy of the value, for a plan's node.
  void Resolve(const std::string& name, const engine::CancellationToken& token,
               handlers::CallDone done) override;
  // The cached value itself, shared, and whether it was cached before this
  // call (ResolveLazyValue).
  void ResolveShared(const std::string& name,
                     const engine::CancellationToken& token, ResolvedDone done);

 private:
  struct Entry;

  absl::StatusOr<std::shared_ptr<Entry>> Find(absl::string_view name) const;
  // ResolveShared, after the refresh.
  void ResolveNow(const std::string& name,
                  const engine::CancellationToken& token, ResolvedDone done);
  // Starts one computation of `name`, whose value may take at most
  // `max_value_bytes` serialized.
  void Compute(const std::shared_ptr<const plan::CompiledPlan>& plan,
               const std::string& name, int64_t max_value_bytes,
               const engine::CancellationToken& token, ResolveDone done);
  // A cycle reachable from `name` through the plans' lazy nodes, as
  // "a -> b -> a", or empty.
  std::string FindCycle(const std::string& name) const;

  engine::Env& env_;
  const Options options_;
  const std::shared_ptr<engine::MemoryBudget> cache_;
  mutable engine::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries_
      ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Refresher> refresher_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::lazy

#endif  // WEFT_SERVER_LAZY_REGISTRY_H_
