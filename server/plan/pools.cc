#include "server/plan/pools.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/text.h"

namespace weft::plan {
namespace {

absl::Status Bad(absl::string_view item, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--pools: ", common::Quote(item), ": ", why,
                   "; write name=threads:queue, like default=2:1000"));
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<PoolSpec>> ParsePoolSpecs(absl::string_view text) {
  std::vector<PoolSpec> specs;
  std::set<std::string> seen;
  for (absl::string_view item :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    std::vector<absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2) return Bad(item, "no '='");
    PoolSpec spec;
    spec.name = std::string(absl::StripAsciiWhitespace(kv[0]));
    if (!ValidName(spec.name)) {
      return Bad(item, "a pool name is 1 to 64 letters, digits, '_' or '-'");
    }
    std::vector<absl::string_view> tq =
        absl::StrSplit(kv[1], absl::MaxSplits(':', 1));
    if (tq.size() != 2) return Bad(item, "no ':' between threads and queue");
    if (!absl::SimpleAtoi(tq[0], &spec.threads) || spec.threads < 1 ||
        spec.threads > 256) {
      return Bad(item, "threads must be a number from 1 to 256");
    }
    if (!absl::SimpleAtoi(tq[1], &spec.queue) || spec.queue < 0 ||
        spec.queue > 1'000'000) {
      return Bad(item, "the queue must be a number from 0 to 1000000");
    }
    if (!seen.insert(spec.name).second)
      return Bad(item, "the pool is named twice");
    specs.push_back(spec);
  }
  if (!seen.count("default")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pools: ", common::Quote(text),
        " has no pool named default, which blocking handlers use"));
  }
  return specs;
}

PoolSet::PoolSet(const std::vector<PoolSpec>& specs) {
  for (const PoolSpec& s : specs) {
    pools_.emplace(s.name, std::make_unique<engine::ThreadPool>(
                               s.name, s.threads, s.queue));
  }
}

engine::ThreadPool* PoolSet::Find(absl::string_view name) const {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}

std::string PoolSet::Names() const {
  std::vector<absl::string_view> names;
  for (const auto& [name, pool] : pools_) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

std::vector<const engine::ThreadPool*> PoolSet::pools() const {
  std::vector<const engine::ThreadPool*> out;
  for (const auto& [name, pool] : pools_) out.push_back(pool.get());
  return out;
}

}  // namespace weft::plan
