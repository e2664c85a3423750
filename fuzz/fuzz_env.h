// What the fuzz targets share: the handlers, pools, limits and secrets a
// plan compiles against, as weftd's defaults set them up. Made once.

#ifndef WEFT_FUZZ_FUZZ_ENV_H_
#define WEFT_FUZZ_FUZZ_ENV_H_

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "server/handlers/registry.h"
#include "server/plan/compiler.h"
#include "server/plan/pools.h"
#include "server/plan/secrets.h"

namespace weft::fuzz {

struct FuzzEnv {
  FuzzEnv() {
    // Protobuf logs every string that is not UTF-8; weftd counts and
    // rate-limits those lines, the fuzzer only needs them gone.
    google::protobuf::SetLogHandler(nullptr);
    if (!handlers::RegisterBuiltinHandlers(handlers).ok()) std::abort();
  }
  handlers::HandlerRegistry handlers;
  plan::PoolSet pools{{{"default", 1, 4}}};
  plan::Limits limits;
  plan::Secrets secrets{
      *plan::SecretTable::Create({{"api_key", "fuzz-secret-value"}})};
};

inline FuzzEnv& Env() {
  static FuzzEnv* env = new FuzzEnv();
  return *env;
}

inline absl::string_view AsText(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace weft::fuzz

#endif  // WEFT_FUZZ_FUZZ_ENV_H_
