#include "server/common/status_codes.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/text.h"

namespace weft::common {
namespace {

constexpr std::array<std::pair<absl::string_view, absl::StatusCode>, 17>
    kCodes = {{
        {"OK", absl::StatusCode::kOk},
        {"CANCELLED", absl::StatusCode::kCancelled},
        {"UNKNOWN", absl::StatusCode::kUnknown},
        {"INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
        {"DEADLINE_EXCEEDED", absl::StatusCode::kDeadlineExceeded},
        {"NOT_FOUND", absl::StatusCode::kNotFound},
        {"ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
        {"PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
        {"RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
        {"FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
        {"ABORTED", absl::StatusCode::kAborted},
        {"OUT_OF_RANGE", absl::StatusCode::kOutOfRange},
        {"UNIMPLEMENTED", absl::StatusCode::kUnimplemented},
        {"INTERNAL", absl::StatusCode::kInternal},
        {"UNAVAILABLE", absl::StatusCode::kUnavailable},
        {"DATA_LOSS", absl::StatusCode::kDataLoss},
        {"UNAUTHENTICATED", absl::StatusCode::kUnauthenticated},
    }};

}  // namespace

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  return name.empty() ? "UNKNOWN" : name;
}

absl::StatusOr<absl::StatusCode> ParseCodeName(absl::string_view name) {
  for (const auto& [n, c] : kCodes) {
    if (n == name) return c;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      Quote(name), " is not a status code name; use one of ", CodeNameList()));
}

const std::string& CodeNameList() {
  static const std::string* const list = [] {
    std::vector<absl::string_view> names;
    for (const auto& [n, c] : kCodes) names.push_back(n);
    return new std::string(absl::StrJoin(names, ", "));
  }();
  return *list;
}

}  // namespace weft::common
