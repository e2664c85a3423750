// The files weftd reads: the config file, the --auth_tokens file (then the
// principals checked and a call authenticated against them) and the
// --secrets file. The first byte chooses.

#include "fuzz/fuzz_env.h"
#include "server/auth/principals.h"
#include "server/weftd/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text = weft::fuzz::AsText(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto config = weft::weftd::ParseConfig(text);
      if (config.ok()) (void)weft::weftd::ConfigFlags(*config);
      break;
    }
    case 1: {
      weft::v1::AuthTokens tokens;
      if (!weft::weftd::ParseJsonFile(text, &tokens).ok()) break;
      auto table = weft::auth::PrincipalTable::Create(tokens);
      if (!table.ok()) break;
      for (const auto& p : tokens.principals()) {
        (void)(*table)->Authenticate("Bearer " + p.name(),
                                     p.certificate_subject());
      }
      break;
    }
    default: {
      weft::v1::SecretsFile file;
      if (!weft::weftd::ParseJsonFile(text, &file).ok()) break;
      (void)weft::plan::SecretTable::Create(std::map<std::string, std::string>(
          file.secrets().begin(), file.secrets().end()));
    }
  }
  return 0;
}
