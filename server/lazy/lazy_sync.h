// LazySync: keeps a replica's lazy values in step with the other replicas'
// through the store they share (PostgreSQL with --replicas).
//
// Each replica declares and caches lazy values itself. The store holds what
// they share: the definitions made through the API (CreateLazyValue,
// DeleteLazyValue) and a count of each value's resets (ResetLazyValue, for
// the config file's values too). Before every resolve on this replica
// (ResolveLazyValue, and a plan's lazy node) LazySync reads the value's row
// and applies what changed since it last looked: a new or replaced
// definition is declared here, a deleted one removed, and a reset forgets
// the cached value. So a reset, create or delete committed on one replica
// is seen by every replica before its next resolve of that value. Reads of
// one value are shared by the resolves that wait for them (a resolve joins
// the next read to start, never one already under way, which could miss a
// reset that committed after it began).
//
// Notices (TaskStore::Notice::kLazy) and polls apply changes between
// resolves, so that a definition made elsewhere shows in GetLazyValue and
// ListLazyValues here within a poll interval. When the row cannot be read,
// a resolve goes on with what this replica has.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_LAZY_LAZY_SYNC_H_
#define WEFT_SERVER_LAZY_LAZY_SYNC_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "server/engine/sync.h"
#include "server/engine/thread_pool.h"
#include "server/lazy/registry.h"
#include "server/store/task_store.h"

namespace weft::lazy {

class LazySync {
 public:
  // Compiles a stored CreateLazyValueRequest (serialized) and declares it
  // (LazyRegistry::Create): the same definition again is OK, another is
  // ALREADY_EXISTS.
  using DeclareFn = std::function<absl::Status(const std::string& id,
                                               const std::string& request)>;

  // `store` must be shared; it and `lazies` outlive this.
  LazySync(store::TaskStore& store, LazyRegistry& lazies, DeclareFn declare);
  // Stops being the registry's refresher (waiting for calls into it in
  // progress) and listening, then waits for the reads under way (every
  // resolve waiting on one goes on).
  ~LazySync();

  // Applies every row the store holds now (declaring the definitions made
  // on other replicas since this one's store was opened), then listens to
  // the store's notices and refreshes every resolve. `config_ids`: the
  // config file's lazy values, whose definitions are the config's (only
  // their resets are shared). Returns what to log.
  std::vector<std::string> Start(std::set<std::string> config_ids);

  // ResetLazyValue on this replica: counts the reset in the store and, once
  // it is written, forgets the value here at once unless a read did already
  // (this replica knows the count it wrote, so the notice of its own reset
  // forgets nothing more);
  // then `done`, with the store's error if it could not be written (then
  // no replica forgot it).
  void Reset(const std::string& name,
             absl::AnyInvocable<void(absl::Status) &&> done);

  // Reads `name`'s row and applies it, then runs `then` (may be empty) on
  // a thread of this object's; `then` at once for a name that is not
  // "lazyValues/{id}".
  void Refresh(const std::string& name, absl::AnyInvocable<void() &&> then);

 private:
  using Then = absl::AnyInvocable<void() &&>;
  // The resolves waiting on one value's reads: `now` on the read under
  // way, `next` on the one after it.
  struct Reading {
    std::vector<Then> now;
    std::vector<Then> next;
  };

  // On the pool: reads `id`'s row until no resolve waits for another read.
  void ReadLoop(const std::string& id);
  // Brings this replica's copy of `id` to what `row` says.
  void Apply(const std::string& id, const store::TaskStore::LazyRow& row)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // On the pool: reads every row and refreshes the values that changed.
  void Poll();
  void Log(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);

  // What the registry's refresher calls through: refreshes go on here
  // while `sync` is set, and ~LazySync waits for those in progress.
  struct Guard {
    // Runs fn(*sync) unless it is gone (then returns false), outside the
    // lock, so that calls may nest.
    template <typename Fn>
    bool Call(Fn fn) {
      LazySync* target;
      {
        engine::MutexLock lock(&mu);
        target = sync;
        if (target == nullptr) return false;
        ++calls;
      }
      fn(*target);
      engine::MutexLock lock(&mu);
      if (--calls == 0) idle.SignalAll();
      return true;
    }
    engine::Mutex mu;
    engine::CondVar idle;
    LazySync* sync ABSL_GUARDED_BY(mu) = nullptr;
    int calls ABSL_GUARDED_BY(mu) = 0;
  };

  store::TaskStore& store_;
  LazyRegistry& lazies_;
  const DeclareFn declare_;
  const std::shared_ptr<Guard> guard_ = std::make_shared<Guard>();
  // Set by Start, before any read.
  std::set<std::string> config_ids_;

  engine::Mutex apply_mu_;
  // What this replica last applied, by id; an id absent is the empty row.
  std::map<std::string, store::TaskStore::LazyRow> known_
      ABSL_GUARDED_BY(apply_mu_);
  // What Start logs; after Start, lines go to stderr.
  std::vector<std::string>* log_ ABSL_GUARDED_BY(apply_mu_) = nullptr;
  // The definitions that could not be declared here (by id), logged once
  // each; tried again at every read until they are.
  std::map<std::string, std::string> failed_ ABSL_GUARDED_BY(apply_mu_);

  engine::Mutex mu_;
  std::map<std::string, Reading> reading_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> poll_queued_{false};

  // Reads and applies (two: one slow read does not hold up every value).
  engine::ThreadPool readers_{"lazy_sync", 2, 1 << 16};
  std::unique_ptr<store::TaskStore::Subscription> subscription_;
};

}  // namespace weft::lazy

#endif  // WEFT_SERVER_LAZY_LAZY_SYNC_H_
