#include "server/weftd/replica.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace weft::weftd {

Adopter::Adopter(store::PostgresTaskStore& store, WeftServer& server,
                 absl::Duration interval, std::function<void(std::string)> log)
    : store_(store),
      server_(server),
      interval_(interval),
      log_(std::move(log)),
      thread_([this] { Loop(); }) {}

Adopter::~Adopter() {
  {
    engine::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  thread_.join();
}

void Adopter::AdoptNow() {
  engine::MutexLock lock(&adopt_mu_);  // One adoption at a time.
  absl::StatusOr<std::vector<store::TakenTask>> taken = store_.AdoptExpired();
  if (!taken.ok()) {
    const std::string why(taken.status().message());
    if (why != last_error_) log_(absl::StrCat("cannot adopt tasks: ", why));
    last_error_ = why;
    return;
  }
  last_error_.clear();
  if (taken->empty()) return;
  const size_t n = taken->size();
  const absl::Time began = absl::Now();
  const tasks::Recovery found = server_.AdoptTasks(*std::move(taken));
  std::string line = absl::StrCat(
      "adopted ", n, " task(s) of replicas whose lease ended: ", found.finished,
      " finished, ", found.queued, " queued and ", found.resumed,
      " running (resumed) in ", absl::FormatDuration(absl::Now() - began));
  if (found.failed > 0) {
    absl::StrAppend(&line, "; ", found.failed,
                    " could not run again (their plan no longer compiles) "
                    "and ended FAILED");
  }
  log_(std::move(line));
}

void Adopter::Loop() {
  for (;;) {
    {
      engine::MutexLock lock(&mu_);
      const absl::Time next = absl::Now() + interval_;
      while (!stopping_ && absl::Now() < next) stop_cv_.WaitUntil(&mu_, next);
      if (stopping_) return;
    }
    AdoptNow();
  }
}

}  // namespace weft::weftd
