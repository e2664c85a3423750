// The JSON paths: a RunRequest as the CLI and the config file's lazy values
// read it (protobuf's JSON parser), then compiled; and the same bytes
// through weft's own JSON parser (http response bodies, the config and
// tokens files' syntax check).

#include "fuzz/fuzz_env.h"
#include "google/protobuf/util/json_util.h"
#include "server/handlers/json.h"
#include "server/service/orchestrator_service.h"
#include "weft/v1/orchestrator.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weft::fuzz::FuzzEnv& env = weft::fuzz::Env();
  const absl::string_view text = weft::fuzz::AsText(data, size);
  (void)weft::handlers::ParseJson(text);
  (void)weft::handlers::JsonDepth(text);
  // Deeper than the nesting weftd's limits allow, protobuf's JSON parser
  // recurses past what a fuzzer's stack takes; weftd never hands it more.
  if (weft::handlers::JsonDepth(text) >
      2 * env.limits.max_plan_depth + 3 * env.limits.max_value_depth) {
    return 0;
  }
  auto request = std::make_shared<weft::v1::RunRequest>();
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(text.data(), text.size()),
           request.get())
           .ok()) {
    return 0;
  }
  (void)weft::plan::Compile(weft::service::PlanOf(*request), request, "plan",
                            env.handlers, env.limits, &env.pools, nullptr,
                            &env.secrets);
  return 0;
}
