#include "server/service/reflection_service.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "server/common/text.h"
#include "server/service/reactor.h"

namespace weft::service {

absl::StatusOr<std::unique_ptr<const ReflectionIndex>> ReflectionIndex::Create(
    absl::string_view descriptor_set, std::vector<std::string> services) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(descriptor_set.data(),
                          static_cast<int>(descriptor_set.size()))) {
    return absl::InternalError("the embedded descriptor set does not parse");
  }
  auto index = std::unique_ptr<ReflectionIndex>(new ReflectionIndex());
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    if (index->pool_.BuildFile(file) == nullptr) {
      return absl::InternalError(absl::StrCat("the embedded descriptor of ",
                                              file.name(), " does not build"));
    }
    index->serialized_[file.name()] = file.SerializeAsString();
  }
  for (const std::string& service : services) {
    if (index->pool_.FindServiceByName(service) == nullptr) {
      return absl::InternalError(
          absl::StrCat("no descriptor for the service ", service));
    }
  }
  index->services_ = std::move(services);
  return std::unique_ptr<const ReflectionIndex>(std::move(index));
}

std::vector<const std::string*> ReflectionIndex::WithImports(
    const google::protobuf::FileDescriptor* file) const {
  std::vector<const std::string*> out;
  absl::flat_hash_set<const google::protobuf::FileDescriptor*> seen = {file};
  std::vector<const google::protobuf::FileDescriptor*> todo = {file};
  while (!todo.empty()) {
    const google::protobuf::FileDescriptor* f = todo.back();
    todo.pop_back();
    out.push_back(&serialized_.at(f->name()));
    for (int i = 0; i < f->dependency_count(); ++i) {
      if (seen.insert(f->dependency(i)).second)
        todo.push_back(f->dependency(i));
    }
  }
  return out;
}

absl::StatusOr<std::vector<const std::string*>> ReflectionIndex::FileByName(
    absl::string_view name) const {
  const google::protobuf::FileDescriptor* file =
      pool_.FindFileByName(std::string(name));
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no file named ", common::Quote(name)));
  }
  return WithImports(file);
}

absl::StatusOr<std::vector<const std::string*>>
ReflectionIndex::FileContainingSymbol(absl::string_view symbol) const {
  const google::protobuf::FileDescriptor* file =
      pool_.FindFileContainingSymbol(std::string(symbol));
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no symbol named ", common::Quote(symbol)));
  }
  return WithImports(file);
}

bool ReflectionIndex::HasMessage(absl::string_view name) const {
  return pool_.FindMessageTypeByName(std::string(name)) != nullptr;
}

namespace {

// Answers one request; both protocol versions have the same messages.
template <typename Request, typename Response>
void Answer(const ReflectionIndex& index, const Request& request,
            Response* response) {
  response->set_valid_host(request.host());
  *response->mutable_original_request() = request;
  absl::StatusOr<std::vector<const std::string*>> files;
  switch (request.message_request_case()) {
    case Request::kFileByFilename:
      files = index.FileByName(request.file_by_filename());
      break;
    case Request::kFileContainingSymbol:
      files = index.FileContainingSymbol(request.file_containing_symbol());
      break;
    case Request::kFileContainingExtension:
      files = absl::NotFoundError(absl::StrCat(
          "no extension ",
          request.file_containing_extension().extension_number(), " of ",
          common::Quote(request.file_containing_extension().containing_type()),
          ": weft's API defines no extensions"));
      break;
    case Request::kAllExtensionNumbersOfType:
      if (!index.HasMessage(request.all_extension_numbers_of_type())) {
        files = absl::NotFoundError(absl::StrCat(
            "no message type named ",
            common::Quote(request.all_extension_numbers_of_type())));
        break;
      }
      // Known, and without extensions.
      response->mutable_all_extension_numbers_response()->set_base_type_name(
          request.all_extension_numbers_of_type());
      return;
    case Request::kListServices:
      for (const std::string& name : index.services()) {
        response->mutable_list_services_response()->add_service()->set_name(
            name);
      }
      return;
    default:
      files = absl::InvalidArgumentError(
          "the request names nothing to look up: set one of file_by_filename, "
          "file_containing_symbol, file_containing_extension, "
          "all_extension_numbers_of_type, list_services");
      break;
  }
  if (!files.ok()) {
    response->mutable_error_response()->set_error_code(
        static_cast<int>(files.status().code()));
    response->mutable_error_response()->set_error_message(
        std::string(files.status().message()));
    return;
  }
  auto* out = response->mutable_file_descriptor_response();
  for (const std::string* f : *files) out->add_file_descriptor_proto(*f);
}

// One stream: read a request, answer it with a response of its own, read the
// next; done when the client closes its side.
template <typename Request, typename Response>
class ReflectionReactor final : public BidiReactor<Request, Response> {
 public:
  explicit ReflectionReactor(const ReflectionIndex* index) : index_(index) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    CalledByGrpc(this);
    if (!ok) {  // The client is done (or gone).
      this->Finish(grpc::Status::OK);
      return;
    }
    response_ = Response();  // Nothing of the last answer carries over.
    Answer(*index_, request_, &response_);
    this->StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    CalledByGrpc(this);
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                "the reflection stream broke"));
      return;
    }
    request_ = Request();
    this->StartRead(&request_);
  }

  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

 private:
  const ReflectionIndex* const index_;
  Request request_;
  Response response_;
};

}  // namespace

grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                        grpc::reflection::v1::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new ReflectionReactor<grpc::reflection::v1::ServerReflectionRequest,
                               grpc::reflection::v1::ServerReflectionResponse>(
      index_);
}

grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                        grpc::reflection::v1alpha::ServerReflectionResponse>*
ReflectionV1AlphaService::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new ReflectionReactor<
      grpc::reflection::v1alpha::ServerReflectionRequest,
      grpc::reflection::v1alpha::ServerReflectionResponse>(index_);
}

}  // namespace weft::service
