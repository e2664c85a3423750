// Adopter: a replica's side of failover. Every `interval` it asks the
// PostgreSQL store for the tasks of replicas whose lease ended
// (PostgresTaskStore::AdoptExpired) and hands them to the server, which
// serves the finished ones and resumes the others from their journal, as a
// restart does. Each adoption is logged with what it took.
//
// Thread-safety: owns one thread; destroyed (stopping it) before the server
// shuts down.

#ifndef WEFT_SERVER_WEFTD_REPLICA_H_
#define WEFT_SERVER_WEFTD_REPLICA_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"
#include "server/store/postgres_task_store.h"
#include "server/weftd/server.h"

namespace weft::weftd {

class Adopter {
 public:
  // `log` gets one line per adoption (and per failed try).
  Adopter(store::PostgresTaskStore& store, WeftServer& server,
          absl::Duration interval, std::function<void(std::string)> log);
  ~Adopter();
  Adopter(const Adopter&) = delete;
  Adopter& operator=(const Adopter&) = delete;

  // Adopts once now, on the caller's thread (at start, before serving).
  void AdoptNow();

 private:
  void Loop();

  store::PostgresTaskStore& store_;
  WeftServer& server_;
  const absl::Duration interval_;
  const std::function<void(std::string)> log_;
  engine::Mutex mu_;
  engine::CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  engine::Mutex adopt_mu_;
  // The last failure logged, so that one that repeats is logged once.
  std::string last_error_ ABSL_GUARDED_BY(adopt_mu_);
  std::thread thread_;
};

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_REPLICA_H_
