// --help for weftd and weft: the usage message, then the program's own
// flags (those defined in its source folders) with their defaults, without
// the flags Abseil and gRPC define.
//
// Thread-compatible: call it from main, before threads start.

#ifndef WEFT_SERVER_COMMON_FLAG_HELP_H_
#define WEFT_SERVER_COMMON_FLAG_HELP_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"

namespace weft::common {

// Whether argv asks for help (--help, --helpfull, --helpshort, one dash or
// two) before any "--".
bool AskedForHelp(int argc, char** argv);

// The flags defined in a source file under one of `folders` (paths from
// the repository root ending in "/", like "server/"), sorted by name.
std::vector<absl::CommandLineFlag*> FlagsDefinedIn(
    const std::vector<std::string>& folders);

// Prints the program's usage message and every flag FlagsDefinedIn(folders)
// gives, with its default and help text.
void PrintHelp(std::ostream& out, const std::vector<std::string>& folders);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_FLAG_HELP_H_
