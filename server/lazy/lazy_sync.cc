#include "server/lazy/lazy_sync.h"

#include <iostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/plan/compiler.h"

namespace weft::lazy {
namespace {

constexpr absl::string_view kPrefix = "lazyValues/";

}  // namespace

LazySync::LazySync(store::TaskStore& store, LazyRegistry& lazies,
                   DeclareFn declare)
    : store_(store), lazies_(lazies), declare_(std::move(declare)) {}

LazySync::~LazySync() {
  lazies_.SetRefresher(nullptr);
  {
    // A resolve may have taken the refresher just before: it calls in
    // through the guard, which from now on runs it without a refresh.
    engine::MutexLock lock(&guard_->mu);
    guard_->sync = nullptr;
    while (guard_->calls > 0) guard_->idle.Wait(&guard_->mu);
  }
  subscription_.reset();
  // readers_ (destroyed next) runs the reads still queued first.
}

std::vector<std::string> LazySync::Start(std::set<std::string> config_ids) {
  config_ids_ = std::move(config_ids);
  std::vector<std::string> lines;
  {
    engine::MutexLock lock(&apply_mu_);
    log_ = &lines;
    absl::StatusOr<std::map<std::string, store::TaskStore::LazyRow>> rows =
        store_.ReadLazyValues();
    if (!rows.ok()) {
      lines.push_back(absl::StrCat(
          "the lazy values other replicas made could not be read (",
          rows.status().message(), "); they are read again at the next poll"));
    } else {
      for (const auto& [id, row] : *rows) {
        // Resets before this start left nothing cached here to forget.
        known_[id].resets = row.resets;
        Apply(id, row);
      }
    }
    log_ = nullptr;
  }
  {
    engine::MutexLock lock(&guard_->mu);
    guard_->sync = this;
  }
  lazies_.SetRefresher([guard = guard_](const std::string& name, Then then) {
    if (!guard->Call(
            [&](LazySync& sync) { sync.Refresh(name, std::move(then)); })) {
      std::move(then)();
    }
  });
  subscription_ = store_.Listen([this](const store::TaskStore::Notice& n) {
    switch (n.kind) {
      case store::TaskStore::Notice::Kind::kLazy:
        Refresh(absl::StrCat(kPrefix, n.name), nullptr);
        break;
      case store::TaskStore::Notice::Kind::kPoll:
        // At most one poll waits at a time.
        if (!poll_queued_.exchange(true) &&
            !readers_.Submit([this] { Poll(); }).ok()) {
          poll_queued_ = false;
        }
        break;
      default:
        break;
    }
  });
  return lines;
}

void LazySync::Refresh(const std::string& name, Then then) {
  if (!plan::IsLazyValueName(name)) {
    if (then) std::move(then)();
    return;
  }
  const std::string id = name.substr(kPrefix.size());
  {
    engine::MutexLock lock(&mu_);
    auto [it, first] = reading_.try_emplace(id);
    if (!first) {
      // A read is under way: wait for the next, which starts after it.
      if (then) it->second.next.push_back(std::move(then));
      return;
    }
    if (then) it->second.now.push_back(std::move(then));
  }
  if (readers_.Submit([this, id] { ReadLoop(id); }).ok()) return;
  // Stopping, or more values read at once than the queue holds: the
  // resolves go on with what this replica has.
  Reading dropped;
  {
    engine::MutexLock lock(&mu_);
    auto it = reading_.find(id);
    dropped = std::move(it->second);
    reading_.erase(it);
  }
  for (Then& t : dropped.now) std::move(t)();
  for (Then& t : dropped.next) std::move(t)();
}

void LazySync::Reset(const std::string& name,
                     absl::AnyInvocable<void(absl::Status) &&> done) {
  const std::string id = name.substr(kPrefix.size());
  store_.ResetLazyValue(id, [guard = guard_, id, name, done = std::move(done)](
                                absl::StatusOr<int64_t> count) mutable {
    if (!count.ok()) {
      std::move(done)(count.status());
      return;
    }
    // Through the guard: this may have been destroyed meanwhile.
    guard->Call([&](LazySync& sync) {
      engine::MutexLock lock(&sync.apply_mu_);
      int64_t& known = sync.known_[id].resets;
      // A read since the write (the notice of this reset) may have
      // applied it, or a later one, already.
      if (*count > known) {
        sync.lazies_.Reset(name).IgnoreError();
        known = *count;
      }
    });
    std::move(done)(absl::OkStatus());
  });
}

void LazySync::ReadLoop(const std::string& id) {
  for (;;) {
    absl::StatusOr<store::TaskStore::LazyRow> row = store_.ReadLazyValue(id);
    if (row.ok()) {
      engine::MutexLock lock(&apply_mu_);
      Apply(id, *row);
    }
    std::vector<Then> done;
    bool again = false;
    {
      engine::MutexLock lock(&mu_);
      auto it = reading_.find(id);
      done = std::move(it->second.now);
      if (it->second.next.empty()) {
        reading_.erase(it);
      } else {
        it->second.now = std::move(it->second.next);
        it->second.next.clear();
        again = true;
      }
    }
    for (Then& t : done) std::move(t)();
    if (!again) return;
  }
}

void LazySync::Apply(const std::string& id,
                     const store::TaskStore::LazyRow& row) {
  const std::string name = absl::StrCat(kPrefix, id);
  store::TaskStore::LazyRow& known = known_[id];
  if (row.request != known.request && !config_ids_.contains(id)) {
    absl::Status s;
    if (row.request.empty()) {
      // Deleted on another replica.
      lazies_.Delete(name).IgnoreError();
    } else {
      s = declare_(id, row.request);
      if (absl::IsAlreadyExists(s)) {
        // Replaced on another replica (deleted, then made again).
        lazies_.Delete(name).IgnoreError();
        s = declare_(id, row.request);
      }
    }
    if (s.ok()) {
      known.request = row.request;
      failed_.erase(id);
    } else {
      // Tried again at the next read (its limit may have room by then).
      auto [it, first] = failed_.try_emplace(id, row.request);
      if (first || it->second != row.request) {
        it->second = row.request;
        Log(absl::StrCat(name,
                         " (made through the API on another replica) could "
                         "not be declared here: ",
                         s.message()));
      }
    }
  }
  if (row.resets != known.resets) lazies_.Reset(name).IgnoreError();
  known.resets = row.resets;
  if (known == store::TaskStore::LazyRow{}) known_.erase(id);
}

void LazySync::Poll() {
  poll_queued_ = false;
  absl::StatusOr<std::map<std::string, store::TaskStore::LazyRow>> rows =
      store_.ReadLazyValues();
  if (!rows.ok()) return;
  // Each value that changed is read again on its own, in order with the
  // resolves' reads (this read may already be older than theirs).
  std::vector<std::string> changed;
  {
    engine::MutexLock lock(&apply_mu_);
    for (const auto& [id, row] : *rows) {
      auto it = known_.find(id);
      if (it == known_.end() ? !(row == store::TaskStore::LazyRow{})
                             : !(it->second == row)) {
        changed.push_back(id);
      }
    }
    for (const auto& [id, row] : known_) {
      if (!rows->contains(id)) changed.push_back(id);
    }
  }
  for (const std::string& id : changed) {
    Refresh(absl::StrCat(kPrefix, id), nullptr);
  }
}

void LazySync::Log(const std::string& line) {
  if (log_ != nullptr) {
    log_->push_back(line);
  } else {
    std::cerr << "weftd: " << line << std::endl;
  }
}

}  // namespace weft::lazy
