// Parses Run requests from their wire bytes, so that a plan nested deeper
// than protobuf's parser accepts gets INVALID_ARGUMENT naming the limit
// instead of gRPC's bare INTERNAL.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_SERVICE_REQUEST_PARSER_H_
#define WEFT_SERVER_SERVICE_REQUEST_PARSER_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace weft::service {

// Parses `bytes` into `message` (whose type holds the plan at any depth).
// The parser allows the nesting a plan within --max_plan_depth with
// arguments within --max_value_depth takes (plan::MessageNesting). On
// failure the error is INVALID_ARGUMENT and says why: a plan over
// --max_plan_depth (with the path where it goes over), arguments nested too
// deeply, or bytes that are not a valid message. The compiler then checks
// each argument's depth exactly.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, int max_plan_depth,
                          int max_value_depth,
                          google::protobuf::Message* message);

// Serializes `message` into `out` deterministically, so that object keys in
// values come out sorted and the same answer always prints the same way.
// RESOURCE_EXHAUSTED (and nothing serialized) for a message larger than
// protobuf and gRPC can carry (2 GiB); weftd's limits keep answers far
// below that.
absl::Status SerializeResponse(const google::protobuf::Message& message,
                               grpc::ByteBuffer* out);
// The same for a message whose ByteSizeLong() the caller has just taken
// (`size`; it also cached the sizes serialization uses), so that a large
// answer is not walked twice.
absl::Status SerializeSizedResponse(const google::protobuf::Message& message,
                                    size_t size, grpc::ByteBuffer* out);

// The same on flat bytes; exposed for tests.
absl::Status ParseRequestBytes(absl::string_view bytes, int max_plan_depth,
                               int max_value_depth,
                               google::protobuf::Message* message);

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_REQUEST_PARSER_H_
