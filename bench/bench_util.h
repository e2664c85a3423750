// What the scale benchmarks share: a weftd child process and its /proc
// entries.

#ifndef WEFT_BENCH_BENCH_UTIL_H_
#define WEFT_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace weft::bench {

// A weftd started on a free loopback port; stopped with SIGTERM when
// destroyed.
class WeftdProcess {
 public:
  // Starts `binary` with --listen=127.0.0.1:0 and `flags`; exits the
  // benchmark when it does not start.
  WeftdProcess(const std::string& binary,
               const std::vector<std::string>& flags);
  ~WeftdProcess();
  WeftdProcess(const WeftdProcess&) = delete;
  WeftdProcess& operator=(const WeftdProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }

  // A field of /proc/PID/status (kB, or a count); -1 when missing.
  long Status(const std::string& key) const;
  // Threads whose name starts with "weft-" (the loop, its timer, pools).
  long WeftThreads() const;

 private:
  pid_t pid_ = -1;
  std::string address_;
};

// Samples a weftd's thread counts every 10 ms from construction until
// Stop(), keeping the most seen: how many threads a run needed.
class ThreadSampler {
 public:
  explicit ThreadSampler(const WeftdProcess& weftd);
  ~ThreadSampler() { Stop(); }
  ThreadSampler(const ThreadSampler&) = delete;
  ThreadSampler& operator=(const ThreadSampler&) = delete;

  void Stop();
  long threads_before() const { return threads_before_; }
  long weft_threads_before() const { return weft_threads_before_; }
  // Valid after Stop().
  long threads_max() const { return threads_max_; }
  long weft_threads_max() const { return weft_threads_max_; }

 private:
  const WeftdProcess& weftd_;
  long threads_before_ = 0;
  long weft_threads_before_ = 0;
  long threads_max_ = 0;
  long weft_threads_max_ = 0;
  std::atomic<bool> running_{true};
  std::thread thread_;
};

}  // namespace weft::bench

#endif  // WEFT_BENCH_BENCH_UTIL_H_
