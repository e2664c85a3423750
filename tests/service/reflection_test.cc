// weft's server reflection, as grpcurl uses it: several requests on one
// stream, each answered on its own; every service listed and every symbol
// resolved; json_name on every field and comments in the descriptors.

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/service/server_fixture.h"

namespace weft::testing {
namespace {

using google::protobuf::DescriptorProto;
using google::protobuf::FileDescriptorProto;
using ::testing::UnorderedElementsAre;

// Every fully qualified name `message` defines: itself, its fields, nested
// messages and enums (and their values).
void MessageSymbols(const std::string& scope, const DescriptorProto& message,
                    std::vector<std::string>* out) {
  const std::string name = scope + "." + message.name();
  out->push_back(name);
  for (const auto& f : message.field()) out->push_back(name + "." + f.name());
  for (const auto& n : message.nested_type()) {
    if (!n.options().map_entry()) MessageSymbols(name, n, out);
  }
  for (const auto& e : message.enum_type())
    out->push_back(name + "." + e.name());
}

// Fields without a json_name, by full name.
void MissingJsonNames(const std::string& scope, const DescriptorProto& message,
                      std::vector<std::string>* out) {
  const std::string name = scope + "." + message.name();
  for (const auto& f : message.field()) {
    if (!f.has_json_name()) out->push_back(name + "." + f.name());
  }
  for (const auto& n : message.nested_type()) MissingJsonNames(name, n, out);
}

template <typename Service, typename Request, typename Response>
void ExerciseOneStream(ServerFixture& f) {
  auto stub = Service::NewStub(f.channel());
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  auto ask = [&](const Request& request) {
    Response response;
    EXPECT_TRUE(stream->Write(request));
    EXPECT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.original_request().SerializeAsString(),
              request.SerializeAsString());
    return response;
  };

  Request list;
  list.set_list_services("");
  Response listed = ask(list);
  std::vector<std::string> services;
  for (const auto& s : listed.list_services_response().service()) {
    services.push_back(s.name());
  }
  EXPECT_THAT(services, UnorderedElementsAre(
                            "weft.v1.Orchestrator", "grpc.health.v1.Health",
                            "grpc.reflection.v1.ServerReflection",
                            "grpc.reflection.v1alpha.ServerReflection"));

  // Each service's file, with everything it imports.
  std::map<std::string, FileDescriptorProto> files;
  for (const std::string& service : services) {
    Request request;
    request.set_file_containing_symbol(service);
    Response response = ask(request);
    ASSERT_TRUE(response.has_file_descriptor_response()) << service;
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      files[file.name()] = file;
    }
  }
  EXPECT_TRUE(files.count("weft/v1/plan.proto"));
  EXPECT_TRUE(files.count("google/protobuf/struct.proto"));

  // A list after file answers is a list alone (gRPC issue #18009).
  Response again = ask(list);
  EXPECT_FALSE(again.has_file_descriptor_response());
  EXPECT_EQ(again.list_services_response().service_size(), 4);

  // Every symbol of every file resolves, to the file that defines it.
  int resolved = 0;
  for (const auto& [name, file] : files) {
    const std::string scope = file.package();
    std::vector<std::string> symbols;
    for (const auto& m : file.message_type())
      MessageSymbols(scope, m, &symbols);
    for (const auto& e : file.enum_type()) {
      symbols.push_back(scope + "." + e.name());
      for (const auto& v : e.value()) symbols.push_back(scope + "." + v.name());
    }
    for (const auto& s : file.service()) {
      symbols.push_back(scope + "." + s.name());
      for (const auto& m : s.method()) {
        symbols.push_back(scope + "." + s.name() + "." + m.name());
      }
    }
    for (const std::string& symbol : symbols) {
      Request request;
      request.set_file_containing_symbol(symbol);
      Response response = ask(request);
      ASSERT_TRUE(response.has_file_descriptor_response()) << symbol;
      FileDescriptorProto first;
      ASSERT_TRUE(first.ParseFromString(
          response.file_descriptor_response().file_descriptor_proto(0)));
      EXPECT_EQ(first.name(), name) << symbol;
      ++resolved;
    }
    // json_name on every field (grpcurl prints what it says).
    std::vector<std::string> missing;
    for (const auto& m : file.message_type())
      MissingJsonNames(scope, m, &missing);
    EXPECT_THAT(missing, ::testing::IsEmpty()) << name;
  }
  EXPECT_GT(resolved, 300);
  const google::protobuf::FieldDescriptorProto* start_time = nullptr;
  for (const auto& m : files["weft/v1/outcome.proto"].message_type()) {
    for (const auto& field : m.field()) {
      if (m.name() == "NodeOutcome" && field.name() == "start_time") {
        start_time = &field;
      }
    }
  }
  ASSERT_NE(start_time, nullptr);
  EXPECT_EQ(start_time->json_name(), "startTime");

