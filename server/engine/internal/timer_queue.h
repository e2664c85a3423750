// TimerQueue: the ordered set of pending timers shared by Env implementations.
//
// Thread-safety: not thread-safe; its owner locks around it.

#ifndef WEFT_SERVER_ENGINE_INTERNAL_TIMER_QUEUE_H_
#define WEFT_SERVER_ENGINE_INTERNAL_TIMER_QUEUE_H_

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "server/engine/env.h"

namespace weft::engine {

class TimerQueue {
 public:
  TimerId Add(absl::Time when, Closure fn) {
    TimerId id{when, ++last_seq_};
    timers_.emplace(Key(id), std::move(fn));
    return id;
  }

  // Moves the timer's function into `out` (for its owner to destroy outside
  // its lock) and returns true, or returns false if the timer is not here.
  bool Remove(TimerId id, Closure* out) {
    auto it = timers_.find(Key(id));
    if (it == timers_.end()) return false;
    *out = std::move(it->second);
    timers_.erase(it);
    return true;
  }

  bool empty() const { return timers_.empty(); }
  size_t size() const { return timers_.size(); }
  absl::Time earliest() const {
    return timers_.empty() ? absl::InfiniteFuture()
                           : timers_.begin()->first.first;
  }

  // Moves every timer due at `now` into `out`, earliest first.
  void PopDue(absl::Time now, std::vector<Closure>* out) {
    auto it = timers_.begin();
    while (it != timers_.end() && it->first.first <= now) {
      out->push_back(std::move(it->second));
      it = timers_.erase(it);
    }
  }

  // Removes the earliest timer if it is due at `now`.
  bool PopOne(absl::Time now, Closure* out) {
    if (timers_.empty() || timers_.begin()->first.first > now) return false;
    *out = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    return true;
  }

 private:
  using KeyType = std::pair<absl::Time, uint64_t>;
  static KeyType Key(TimerId id) { return {id.when, id.seq}; }

  std::map<KeyType, Closure> timers_;
  uint64_t last_seq_ = 0;
};

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_INTERNAL_TIMER_QUEUE_H_
