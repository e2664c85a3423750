#include "server/common/flag_help.h"

#include <algorithm>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"

namespace weft::common {

bool AskedForHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-help" || arg == "-h" ||
        arg == "--helpfull" || arg == "-helpfull" || arg == "--helpshort" ||
        arg == "-helpshort") {
      return true;
    }
  }
  return false;
}

std::vector<absl::CommandLineFlag*> FlagsDefinedIn(
    const std::vector<std::string>& folders) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    // Filename() is the path the compiler was given: absolute, or relative
    // to the build; either way it holds "/server/..." or starts with it.
    const std::string file = "/" + flag->Filename();
    for (const std::string& folder : folders) {
      if (absl::StrContains(file, "/" + folder)) {
        flags.push_back(flag);
        break;
      }
    }
  }
  std::sort(flags.begin(), flags.end(),
            [](absl::CommandLineFlag* a, absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  return flags;
}

void PrintHelp(std::ostream& out, const std::vector<std::string>& folders) {
  out << absl::ProgramUsageMessage() << "\n\nFlags:\n";
  for (absl::CommandLineFlag* flag : FlagsDefinedIn(folders)) {
    out << "  --" << flag->Name();
    const std::string value = flag->DefaultValue();
    if (!value.empty()) out << " (default: " << value << ")";
    out << "\n      " << flag->Help() << "\n";
  }
}

}  // namespace weft::common
