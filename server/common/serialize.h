// Deterministic serialization: the same message gives the same bytes (map
// entries sorted by key), for fingerprints, comparisons, and answers that
// must not change from one call to the next.
//
// Thread-safe: these functions share no state.

#ifndef WEFT_SERVER_COMMON_SERIALIZE_H_
#define WEFT_SERVER_COMMON_SERIALIZE_H_

#include <string>

namespace google::protobuf {
class Message;
namespace io {
class ZeroCopyOutputStream;
}  // namespace io
}  // namespace google::protobuf

namespace weft::common {

// `message` in the binary wire format, map entries in key order.
std::string SerializeDeterministic(const google::protobuf::Message& message);

// The same, written to `out`, using the sizes `message.ByteSizeLong()` last
// cached (call it first).
void SerializeDeterministicWithCachedSizes(
    const google::protobuf::Message& message,
    google::protobuf::io::ZeroCopyOutputStream* out);

// `message` as compact JSON (proto3 JSON mapping, lowerCamelCase names),
// map entries in key order, so two equal messages print the same text.
std::string ToCompactJson(const google::protobuf::Message& message);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_SERIALIZE_H_
