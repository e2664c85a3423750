// PoolSet: the named, bounded thread pools that `offload` nodes and blocking
// handlers run on, configured as "default=2:1000,images=1:64" (threads and
// queue length per pool).
//
// Thread-safety: immutable after construction; the pools are thread-safe.

#ifndef WEFT_SERVER_PLAN_POOLS_H_
#define WEFT_SERVER_PLAN_POOLS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/thread_pool.h"

namespace weft::plan {

struct PoolSpec {
  std::string name;
  int threads = 1;
  int queue = 1000;
};

// Parses the --pools syntax. Every pool needs a name (letters, digits, '_',
// '-'), 1 to 256 threads and a queue of 0 to 1,000,000; names are unique;
// "default" must be among them.
absl::StatusOr<std::vector<PoolSpec>> ParsePoolSpecs(absl::string_view text);

class PoolSet {
 public:
  explicit PoolSet(const std::vector<PoolSpec>& specs);

  // nullptr for an unknown name.
  engine::ThreadPool* Find(absl::string_view name) const;
  // "default, images", for messages.
  std::string Names() const;
  std::vector<const engine::ThreadPool*> pools() const;

 private:
  std::map<std::string, std::unique_ptr<engine::ThreadPool>, std::less<>>
      pools_;
};

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_POOLS_H_
