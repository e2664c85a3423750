// Canonical gRPC status code names ("UNAVAILABLE"), as plans and outcomes
// spell them.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_STATUS_CODES_H_
#define WEFT_SERVER_COMMON_STATUS_CODES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::common {

// The canonical name of `code`, e.g. "DEADLINE_EXCEEDED".
std::string CodeName(absl::StatusCode code);

// Parses a canonical name, exactly as CodeName() spells it. The error names
// the valid choices.
absl::StatusOr<absl::StatusCode> ParseCodeName(absl::string_view name);

// Every name ParseCodeName() accepts, comma-separated, for messages.
const std::string& CodeNameList();

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_STATUS_CODES_H_
