// weftd's log: one line per event on stderr, "weftd: ...".
//
// protobuf and gRPC log on their own when a request is bad (a string that is
// not UTF-8, a broken HTTP/2 frame), so any caller could make weftd write
// lines without end and fill a disk. Their logs come here instead, through a
// rate limit: at most a burst of lines per window, then one line saying how
// many were left out.
//
// Thread-safety: thread-safe.

#ifndef WEFT_SERVER_WEFTD_LOG_H_
#define WEFT_SERVER_WEFTD_LOG_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/sync.h"

namespace weft::weftd {

// Lets through at most `burst` lines in each `window`; counts the rest.
class LogLimiter {
 public:
  LogLimiter(int burst, absl::Duration window)
      : burst_(burst), window_(window) {}

  // Whether a line at `now` may be written. When a new window opens after
  // lines were left out, *left_out says how many (else 0).
  bool Allow(absl::Time now, int64_t* left_out);

 private:
  const int burst_;
  const absl::Duration window_;
  engine::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int in_window_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t left_out_ ABSL_GUARDED_BY(mu_) = 0;
};

// Writes "weftd: <line>" to stderr.
void LogLine(absl::string_view line);

// Sends protobuf's and gRPC's logs through one LogLimiter (20 lines a
// minute) to LogLine, each cut to 300 bytes. `sink` replaces LogLine (for
// tests); the limiter's clock is absl::Now().
void InstallLibraryLogs(std::function<void(absl::string_view)> sink = LogLine);

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_LOG_H_