  // Comments: Run's, in the service's file (path: service 0, method 0).
  const FileDescriptorProto& api = files["weft/v1/orchestrator.proto"];
  ASSERT_EQ(api.service(0).method(0).name(), "Run");
  std::string run_comment;
  for (const auto& location : api.source_code_info().location()) {
    if (std::vector<int>(location.path().begin(), location.path().end()) ==
        std::vector<int>{6, 0, 2, 0}) {
      run_comment = location.leading_comments();
    }
  }
  EXPECT_THAT(run_comment, ::testing::HasSubstr("plan"));

  // The google.rpc details errors carry, which grpcurl resolves by type
  // name to print them.
  for (const auto& [symbol, file] :
       std::vector<std::pair<std::string, std::string>>{
           {"google.rpc.Status", "google/rpc/status.proto"},
           {"google.rpc.ErrorInfo", "google/rpc/error_details.proto"},
           {"google.rpc.BadRequest", "google/rpc/error_details.proto"},
           {"google.rpc.RetryInfo", "google/rpc/error_details.proto"},
           {"google.rpc.ResourceInfo", "google/rpc/error_details.proto"}}) {
    Request request;
    request.set_file_containing_symbol(symbol);
    Response response = ask(request);
    ASSERT_TRUE(response.has_file_descriptor_response()) << symbol;
    FileDescriptorProto first;
    ASSERT_TRUE(first.ParseFromString(
        response.file_descriptor_response().file_descriptor_proto(0)));
    EXPECT_EQ(first.name(), file) << symbol;
    std::vector<std::string> missing;
    for (const auto& m : first.message_type())
      MissingJsonNames(first.package(), m, &missing);
    EXPECT_THAT(missing, ::testing::IsEmpty()) << file;
  }

  // By file name; and what is not there is NOT_FOUND, on the same stream.
  Request by_name;
  by_name.set_file_by_filename("weft/v1/task.proto");
  Response task_file = ask(by_name);
  EXPECT_GE(task_file.file_descriptor_response().file_descriptor_proto_size(),
            3);
  Request unknown;
  unknown.set_file_containing_symbol("weft.v1.Nope");
  Response not_found = ask(unknown);
  EXPECT_EQ(not_found.error_response().error_code(),
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_FALSE(not_found.has_file_descriptor_response());
  Request extensions;
  extensions.set_all_extension_numbers_of_type("weft.v1.PlanNode");
  Response none = ask(extensions);
  EXPECT_EQ(none.all_extension_numbers_response().base_type_name(),
            "weft.v1.PlanNode");
  EXPECT_EQ(none.all_extension_numbers_response().extension_number_size(), 0);

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(ReflectionTest, V1DescribesEveryServiceOnOneStream) {
  ServerFixture f;
  ExerciseOneStream<grpc::reflection::v1::ServerReflection,
                    grpc::reflection::v1::ServerReflectionRequest,
                    grpc::reflection::v1::ServerReflectionResponse>(f);
}

TEST(ReflectionTest, V1AlphaDescribesEveryServiceOnOneStream) {
  ServerFixture f;
  ExerciseOneStream<grpc::reflection::v1alpha::ServerReflection,
                    grpc::reflection::v1alpha::ServerReflectionRequest,
                    grpc::reflection::v1alpha::ServerReflectionResponse>(f);
}

}  // namespace
}  // namespace weft::testing
