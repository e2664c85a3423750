// absl::Time and absl::Duration to and from their protobuf forms.

#ifndef WEFT_SERVER_COMMON_PROTO_TIME_H_
#define WEFT_SERVER_COMMON_PROTO_TIME_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace weft::common {

inline void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(t);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

inline void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

inline absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

inline absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A request's Duration field `field` (a path like "plan.timeout"), checked:
// a well-formed google.protobuf.Duration (seconds and nanos in range, with
// the same sign) from `min` to `max`. INVALID_ARGUMENT with a BadRequest
// violation on `field` otherwise: "must be a positive duration" when `min`
// is the smallest positive one, "must not be negative" when `min` is zero
// and there is no `max`, else "must be from MIN to MAX"; each followed by
// the value given.
absl::StatusOr<absl::Duration> CheckedDuration(
    const google::protobuf::Duration& d, absl::string_view field,
    absl::Duration min, absl::Duration max = absl::InfiniteDuration());

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_PROTO_TIME_H_
