// Durations in handler arguments, in the JSON form of google.protobuf.Duration
// ("1.5s", "0.300s", "2s"), so args read like Duration fields.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_DURATION_H_
#define WEFT_SERVER_COMMON_DURATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace weft::common {

// Parses "-?digits(.digits{1,9})?s" within google.protobuf.Duration's range.
// The error says what the accepted form is; it does not name a field.
absl::StatusOr<absl::Duration> ParseJsonDuration(absl::string_view text);

// Formats like protobuf's JSON printer: "2s", "0.300s", "1.000000001s".
std::string FormatJsonDuration(absl::Duration d);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_DURATION_H_
