#include "server/common/duration.h"

#include <cstdint>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/text.h"

namespace weft::common {
namespace {

// google.protobuf.Duration's range: about 10,000 years.
constexpr int64_t kMaxSeconds = 315'576'000'000;

absl::Status BadDuration(absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat(Quote(text),
                   " is not a duration; write seconds with an \"s\" suffix, "
                   "like \"1.5s\""));
}

}  // namespace

absl::StatusOr<absl::Duration> ParseJsonDuration(absl::string_view text) {
  absl::string_view s = text;
  bool negative = false;
  if (!s.empty() && s.front() == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  if (s.size() < 2 || s.back() != 's') return BadDuration(text);
  s.remove_suffix(1);
  const size_t dot = s.find('.');
  absl::string_view whole = s.substr(0, dot);
  absl::string_view frac =
      dot == absl::string_view::npos ? "" : s.substr(dot + 1);
  if (whole.empty() || whole.size() > 12) return BadDuration(text);
  if (dot != absl::string_view::npos && (frac.empty() || frac.size() > 9)) {
    return BadDuration(text);
  }
  int64_t seconds = 0;
  for (char c : whole) {
    if (!absl::ascii_isdigit(c)) return BadDuration(text);
    seconds = seconds * 10 + (c - '0');
  }
  int64_t nanos = 0;
  for (size_t i = 0; i < 9; ++i) {
    char c = i < frac.size() ? frac[i] : '0';
    if (!absl::ascii_isdigit(c)) return BadDuration(text);
    nanos = nanos * 10 + (c - '0');
  }
  if (seconds > kMaxSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is longer than the largest duration, ",
                     kMaxSeconds, "s"));
  }
  absl::Duration d = absl::Seconds(seconds) + absl::Nanoseconds(nanos);
  return negative ? -d : d;
}

std::string FormatJsonDuration(absl::Duration d) {
  std::string sign;
  if (d < absl::ZeroDuration()) {
    sign = "-";
    d = -d;
  }
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  if (nanos == 0) return absl::StrCat(sign, seconds, "s");
  if (nanos % 1'000'000 == 0) {
    return absl::StrFormat("%s%d.%03ds", sign, seconds, nanos / 1'000'000);
  }
  if (nanos % 1'000 == 0) {
    return absl::StrFormat("%s%d.%06ds", sign, seconds, nanos / 1'000);
  }
  return absl::StrFormat("%s%d.%09ds", sign, seconds, nanos);
}

}  // namespace weft::common
