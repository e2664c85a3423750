#include "server/lazy/registry.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "server/common/duration.h"
#include "server/common/errors.h"
#include "server/common/paging.h"
#include "server/common/proto_time.h"
#include "server/common/serialize.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"
#include "server/engine/async_lazy.h"
#include "server/handlers/value_size.h"
#include "server/plan/interpreter.h"

namespace weft::lazy {
namespace {

constexpr char kPrefix[] = "lazyValues/";

using Lazy = engine::AsyncLazy<LazyRegistry::CachedPtr>;

// The definition's fields, encoded deterministically: two definitions are
// the same when these bytes are.
std::string DefinitionBytes(const weft::v1::LazyValue& d) {
  weft::v1::LazyValue only;
  *only.mutable_plan() = d.plan();
  *only.mutable_ttl() = d.ttl();
  *only.mutable_refresh_after() = d.refresh_after();
  *only.mutable_cache_failures_for() = d.cache_failures_for();
  return common::SerializeDeterministic(only);
}

constexpr char kLazyValueType[] = "weft.v1.LazyValue";  // ResourceInfo

absl::Status BadName(absl::string_view name) {
  return common::FieldError(
      "name", absl::StrCat(common::Quote(name),
                           " is not a lazy value name; lazy value names look "
                           "like lazyValues/daily_stats"));
}

absl::Status NotFound(absl::string_view name) {
  return common::WithResource(
      common::WithReason(
          absl::NotFoundError(absl::StrCat(name, ": no such lazy value")),
          common::kLazyValueNotFound),
      kLazyValueType, name);
}

absl::Duration OrInfinite(absl::Duration d) {
  return d == absl::ZeroDuration() ? absl::InfiniteDuration() : d;
}

weft::v1::LazyValueState ToProto(engine::LazyState s) {
  switch (s) {
    case engine::LazyState::kEmpty:
      return weft::v1::LAZY_VALUE_STATE_EMPTY;
    case engine::LazyState::kComputing:
      return weft::v1::LAZY_VALUE_STATE_COMPUTING;
    case engine::LazyState::kReady:
      return weft::v1::LAZY_VALUE_STATE_READY;
    case engine::LazyState::kFailed:
      return weft::v1::LAZY_VALUE_STATE_FAILED;
  }
  return weft::v1::LAZY_VALUE_STATE_UNSPECIFIED;
}

}  // namespace

// What a lazy value costs besides its definition's bytes and its value.
constexpr int64_t kEntryMemory = 2048;

// What to do when the lazy values' budget is full.
constexpr char kMakeRoom[] = "Reset or delete other lazy values";

struct LazyRegistry::Entry {
  std::string name;
  weft::v1::LazyValue definition;  // Name and definition fields only.
  std::string definition_bytes;
  std::shared_ptr<const plan::CompiledPlan> plan;
  std::unique_ptr<Lazy> lazy;
  // The definition's memory, in the lazy values' budget.
  engine::MemoryCharge charge;

  // The cached value's serialized size; 0 when there is none.
  int64_t ValueWireBytes() const {
    std::optional<CachedPtr> v = lazy->Peek();
    return v.has_value() ? (*v)->wire_bytes : 0;
  }

