// What the `weft` commands share: exit codes, reading input, reporting
// errors; and --help, which weftd prints the same way.

#ifndef WEFT_CLIENT_CLI_H_
#define WEFT_CLIENT_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::cli {

// Exit codes of every command.
inline constexpr int kExitOk = 0;
// The plan ran (or the task ended) and did not succeed, or the server is not
// serving.
inline constexpr int kExitNotSucceeded = 1;
// The call failed: the server refused it, could not be reached, or the
// deadline passed.
inline constexpr int kExitCallFailed = 2;
// Bad usage or unreadable input.
inline constexpr int kExitUsage = 64;

// Prints "weft: CODE: message" to stderr, then what the error's details
// say, one per line: the reason and its metadata, each field at fault, the
// resource, the retry delay. Returns kExitCallFailed.
int CallFailed(const absl::Status& status);

// Prints the message and the program's usage message to stderr; returns
// kExitUsage.
int Usage(absl::string_view message);

// The text of FILE, or of stdin for "-".
absl::StatusOr<std::string> ReadInput(const std::string& file);

// Removes every "--NAME VALUE" and "--NAME=VALUE" from `args` (from index 1
// on, before a "--") and returns the values in order: flags that may be
// given more than once, which absl flags do not support.
absl::StatusOr<std::vector<std::string>> TakeRepeatedFlag(
    std::vector<std::string>& args, absl::string_view name);

}  // namespace weft::cli

#endif  // WEFT_CLIENT_CLI_H_
