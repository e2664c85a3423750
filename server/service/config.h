// weftd's configuration file: a weft.v1.ServerConfig in JSON, read by the
// same protobuf parser as requests, so a typo in a field name or a bad value
// is an error naming it.
//
//   absl::StatusOr<weft::v1::ServerConfig> config = LoadConfig("weftd.json");
//   for (const auto& [flag, value] : ConfigFlags(*config)) ...  // set flags
//   server.DeclareLazyValues(*config);

#ifndef WEFT_SERVER_SERVICE_CONFIG_H_
#define WEFT_SERVER_SERVICE_CONFIG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weft/v1/config.pb.h"

namespace weft::service {

// Reads and parses `path`. Errors (INVALID_ARGUMENT, or NOT_FOUND for a file
// that cannot be read) start with the path.
absl::StatusOr<weft::v1::ServerConfig> LoadConfig(const std::string& path);

// Parses a ServerConfig from JSON; unknown fields are errors.
absl::StatusOr<weft::v1::ServerConfig> ParseConfig(absl::string_view json);

// The flags the config sets, as (flag name, value in the flag's syntax), in
// field order: every field that is present except lazy_values; pools become
// the --pools text "name=threads:queue,...".
std::vector<std::pair<std::string, std::string>> ConfigFlags(
    const weft::v1::ServerConfig& config);

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_CONFIG_H_