  // With `charge`: the value is added to it first; RESOURCE_EXHAUSTED when
  // it cannot be. Without: the value is left out.
  absl::StatusOr<weft::v1::LazyValue> Snapshot(
      engine::MemoryCharge* charge = nullptr) const {
    weft::v1::LazyValue out = definition;
    const engine::LazySnapshot<CachedPtr> s = lazy->Snapshot();
    out.set_state(ToProto(s.state));
    if (s.value.has_value() && charge != nullptr) {
      const Cached& cached = **s.value;
      if (!charge->TryAdd(cached.charge.bytes())) {
        return charge->Refusal(cached.charge.bytes(), "this answer");
      }
      *out.mutable_value() = cached.value;
    }
    if (!s.error.ok()) {
      out.mutable_error()->set_code(common::CodeName(s.error.code()));
      out.mutable_error()->set_message(std::string(s.error.message()));
      out.mutable_error()->set_reason(common::Reason(s.error));
    }
    if (s.computed_at != absl::InfinitePast()) {
      common::SetTimestamp(s.computed_at, out.mutable_compute_time());
    }
    if (s.state != engine::LazyState::kEmpty &&
        s.state != engine::LazyState::kComputing &&
        s.expires_at != absl::InfiniteFuture()) {
      common::SetTimestamp(s.expires_at, out.mutable_expire_time());
    }
    out.set_generation(static_cast<int64_t>(s.generation));
    out.set_refreshing(s.refreshing);
    weft::v1::LazyValueStats& st = *out.mutable_stats();
    st.set_hits(s.stats.hits);
    st.set_misses(s.stats.misses);
    st.set_loads(s.stats.loads);
    st.set_load_failures(s.stats.load_failures);
    if (s.stats.loads > 0) {
      common::SetDuration(s.stats.last_load_duration,
                          st.mutable_last_load_duration());
    }
    return out;
  }
};

LazyRegistry::LazyRegistry(engine::Env& env, Options options)
    : env_(env),
      options_(options),
      cache_(std::make_shared<engine::MemoryBudget>(
          options.max_bytes, "lazy values (definitions and cached values)",
          "--max_lazy_bytes")) {}

LazyRegistry::~LazyRegistry() {
  CloseAll(
      common::WithReason(absl::CancelledError("the server is shutting down"),
                         common::kShuttingDown));
}

void LazyRegistry::CloseAll(const absl::Status& reason) {
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> entries;
  {
    engine::MutexLock lock(&mu_);
    entries.swap(entries_);
  }
  for (auto& [name, entry] : entries) {
    // ABORTED, with the reason's details (SHUTTING_DOWN).
    absl::Status closed =
        absl::AbortedError(absl::StrCat(name, ": ", reason.message()));
    reason.ForEachPayload([&](absl::string_view url, const absl::Cord& v) {
      closed.SetPayload(url, v);
    });
    entry->lazy->Close(std::move(closed));
  }
}

absl::Status LazyRegistry::CheckDefinition(const weft::v1::LazyValue& d,
                                           absl::string_view path) {
  struct Field {
    const char* name;
    bool has;
    const google::protobuf::Duration& value;
  };
  const Field fields[] = {
      {"ttl", d.has_ttl(), d.ttl()},
      {"refresh_after", d.has_refresh_after(), d.refresh_after()},
      {"cache_failures_for", d.has_cache_failures_for(),
       d.cache_failures_for()},
  };
  for (const Field& f : fields) {
    if (!f.has) continue;
    absl::StatusOr<absl::Duration> v =
        common::CheckedDuration(f.value, absl::StrCat(path, ".", f.name),
                                absl::ZeroDuration(), absl::Hours(24 * 366));
    if (!v.ok()) return v.status();
  }
  if (d.has_refresh_after() && d.has_ttl() &&
      common::FromProto(d.ttl()) != absl::ZeroDuration() &&
      common::FromProto(d.refresh_after()) >= common::FromProto(d.ttl())) {
    return common::FieldError(
        absl::StrCat(path, ".refresh_after"),
        absl::StrCat("must be shorter than ttl (",
                     common::FormatJsonDuration(common::FromProto(d.ttl())),
                     "), or the value expires before it is refreshed"));
  }
  if (d.has_refresh_after() &&
      common::FromProto(d.refresh_after()) == absl::ZeroDuration()) {
    return common::FieldError(absl::StrCat(path, ".refresh_after"),
                              "must be positive (leave it out for no refresh)");
  }
  return absl::OkStatus();
}

absl::StatusOr<weft::v1::LazyValue> LazyRegistry::Create(
    absl::string_view id, const weft::v1::LazyValue& definition,
    std::shared_ptr<const plan::CompiledPlan> plan, int64_t request_bytes) {
  const std::string name = absl::StrCat(kPrefix, id);
  if (!plan::IsLazyValueName(name)) {
    return common::FieldError(
        "lazy_value_id",
        absl::StrCat(common::Quote(id),
                     " is not a lazy value id: 1 to 63 characters of a-z, "
                     "0-9, _ and -, starting with a letter"));
  }
  if (absl::Status s = CheckDefinition(definition, "lazy_value"); !s.ok()) {
    return s;
  }
  auto entry = std::make_shared<Entry>();
  entry->name = name;
  entry->definition_bytes = DefinitionBytes(definition);
  entry->definition.set_name(name);
  *entry->definition.mutable_plan() = definition.plan();
  if (definition.has_ttl()) {
    *entry->definition.mutable_ttl() = definition.ttl();
  }
  if (definition.has_refresh_after()) {
    *entry->definition.mutable_refresh_after() = definition.refresh_after();
  }
  if (definition.has_cache_failures_for()) {
    *entry->definition.mutable_cache_failures_for() =
        definition.cache_failures_for();
  }
  entry->plan = std::move(plan);
  engine::AsyncLazyOptions lazy_options;
  lazy_options.env = &env_;
  lazy_options.ttl = OrInfinite(common::FromProto(definition.ttl()));
  if (definition.has_refresh_after()) {
    lazy_options.refresh_after = common::FromProto(definition.refresh_after());
  }
  lazy_options.cache_failures_for =
      common::FromProto(definition.cache_failures_for());
  // A value and its definition must fit one answer (GetLazyValue, a page of
  // ListLazyValues), within --max_outcome_bytes.
  const int64_t max_value_bytes = std::max<int64_t>(
      0, options_.max_value_bytes -
             static_cast<int64_t>(entry->definition_bytes.size()) - 1024);
  entry->lazy = std::make_unique<Lazy>(
      [this, plan = entry->plan, name, max_value_bytes](
          const engine::CancellationToken& token, Lazy::Callback done) {
        Compute(plan, name, max_value_bytes, token, std::move(done));
      },
      lazy_options);

  engine::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    if (it->second->definition_bytes != entry->definition_bytes) {
      return common::WithResource(
          common::WithReason(absl::AlreadyExistsError(absl::StrCat(
                                 name,
                                 " exists with another definition; delete it "
                                 "first to change it")),
                             common::kLazyValueExists),
          kLazyValueType, name);
    }
    return it->second->Snapshot();
  }
  if (static_cast<int>(entries_.size()) >= options_.max_values) {
    return common::WithLimit(
        absl::ResourceExhaustedError(
            absl::StrCat("there are ", entries_.size(),
                         " lazy values, the most allowed (--max_lazy_values)")),
        common::kLazyStoreFull, "--max_lazy_values", options_.max_values);
  }
  // The request, and the definition's copy and encoding kept beside it.
  const int64_t bytes =
      request_bytes + 2 * static_cast<int64_t>(entry->definition_bytes.size()) +
      kEntryMemory;
  entry->charge = engine::MemoryCharge(cache_.get());
  if (!entry->charge.TryAdd(bytes)) {
    return entry->charge.Refusal(bytes, absl::StrCat(name, "'s definition"),
                                 kMakeRoom);
  }
  entries_.emplace(name, entry);
  return entry->Snapshot();
}

