// The descriptor set of every .proto file weftd serves (weft.v1, the
// grpc.health.v1 and grpc.reflection protocols, and what they import), as
// protoc writes it with --include_imports --include_source_info: each field
// with its json_name, each element with its comments. Embedded at build
// time (proto/CMakeLists.txt); weft's reflection service answers from it.

#ifndef WEFT_PROTO_DESCRIPTOR_SET_H_
#define WEFT_PROTO_DESCRIPTOR_SET_H_

#include <string_view>

namespace weft::proto {

// A serialized google.protobuf.FileDescriptorSet, files in dependency
// order.
std::string_view DescriptorSet();

}  // namespace weft::proto

#endif  // WEFT_PROTO_DESCRIPTOR_SET_H_
