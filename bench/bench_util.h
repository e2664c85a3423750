// What the scale benchmarks share: a weftd child process and its /proc
// entries.

#ifndef WEFT_BENCH_BENCH_UTIL_H_
#define WEFT_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <string>
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

}  // namespace weft::bench

#endif  // WEFT_BENCH_BENCH_UTIL_H_
