#include "server/common/serialize.h"

#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace weft::common {

std::string SerializeDeterministic(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&out);
  }
  return bytes;
}

void SerializeDeterministicWithCachedSizes(
    const google::protobuf::Message& message,
    google::protobuf::io::ZeroCopyOutputStream* out) {
  google::protobuf::io::CodedOutputStream stream(out);
  stream.SetSerializationDeterministic(true);
  message.SerializeWithCachedSizes(&stream);
}

std::string ToCompactJson(const google::protobuf::Message& message) {
  // The JSON printer keeps the wire order, so print from deterministic bytes.
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          "type.googleapis.com",
          google::protobuf::DescriptorPool::generated_pool());
  std::string json;
  (void)google::protobuf::util::BinaryToJsonString(
      resolver, "type.googleapis.com/" + message.GetDescriptor()->full_name(),
      SerializeDeterministic(message), &json);
  return json;
}

}  // namespace weft::common
