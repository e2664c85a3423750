#include "server/engine/memory_budget.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/cancellation.h"

namespace weft::engine {

bool MemoryBudget::TryAdd(int64_t bytes) {
  if (bytes <= 0) return true;
  int64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ - used) {
      refusals_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!used_.compare_exchange_weak(used, used + bytes,
                                        std::memory_order_relaxed));
  const int64_t now = used + bytes;
  int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak &&
         !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return true;
}

absl::Status MemoryBudget::Refusal(int64_t bytes, absl::string_view needed_by,
                                   absl::string_view advice) const {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat(
          "weftd holds ", used(), " bytes",
          what_.empty() ? "" : absl::StrCat(" for ", what_), " and may hold ",
          limit_, flag_.empty() ? "" : absl::StrCat(" (", flag_, ")"), "; ",
          needed_by, " needs ", bytes, " more. ", advice)),
      "MEMORY_EXHAUSTED", {{"flag", flag_}, {"limit", absl::StrCat(limit_)}});
}

absl::Status MemoryCharge::Refusal(int64_t bytes, absl::string_view needed_by,
                                   absl::string_view advice) const {
  if (budget_ == nullptr) {
    return WithReason(
        absl::ResourceExhaustedError(
            absl::StrCat(needed_by, " needs ", bytes, " more bytes. ", advice)),
        "MEMORY_EXHAUSTED");
  }
  return budget_->Refusal(bytes, needed_by, advice);
}

void MemoryBudget::Remove(int64_t bytes) {
  if (bytes > 0) used_.fetch_sub(bytes, std::memory_order_relaxed);
}

MemoryCharge::MemoryCharge(MemoryCharge&& other) noexcept
    : budget_(other.budget_),
      bytes_(other.bytes_.exchange(0, std::memory_order_relaxed)) {}

MemoryCharge& MemoryCharge::operator=(MemoryCharge&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = other.budget_;
    bytes_.store(other.bytes_.exchange(0, std::memory_order_relaxed),
                 std::memory_order_relaxed);
  }
  return *this;
}

bool MemoryCharge::TryAdd(int64_t bytes) {
  if (bytes <= 0) return true;
  if (budget_ != nullptr && !budget_->TryAdd(bytes)) return false;
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  return true;
}

void MemoryCharge::Remove(int64_t bytes) {
  if (bytes <= 0) return;
  int64_t held = bytes_.load(std::memory_order_relaxed);
  int64_t take;
  do {
    take = std::min(held, bytes);
  } while (!bytes_.compare_exchange_weak(held, held - take,
                                         std::memory_order_relaxed));
  if (budget_ != nullptr) budget_->Remove(take);
}

void MemoryCharge::Reset() {
  const int64_t held = bytes_.exchange(0, std::memory_order_relaxed);
  if (budget_ != nullptr) budget_->Remove(held);
}

}  // namespace weft::engine
