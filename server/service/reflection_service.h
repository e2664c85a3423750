// weft's own gRPC server reflection, grpc.reflection.v1 and v1alpha, so
// that grpcurl and other reflection clients see weft's API as its .proto
// files say: every field with its json_name (grpcurl prints camelCase, as
// the README shows), every element with its comments, and each request on
// a stream answered on its own.
//
// Debian's gRPC 1.51 reflection (grpc++_reflection) builds its answers from
// the generated descriptor pool, which drops json_name and comments, and
// reuses one response message on a stream, so that after a file request a
// `list` is answered with the file's leftovers (gRPC issue #18009). This one
// answers from the descriptor set protoc wrote at build time
// (proto/descriptor_set.h), with a fresh response each time.
//
// Thread-safety: the index is immutable once built; each stream is served
// by its own reactor.

#ifndef WEFT_SERVER_SERVICE_REFLECTION_SERVICE_H_
#define WEFT_SERVER_SERVICE_REFLECTION_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace weft::service {

// The files a reflection service can describe, and the services it lists.
class ReflectionIndex {
 public:
  // `descriptor_set`: a serialized FileDescriptorSet whose files come in
  // dependency order. `services`: fully qualified names, each defined in it.
  static absl::StatusOr<std::unique_ptr<const ReflectionIndex>> Create(
      absl::string_view descriptor_set, std::vector<std::string> services);

  const std::vector<std::string>& services() const { return services_; }

  // The serialized FileDescriptorProtos a client needs for the file named
  // `name`: it first, then every file it imports, directly or not.
  // NOT_FOUND when there is no such file.
  absl::StatusOr<std::vector<const std::string*>> FileByName(
      absl::string_view name) const;
  // The same for the file defining `symbol` (a service, method, message,
  // field, enum, enum value or extension, fully qualified).
  absl::StatusOr<std::vector<const std::string*>> FileContainingSymbol(
      absl::string_view symbol) const;
  // Whether `name` is a message type of these files.
  bool HasMessage(absl::string_view name) const;

 private:
  ReflectionIndex() = default;
  std::vector<const std::string*> WithImports(
      const google::protobuf::FileDescriptor* file) const;

  google::protobuf::DescriptorPool pool_;
  absl::flat_hash_map<std::string, std::string> serialized_;
  std::vector<std::string> services_;
};

// grpc.reflection.v1.ServerReflection over `index`, which must outlive it.
class ReflectionV1Service final
    : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  explicit ReflectionV1Service(const ReflectionIndex* index) : index_(index) {}
  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const ReflectionIndex* const index_;
};

// The same protocol under its older name, which grpcurl 1.8 and Debian's
// gRPC clients ask for.
class ReflectionV1AlphaService final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  explicit ReflectionV1AlphaService(const ReflectionIndex* index)
      : index_(index) {}
  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const ReflectionIndex* const index_;
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_REFLECTION_SERVICE_H_