absl::StatusOr<std::shared_ptr<LazyRegistry::Entry>> LazyRegistry::Find(
    absl::string_view name) const {
  if (!plan::IsLazyValueName(name)) return BadName(name);
  engine::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return NotFound(name);
  }
  return it->second;
}

absl::StatusOr<weft::v1::LazyValue> LazyRegistry::Get(
    absl::string_view name, engine::MemoryCharge* charge) const {
  absl::StatusOr<std::shared_ptr<Entry>> entry = Find(name);
  if (!entry.ok()) return entry.status();
  return (*entry)->Snapshot(charge);
}

absl::StatusOr<weft::v1::LazyValue> LazyRegistry::Reset(
    absl::string_view name) {
  absl::StatusOr<std::shared_ptr<Entry>> entry = Find(name);
  if (!entry.ok()) return entry.status();
  (*entry)->lazy->Reset();
  return (*entry)->Snapshot();
}

absl::Status LazyRegistry::Delete(absl::string_view name) {
  absl::StatusOr<std::shared_ptr<Entry>> entry = Find(name);
  if (!entry.ok()) return entry.status();
  {
    engine::MutexLock lock(&mu_);
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second != *entry) {
      return NotFound(name);
    }
    entries_.erase(it);
  }
  (*entry)->lazy->Close(
      common::WithReason(absl::AbortedError(absl::StrCat(name, " was deleted")),
                         common::kLazyValueDeleted));
  return absl::OkStatus();
}

