#include "client/cli.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weft::cli {

int CallFailed(const absl::Status& status) {
  std::cerr << "weft: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return kExitCallFailed;
}

int Usage(absl::string_view message) {
  std::cerr << "weft: " << message << "\n\n"
            << absl::ProgramUsageMessage() << "\n";
  return kExitUsage;
}

absl::StatusOr<std::string> ReadInput(const std::string& file) {
  std::stringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::ifstream in(file);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read \"", file, "\""));
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::vector<std::string>> TakeRepeatedFlag(
    std::vector<std::string>& args, absl::string_view name) {
  const std::string bare = absl::StrCat("--", name);
  const std::string with_value = absl::StrCat(bare, "=");
  std::vector<std::string> values;
  std::vector<std::string> rest;
  size_t i = 0;
  if (!args.empty()) rest.push_back(args[i++]);  // The program's name.
  for (; i < args.size() && args[i] != "--"; ++i) {
    const std::string& a = args[i];
    if (a == bare) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(bare, " needs a value"));
      }
      values.push_back(args[++i]);
    } else if (absl::StartsWith(a, with_value)) {
      values.push_back(a.substr(with_value.size()));
    } else {
      rest.push_back(a);
    }
  }
  for (; i < args.size(); ++i) rest.push_back(args[i]);
  args = std::move(rest);
  return values;
}

}  // namespace weft::cli
