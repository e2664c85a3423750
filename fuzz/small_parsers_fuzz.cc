// The small parsers of text callers and operators write: durations,
// --http_allow entries, --pools, --listen addresses, references ($ref,
// $format, $secret in a call's args), W3C traceparent headers. The first
// byte chooses.

#include "fuzz/fuzz_env.h"
#include "server/common/duration.h"
#include "server/common/text.h"
#include "server/handlers/allow_list.h"
#include "server/plan/refs.h"
#include "server/weftd/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text = weft::fuzz::AsText(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      (void)weft::common::ParseJsonDuration(text);
      break;
    case 1: {
      auto allow = weft::handlers::AllowList::Parse(text);
      if (allow.ok()) (void)allow->AllowsUrlHost("example.com", 443);
      break;
    }
    case 2:
      (void)weft::plan::ParsePoolSpecs(text);
      break;
    case 3:
      (void)weft::weftd::ParseListenAddress(text);
      break;
    case 4: {
      // A reference where a call's args hold one, compiled in a plan
      // whose steps it may name.
      for (const char* key : {"$ref", "$format", "$secret"}) {
        weft::v1::PlanNode plan;
        auto* steps = plan.mutable_sequence();
        auto* first = steps->add_children();
        first->set_id("user");
        auto* call = first->mutable_call();
        call->set_handler("value");
        (*call->mutable_args()->mutable_fields())["value"].set_number_value(1);
        auto* second = steps->add_children()->mutable_call();
        second->set_handler("value");
        auto& arg = (*second->mutable_args()->mutable_fields())["value"];
        (*arg.mutable_struct_value()->mutable_fields())[key].set_string_value(
            std::string(text));
        weft::fuzz::FuzzEnv& env = weft::fuzz::Env();
        (void)weft::plan::Compile(&plan, nullptr, "plan", env.handlers,
                                  env.limits, &env.pools, nullptr,
                                  &env.secrets);
      }
      break;
    }
    default:
      (void)weft::common::TraceId(text);
  }
  return 0;
}
