// LazyRegistry: lazy values by name (AsyncLazy as a service). Each is a
// compiled plan whose root value is computed once, on first resolve, shared
// by every concurrent resolver, and cached per its ttl, refresh_after and
// cache_failures_for (see engine/async_lazy.h for the semantics).
//
// Every computation is bounded by `compute_timeout` (and by its plan's own
// timeout), so one that every resolver left still ends. Before a computation
// starts, the definitions are searched for a cycle reachable from the value
// (a plan that resolves itself, directly or through other lazy values):
// such a computation fails with FAILED_PRECONDITION naming the cycle instead
// of waiting forever.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_PLAN_LAZY_REGISTRY_H_
#define WEFT_SERVER_PLAN_LAZY_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/env.h"
#include "server/engine/sync.h"
#include "server/plan/compiler.h"
#include "server/plan/lazy_resolver.h"
#include "weft/v1/lazy.pb.h"

namespace weft::plan {

class LazyRegistry : public LazyResolver {
 public:
  struct Options {
    // The longest one computation may run (--lazy_compute_timeout).
    absl::Duration compute_timeout = absl::Minutes(10);
    // The most lazy values that may exist (--max_lazy_values).
    int max_values = 10'000;
  };

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
  // compiled form, made with this registry as its LazyResolver). The same
  // definition again returns the existing value; another gets
  // ALREADY_EXISTS.
  absl::StatusOr<weft::v1::LazyValue> Create(
      absl::string_view id, const weft::v1::LazyValue& definition,
      std::shared_ptr<const CompiledPlan> plan);

  // The definition, cache state and counters; never computes.
  absl::StatusOr<weft::v1::LazyValue> Get(absl::string_view name) const;
  // Forgets the cached value; returns the value as it then stands.
  absl::StatusOr<weft::v1::LazyValue> Reset(absl::string_view name);
  // Removes it; its resolvers get ABORTED.
  absl::Status Delete(absl::string_view name);

  struct Page {
    std::vector<weft::v1::LazyValue> values;
    std::string next_page_token;
  };
  // By name; `page_size` 0 means 100.
  absl::StatusOr<Page> List(int page_size, absl::string_view page_token) const;

  Totals totals() const;

  // LazyResolver.
  void Resolve(const std::string& name, const engine::CancellationToken& token,
               handlers::CallDone done) override;

 private:
  struct Entry;

  absl::StatusOr<std::shared_ptr<Entry>> Find(absl::string_view name) const;
  // Starts one computation of `entry`.
  void Compute(const std::shared_ptr<const CompiledPlan>& plan,
               const std::string& name, const engine::CancellationToken& token,
               handlers::CallDone done);
  // A cycle reachable from `name` through the plans' lazy nodes, as
  // "a -> b -> a", or empty.
  std::string FindCycle(const std::string& name) const;

  engine::Env& env_;
  const Options options_;
  mutable engine::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_LAZY_REGISTRY_H_
