// The binary request path: bytes as gRPC hands them to weftd, parsed as a
// RunRequest or a CreateTaskRequest (the first byte chooses) with the
// nesting limits weftd uses, then compiled.

#include "fuzz/fuzz_env.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/service/orchestrator_service.h"
#include "server/service/request_parser.h"
#include "weft/v1/orchestrator.pb.h"

namespace {

template <typename Request>
void ParseAndCompile(const grpc::ByteBuffer& bytes) {
  weft::fuzz::FuzzEnv& env = weft::fuzz::Env();
  auto request = std::make_shared<Request>();
  if (!weft::service::ParseRequest(bytes, env.limits.max_plan_depth,
                                   env.limits.max_value_depth, request.get())
           .ok()) {
    return;
  }
  (void)weft::plan::Compile(weft::service::PlanOf(*request), request, "plan",
                            env.handlers, env.limits, &env.pools, nullptr,
                            &env.secrets);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  grpc::Slice slice(data + 1, size - 1);
  grpc::ByteBuffer bytes(&slice, 1);
  if (data[0] & 1) {
    ParseAndCompile<weft::v1::CreateTaskRequest>(bytes);
  } else {
    ParseAndCompile<weft::v1::RunRequest>(bytes);
  }
  return 0;
}