absl::StatusOr<LazyRegistry::Page> LazyRegistry::List(
    int page_size, absl::string_view page_token, int64_t max_bytes,
    engine::MemoryCharge* charge) const {
  absl::StatusOr<int> size = common::PageSize(page_size);
  if (!size.ok()) return size.status();
  page_size = *size;
  if (!page_token.empty() && !plan::IsLazyValueName(page_token)) {
    return common::FieldError("page_token", "not a token from ListLazyValues");
  }
  std::vector<std::shared_ptr<Entry>> entries;
  bool more = false;
  {
    engine::MutexLock lock(&mu_);
    // The token is the last name returned: the next page starts after it,
    // so values created or deleted meanwhile do not shift it.
    auto it = page_token.empty() ? entries_.begin()
                                 : entries_.upper_bound(page_token);
    for (; it != entries_.end(); ++it) {
      if (static_cast<int>(entries.size()) == page_size) {
        more = true;
        break;
      }
      entries.push_back(it->second);
    }
  }
  Page page;
  int64_t bytes = 0;
  for (const auto& e : entries) {
    // A page ends before it would pass max_bytes (the next page starts with
    // the value that did not fit). One lazy value always fits: its value is
    // computed within what its definition leaves.
    const int64_t size = e->ValueWireBytes() +
                         static_cast<int64_t>(e->definition_bytes.size()) +
                         1024;
    if (!page.values.empty() && bytes + size > max_bytes) {
      more = true;
      break;
    }
    absl::StatusOr<weft::v1::LazyValue> v = e->Snapshot(charge);
    if (!v.ok()) return v.status();
    bytes += size;
    page.values.push_back(*std::move(v));
  }
  if (more) page.next_page_token = page.values.back().name();
  return page;
}

