// Text that weft puts in messages: user input quoted briefly, long messages
// cut short, UTF-8 checked.
//
// A status message travels in a gRPC trailer, which clients refuse beyond
// a few KiB (8 KiB by default in C++, Python and Node), and an error in an
// outcome is copied into every enclosing node's message. So messages never
// repeat user input whole: names, keys and texts are quoted up to a short
// prefix, and every message is cut at a bound.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_TEXT_H_
#define WEFT_SERVER_COMMON_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace weft::common {

// How much of a user's string a message quotes.
inline constexpr size_t kQuoteBytes = 64;
// The longest message an error carries (in a status or an outcome).
inline constexpr size_t kMaxMessageBytes = 1024;

// `s` in double quotes for a message: at most `max_bytes` of it (cut at a
// character boundary, then "..." and its full length), with quotes,
// backslashes, control characters and bytes that are not UTF-8 escaped.
//   Quote("slep")          -> "slep"
//   Quote(<10,000 x's>)    -> "xxxx...xxx..." (10000 bytes)
std::string Quote(absl::string_view s, size_t max_bytes = kQuoteBytes);

// `message` if it is at most `max_bytes`, else its start (cut at a
// character boundary) and "... (N bytes in all)".
std::string Abbreviate(absl::string_view message,
                       size_t max_bytes = kMaxMessageBytes);

// `status` with its message abbreviated to `max_bytes`; code and payloads
// kept.
absl::Status Abbreviate(const absl::Status& status,
                        size_t max_bytes = kMaxMessageBytes);

bool IsValidUtf8(absl::string_view s);

// A number as a caller would have written it: whole numbers in full
// (100000001, not 1e+08), others in the fewest digits that read back as the
// same double (0.1, 2.5e-300).
std::string FormatNumber(double n);

// A W3C traceparent header checked and rebuilt: "00-<32 hex trace id>-<16
// hex parent id>-<2 hex flags>", lowercase, ids not all zeros. A later
// version's header (which may add "-..." fields) is read as version 00 and
// its additions dropped, as the spec asks. "" if it is not one.
std::string Traceparent(absl::string_view header);
// The trace id of a valid traceparent, or "".
std::string TraceId(absl::string_view traceparent);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_TEXT_H_
