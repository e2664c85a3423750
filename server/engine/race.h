// RunUntilFirstComplete: race alternatives; the first to win decides and
// the rest are cancelled (Starlette's and Nexios's run_until_first_complete,
// with failover and hedging).
//
// clang-format off
//   std::vector<RaceTask> mirrors;
//   mirrors.push_back(FetchFrom("primary"));
//   mirrors.push_back(FetchFrom("backup"));
//   RunUntilFirstComplete(env, token, std::move(mirrors),
//                         {.mode = RaceMode::kFirstSuccess,
//                          .hedge_delay = absl::Milliseconds(50)},
//                         [](RaceResult r) { Show(r.winner, r.status); });
// clang-format on
//
// kFirstSuccess (failover): the first task to succeed wins; failures are
// tolerated until every task has failed, and then the race fails with the
// code of the last failure and a message listing each one.
// kFirstComplete: the first task to finish decides, success or not.
// Either way the losers are cancelled at once, with the reason "lost the
// race to task i", and `done` runs after every started task has finished.
//
// With a hedge delay, task i starts i * delay after the race does, or at once
// when every task started so far has failed (hedged requests). Tasks that
// never started are reported as such. Cancelling the parent cancels every
// running task and ends the race with the parent's reason.
//
// Thread-safety: tasks may complete on any thread; `done` runs once, on the
// thread that finishes the last task (possibly inline).

#ifndef WEFT_SERVER_ENGINE_RACE_H_
#define WEFT_SERVER_ENGINE_RACE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/done.h"
#include "server/engine/env.h"

namespace weft::engine {

enum class RaceMode { kFirstSuccess, kFirstComplete };

struct RaceOptions {
  RaceMode mode = RaceMode::kFirstSuccess;
  absl::Duration hedge_delay = absl::ZeroDuration();
  // Names task i in messages ("lost the race to ..."); "task i" if unset.
  // Called under the race's lock, never after `done`: it must not call back
  // into the race.
  std::function<std::string(int)> task_name;
};

struct RaceResult {
  // The task that decided the race, or -1 (every task failed in
  // kFirstSuccess, or the race was cancelled before a decision).
  int winner = -1;
  // OK if the winner succeeded; else the deciding failure.
  absl::Status status;
  // Which tasks were started.
  std::vector<bool> started;
};

using RaceTask = AsyncTask;

void RunUntilFirstComplete(Env& env, const CancellationToken& parent,
                           std::vector<RaceTask> tasks, RaceOptions options,
                           absl::AnyInvocable<void(RaceResult) &&> done);

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_RACE_H_