LazyRegistry::Totals LazyRegistry::totals() const {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    engine::MutexLock lock(&mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  Totals t;
  t.count = static_cast<int>(entries.size());

  for (const auto& e : entries) {
    const engine::LazyStats s = e->lazy->Snapshot().stats;
    t.hits += s.hits;
    t.misses += s.misses;
    t.loads += s.loads;
    t.load_failures += s.load_failures;
  }
  return t;
}

void LazyRegistry::Resolve(const std::string& name,
                           const engine::CancellationToken& token,
                           handlers::CallDone done) {
  ResolveShared(name, token,
                [done = std::move(done)](absl::StatusOr<Resolved> v) mutable {
                  if (!v.ok()) return std::move(done)(v.status());
                  std::move(done)(v->cached->value);
                });
}

void LazyRegistry::SetRefresher(Refresher refresher) {
  engine::MutexLock lock(&mu_);
  refresher_ = refresher
                   ? std::make_shared<const Refresher>(std::move(refresher))
                   : nullptr;
}

void LazyRegistry::Refresh(const std::string& name,
                           absl::AnyInvocable<void() &&> then) {
  std::shared_ptr<const Refresher> refresher;
  {
    engine::MutexLock lock(&mu_);
    refresher = refresher_;
  }
  if (refresher == nullptr) {
    std::move(then)();
    return;
  }
  (*refresher)(name, std::move(then));
}

void LazyRegistry::ResolveShared(const std::string& name,
                                 const engine::CancellationToken& token,
                                 ResolvedDone done) {
  std::shared_ptr<const Refresher> refresher;
  {
    engine::MutexLock lock(&mu_);
    refresher = refresher_;
  }
  if (refresher == nullptr) {
    ResolveNow(name, token, std::move(done));
    return;
  }
  (*refresher)(name, [this, name, token, done = std::move(done)]() mutable {
    ResolveNow(name, token, std::move(done));
  });
}

void LazyRegistry::ResolveNow(const std::string& name,
                              const engine::CancellationToken& token,
                              ResolvedDone done) {
  absl::StatusOr<std::shared_ptr<Entry>> entry = Find(name);
  if (!entry.ok()) return std::move(done)(entry.status());
  (*entry)->lazy->GetAnswered(
      token, [done = std::move(done)](absl::StatusOr<CachedPtr> v,
                                      const engine::LazyAnswer& how) mutable {
        if (!v.ok()) return std::move(done)(v.status());
        Resolved r;
        r.cached = *std::move(v);
        r.cache_hit = how.from_cache;
        r.generation = static_cast<int64_t>(how.generation);
        r.computed_at = how.computed_at;
        std::move(done)(std::move(r));
      });
}

void LazyRegistry::Compute(
    const std::shared_ptr<const plan::CompiledPlan>& plan,
    const std::string& name, int64_t max_value_bytes,
    const engine::CancellationToken& token, ResolveDone done) {
  if (std::string cycle = FindCycle(name); !cycle.empty()) {
    return std::move(done)(common::WithReason(
        absl::FailedPreconditionError(absl::StrCat(
            name,
            " cannot be computed: lazy values resolve each other in a cycle, ",
            cycle)),
        common::kLazyValueCycle));
  }
  plan::RunOptions run;
  run.env = &env_;
  run.token = token;
  run.deadline = env_.Now() + options_.compute_timeout;
  run.deadline_message =
      absl::StrCat("the computation of ", name, " ran past ",
                   common::FormatJsonDuration(options_.compute_timeout),
                   " (--lazy_compute_timeout)");
  run.root_only = true;
  run.max_outcome_bytes = max_value_bytes;
  // What the computation holds while it runs; given back once its value is
  // in the cache (or dropped).
  auto inflight = std::make_shared<engine::MemoryCharge>(options_.inflight);
  run.memory = inflight.get();
  plan::Execute(
      plan, std::move(run),
      [cache = cache_, name, inflight,
       done = std::move(done)](weft::v1::NodeOutcome o) mutable {
        if (o.state() == weft::v1::NODE_STATE_SUCCEEDED) {
          const handlers::ValueSize size = handlers::Measure(o.value());
          auto cached = std::make_shared<Cached>();
          cached->cache = cache;
          cached->charge = engine::MemoryCharge(cache.get());
          if (!cached->charge.TryAdd(size.memory)) {
            return std::move(done)(cached->charge.Refusal(
                size.memory, absl::StrCat(name, "'s value"),
                absl::StrCat(kMakeRoom, ", or return a smaller value")));
          }
          cached->wire_bytes = size.wire;
          cached->value = std::move(*o.mutable_value());
          inflight.reset();
          return std::move(done)(CachedPtr(std::move(cached)));
        }
        absl::StatusOr<absl::StatusCode> code =
            common::ParseCodeName(o.error().code());
        std::move(done)(common::WithReason(
            absl::Status(code.ok() ? *code : absl::StatusCode::kUnknown,
                         absl::StrCat(name, ": ", o.error().message())),
            common::kLazyComputationFailed,
            {{"node_reason", o.error().reason()}}));
      });
}

std::string LazyRegistry::FindCycle(const std::string& start) const {
  // The graph of lazy nodes, copied so the search runs without the lock.
  absl::flat_hash_map<std::string, const std::vector<std::string>*> edges;
  std::vector<std::shared_ptr<Entry>> keep;  // Keeps the plans alive.
  {
    engine::MutexLock lock(&mu_);
    for (const auto& [name, entry] : entries_) {
      edges.emplace(name, &entry->plan->lazy_names());
      keep.push_back(entry);
    }
  }
  // Depth-first from `start`; a name met again on the current path closes
  // a cycle.
  std::vector<std::string> path;
  absl::flat_hash_set<std::string> acyclic;  // Explored: no cycle below.
  std::function<bool(const std::string&)> visit = [&](const std::string& name) {
    if (std::find(path.begin(), path.end(), name) != path.end()) {
      path.push_back(name);
      return true;
    }
    if (acyclic.contains(name)) return false;
    auto it = edges.find(name);
    if (it == edges.end()) return false;
    path.push_back(name);
    for (const std::string& next : *it->second) {
      if (visit(next)) return true;
    }
    path.pop_back();
    acyclic.insert(name);
    return false;
  };
  if (!visit(start)) return "";
  // Show the cycle itself, from where it starts.
  auto first = std::find(path.begin(), path.end(), path.back());
  return absl::StrJoin(first, path.end(), " -> ");
}

}  // namespace weft::lazy
