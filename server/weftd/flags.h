// weftd's flags, and where their values come from: the --config file, then
// WEFT_<FLAG> variables, then the command line (each overrides the one
// before). Every flag defined under server/ is a weftd flag and has its
// WEFT_* variable, whichever file defines it.
//
// Thread-compatible: call these from main, before threads start.

#ifndef WEFT_SERVER_WEFTD_FLAGS_H_
#define WEFT_SERVER_WEFTD_FLAGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/postgres_task_store.h"
#include "server/store/sqlite_task_store.h"
#include "server/weftd/server.h"
#include "server/weftd/tls.h"
#include "weft/v1/config.pb.h"

namespace weft::weftd {

// Every weftd flag (defined in a file under server/), sorted by name.
std::vector<absl::CommandLineFlag*> WeftdFlags();

// The environment variable that sets `flag`: WEFT_ and its name in capitals
// ("max_plan_nodes" -> "WEFT_MAX_PLAN_NODES").
std::string EnvironmentVariable(absl::string_view flag);

// How the flags got their values, for messages that name where a bad value
// came from: "--name", "WEFT_NAME (--name)" or "fieldName in FILE (--name)".
class FlagSources {
 public:
  std::string Describe(const std::string& flag) const;

  // The --config path, read before the flags are parsed: --config on the
  // command line, else WEFT_CONFIG, else "".
  static std::string ConfigPath(int argc, char** argv);

  // Sets the flags the config file at `path` gives; returns the file.
  absl::StatusOr<weft::v1::ServerConfig> ApplyConfig(const std::string& path);

  // Sets flags from WEFT_* variables (`getenv` reads them).
  absl::Status ApplyEnvironment(const char* (*getenv)(const char*));

  // Every flag's current value; call before parsing the command line, and
  // give the result to Check after.
  static std::map<std::string, std::string> Snapshot();

  // Every numeric and duration flag within its range; a flag whose value
  // differs from `before` was set on the command line.
  absl::Status Check(const std::map<std::string, std::string>& before);

 private:
  std::map<std::string, std::string> sources_;
};

// What the flags say: the server's options, and what main needs besides.
struct Settings {
  ServerOptions server;
  absl::Duration shutdown_grace;
  bool malloc_tuning = true;
  std::string pools_text;  // --pools as given, for the start-up line
  // --store: the SQLite file, or empty for memory or PostgreSQL.
  std::string store_path;
  // --store: the PostgreSQL conninfo (postgres://...), or empty.
  std::string store_postgres;
  store::SqliteOptions::Sync store_sync = store::SqliteOptions::Sync::kFull;
  // --replicas, --replica_id, --lease_duration, --store_pool_size.
  store::PostgresOptions postgres;
  // --tls_cert, --tls_key, --tls_client_ca; all empty for plaintext.
  TlsPaths tls;
  // --auth_tokens: the callers' file, or empty for no auth.
  std::string auth_tokens;
  // --secrets: the secrets' file, or empty for none.
  std::string secrets;
  // --access_log: "-" for stderr, a file, or empty for none.
  std::string access_log;
};

// Settings from the flags' current values (after Check). An error names the
// flag at fault as `sources` describes it.
absl::StatusOr<Settings> SettingsFromFlags(const FlagSources& sources,
                                           absl::string_view version);

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_FLAGS_H_
