// MemoryBudget: a limit on the bytes that one kind of memory may hold across
// the whole process (values of runs in flight, retained tasks, cached lazy
// values), and MemoryCharge: one holder's share of it.
//
// Work that is about to hold memory asks first (TryAdd); when the budget
// cannot take it, the work is refused at once, before the memory exists, so
// that no request can grow the process past what its operator configured.
// A charge gives its bytes back when it is destroyed, so the budget follows
// the lifetime of what it counts.
//
// Bytes here are estimates made by the callers (see handlers/value_size.h);
// the budget only adds them up.
//
// Thread-safety: both classes are safe to use from any thread. A charge must
// not outlive its budget.

#ifndef WEFT_SERVER_ENGINE_MEMORY_BUDGET_H_
#define WEFT_SERVER_ENGINE_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace weft::engine {

class MemoryBudget {
 public:
  // `limit` bytes at most; the default takes everything (it only counts).
  // `what` it holds and the `flag` that sets it name it in refusals:
  // "the runs in flight", "--max_inflight_bytes".
  explicit MemoryBudget(int64_t limit = std::numeric_limits<int64_t>::max(),
                        std::string what = "", std::string flag = "")
      : limit_(limit), what_(std::move(what)), flag_(std::move(flag)) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Adds `bytes` (>= 0) unless the total would pass the limit; false (and
  // nothing added) then.
  bool TryAdd(int64_t bytes);
  // Gives back bytes added earlier.
  void Remove(int64_t bytes);

  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  // The most it has held at once.
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  // How many TryAdd calls were refused.
  int64_t refusals() const { return refusals_.load(std::memory_order_relaxed); }

  // RESOURCE_EXHAUSTED saying that `needed_by` ("this run") could not have
  // `bytes` more: "weftd holds U bytes for <what> and may hold L (<flag>);
  // this run needs N more. <advice>".
  absl::Status Refusal(int64_t bytes, absl::string_view needed_by,
                       absl::string_view advice = "Retry later") const;

 private:
  const int64_t limit_;
  const std::string what_;
  const std::string flag_;
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> refusals_{0};
};

// One holder's bytes in a budget (or in none: then it only counts). Movable;
// gives everything back when destroyed or Reset().
class MemoryCharge {
 public:
  MemoryCharge() = default;
  explicit MemoryCharge(MemoryBudget* budget) : budget_(budget) {}
  ~MemoryCharge() { Reset(); }
  MemoryCharge(MemoryCharge&& other) noexcept;
  MemoryCharge& operator=(MemoryCharge&& other) noexcept;
  MemoryCharge(const MemoryCharge&) = delete;
  MemoryCharge& operator=(const MemoryCharge&) = delete;

  // Adds `bytes` (>= 0) to this charge and its budget; false (and nothing
  // added) if the budget cannot take them.
  bool TryAdd(int64_t bytes);
  // Gives back up to `bytes` of this charge.
  void Remove(int64_t bytes);
  // Gives everything back.
  void Reset();

  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  MemoryBudget* budget() const { return budget_; }

  // Its budget's Refusal (RESOURCE_EXHAUSTED) for `bytes` more.
  absl::Status Refusal(int64_t bytes, absl::string_view needed_by,
                       absl::string_view advice = "Retry later") const;

 private:
  MemoryBudget* budget_ = nullptr;
  std::atomic<int64_t> bytes_{0};
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_MEMORY_BUDGET_H_
