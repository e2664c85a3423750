// weftd's configuration file: a weft.v1.ServerConfig in JSON, read by the
// same protobuf parser as requests, so a typo in a field name or a bad value
// is an error naming it.
//
//   absl::StatusOr<weft::v1::ServerConfig> config = LoadConfig("weftd.json");
//   for (const auto& [flag, value] : ConfigFlags(*config)) ...  // set flags
//   server.DeclareLazyValues(*config);

#ifndef WEFT_SERVER_WEFTD_CONFIG_H_
#define WEFT_SERVER_WEFTD_CONFIG_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "server/auth/principals.h"
#include "server/plan/secrets.h"
#include "weft/v1/config.pb.h"

namespace weft::weftd {

// Reads and parses `path`. Errors (INVALID_ARGUMENT, or NOT_FOUND for a file
// that cannot be read) start with the path.
absl::StatusOr<weft::v1::ServerConfig> LoadConfig(const std::string& path);

// Parses a ServerConfig from JSON; unknown fields are errors. A UTF-8 byte
// order mark at the start is skipped. Errors name the field ("maxPlanNodes:
// ...") or the place ("line 3, column 7: ...") and never repeat more of the
// file than a short quote.
absl::StatusOr<weft::v1::ServerConfig> ParseConfig(absl::string_view json);

// Parses JSON of `message` (the config file, the --auth_tokens file) the
// way ParseConfig does; errors name the field or the place.
absl::Status ParseJsonFile(absl::string_view json,
                           google::protobuf::Message* message);

// Reads a file of at most 64 MiB (`what` names it in the error: "a config
// file"). Errors start with the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view what);

// Reads and parses the --auth_tokens file. Errors start with the path; the
// principals are not checked here (auth::PrincipalTable::Create does).
absl::StatusOr<weft::v1::AuthTokens> LoadAuthTokens(const std::string& path);

// LoadAuthTokens, then the principals checked (auth::PrincipalTable):
// errors start with the path and name the field ("PATH:
// principals[0].role: ...").
absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> LoadPrincipals(
    const std::string& path);

// Reads the --secrets file (a weft.v1.SecretsFile in JSON) and checks its
// entries. Errors start with the path and name the entry, never a value.
absl::StatusOr<std::shared_ptr<const plan::SecretTable>> LoadSecrets(
    const std::string& path);

// The config file's name for a flag's field, as JSON writes it
// ("event_loop_threads" -> "eventLoopThreads"); empty if it has none.
std::string ConfigFieldName(absl::string_view flag);

// Checks a numeric or duration flag's value (in the flag's own syntax)
// against its range; OK for flags without one. The error says the range:
// "must be from 1 to 64, got 100000".
absl::Status CheckFlagValue(absl::string_view flag, absl::string_view value);

// Parses --listen: "host:port" with a port from 0 to 65535 (0: a free one),
// where host is a name, an IPv4 address or an IPv6 address in brackets, or
// "unix:PATH". Returns it unchanged, or INVALID_ARGUMENT saying what is
// wrong.
absl::StatusOr<std::string> ParseListenAddress(absl::string_view address);

// The flags the config sets, as (flag name, value in the flag's syntax), in
// field order: every field that is present except lazy_values; pools become
// the --pools text "name=threads:queue,...".
std::vector<std::pair<std::string, std::string>> ConfigFlags(
    const weft::v1::ServerConfig& config);

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_CONFIG_H_
