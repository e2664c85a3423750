#include "server/common/proto_time.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "server/common/duration.h"
#include "server/common/errors.h"

namespace weft::common {
namespace {

// google.protobuf.Duration's own range: about 10,000 years.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;

}  // namespace

absl::StatusOr<absl::Duration> CheckedDuration(
    const google::protobuf::Duration& d, absl::string_view field,
    absl::Duration min, absl::Duration max) {
  if (d.seconds() > kMaxDurationSeconds || d.seconds() < -kMaxDurationSeconds ||
      d.nanos() > 999'999'999 || d.nanos() < -999'999'999 ||
      (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return FieldError(
        field, absl::StrCat("is not a valid duration: seconds go up to ",
                            kMaxDurationSeconds,
                            " and nanos up to 999999999, with the same sign; "
                            "got seconds ",
                            d.seconds(), " and nanos ", d.nanos()));
  }
  const absl::Duration out = FromProto(d);
  if (out >= min && out <= max) return out;
  std::string rule;
  if (min == absl::Nanoseconds(1) && max == absl::InfiniteDuration()) {
    rule = "must be a positive duration";
  } else if (min == absl::ZeroDuration() && max == absl::InfiniteDuration()) {
    rule = "must not be negative";
  } else {
    rule = absl::StrCat("must be from ", FormatJsonDuration(min), " to ",
                        FormatJsonDuration(max));
  }
  return FieldError(field,
                    absl::StrCat(rule, ", got ", FormatJsonDuration(out)));
}

}  // namespace weft::common
