#include "client/cli.h"

#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/error_details.h"
#include "server/common/errors.h"

namespace weft::cli {

int CallFailed(const absl::Status& status) {
  std::cerr << "weft: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  if (std::optional<google::rpc::ErrorInfo> info = common::GetErrorInfo(status);
      info.has_value()) {
    // Sorted, so the line reads the same every time.
    std::map<std::string, std::string> metadata(info->metadata().begin(),
                                                info->metadata().end());
    std::cerr << "  reason: " << info->reason();
    const char* sep = " (";
    for (const auto& [key, value] : metadata) {
      std::cerr << sep << key << " " << value;
      sep = ", ";
    }
    std::cerr << (metadata.empty() ? "" : ")") << "\n";
  }
  if (std::optional<google::rpc::BadRequest> bad =
          common::GetBadRequest(status);
      bad.has_value()) {
    for (const auto& v : bad->field_violations()) {
      // The message says what is wrong with a lone field already.
      std::cerr << "  field: " << v.field();
      if (!absl::StrContains(status.message(), v.description())) {
        std::cerr << ": " << v.description();
      }
      std::cerr << "\n";
    }
  }
  if (std::optional<google::rpc::ResourceInfo> resource =
          common::GetResourceInfo(status);
      resource.has_value()) {
    std::cerr << "  resource: " << resource->resource_type() << " "
              << resource->resource_name() << "\n";
  }
  if (const absl::Duration delay = common::RetryDelay(status);
      delay != absl::InfiniteDuration()) {
    std::cerr << "  retry after: " << absl::FormatDuration(delay) << "\n";
  }
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
