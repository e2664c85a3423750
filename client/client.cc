#include "client/client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace weft::client {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

void SetTimeout(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
}

// Re-indents compact JSON by two spaces per level.
std::string Indent(const std::string& compact) {
  std::string out;
  out.reserve(compact.size() * 2);
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out += '\n';
    out.append(2 * depth, ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < compact.size()) {
        out += compact[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[':
        // Keep empty objects and lists on one line.
        if (i + 1 < compact.size() &&
            (compact[i + 1] == '}' || compact[i + 1] == ']')) {
          out += c;
          out += compact[++i];
          break;
        }
        out += c;
        ++depth;
        newline();
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<Client> Client::Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // Full outcomes of big plans.
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args);
  return std::make_unique<Client>(weft::v1::Orchestrator::NewStub(channel),
                                  grpc::health::v1::Health::NewStub(channel));
}

Client::Client(
    std::unique_ptr<weft::v1::Orchestrator::StubInterface> orchestrator,
    std::unique_ptr<grpc::health::v1::Health::StubInterface> health)
    : orchestrator_(std::move(orchestrator)), health_(std::move(health)) {}

absl::StatusOr<weft::v1::RunResponse> Client::Run(
    const weft::v1::RunRequest& request, absl::Duration timeout) const {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  weft::v1::RunResponse response;
  grpc::Status s = orchestrator_->Run(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<weft::v1::ListHandlersResponse> Client::ListHandlers(
    absl::Duration timeout) const {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  weft::v1::ListHandlersResponse response;
  grpc::Status s = orchestrator_->ListHandlers(
      &context, weft::v1::ListHandlersRequest(), &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
Client::Check(const std::string& service, absl::Duration timeout) const {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = health_->Check(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response.status();
}

weft::v1::PlanNode Call(absl::string_view handler,
                        google::protobuf::Struct args) {
  weft::v1::PlanNode node;
  node.mutable_call()->set_handler(std::string(handler));
  *node.mutable_call()->mutable_args() = std::move(args);
  return node;
}

weft::v1::PlanNode Parallel(std::vector<weft::v1::PlanNode> children) {
  weft::v1::PlanNode node;
  for (weft::v1::PlanNode& child : children) {
    *node.mutable_parallel()->add_children() = std::move(child);
  }
  return node;
}

weft::v1::PlanNode Id(absl::string_view id, weft::v1::PlanNode node) {
  node.set_id(std::string(id));
  return node;
}

weft::v1::PlanNode Timeout(absl::Duration timeout, weft::v1::PlanNode node) {
  const int64_t nanos = absl::ToInt64Nanoseconds(timeout);
  node.mutable_timeout()->set_seconds(nanos / 1'000'000'000);
  node.mutable_timeout()->set_nanos(
      static_cast<int32_t>(nanos % 1'000'000'000));
  return node;
}

absl::StatusOr<google::protobuf::Struct> ArgsFromJson(absl::string_view json) {
  google::protobuf::Struct args;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &args);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("args are not a JSON object: ", s.message().ToString()));
  }
  return args;
}

absl::StatusOr<weft::v1::RunRequest> ParseRunRequestJson(
    absl::string_view json) {
  // A RunRequest has a "plan" field; a plan node never does.
  google::protobuf::Struct probe;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &probe);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the input is not a JSON object: ", s.message().ToString()));
  }
  weft::v1::RunRequest request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (probe.fields().contains("plan")) {
    s = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(json.data(), json.size()), &request,
        options);
  } else {
    s = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(json.data(), json.size()),
        request.mutable_plan(), options);
  }
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the input is not a weft.v1.RunRequest or weft.v1.PlanNode: ",
        s.message().ToString()));
  }
  return request;
}

std::string ToCompactJson(const google::protobuf::Message& message) {
  // Deterministic serialization sorts map keys; the JSON printer keeps the
  // wire order.
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&out);
  }
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          "type.googleapis.com",
          google::protobuf::DescriptorPool::generated_pool());
  std::string json;
  (void)google::protobuf::util::BinaryToJsonString(
      resolver, "type.googleapis.com/" + message.GetDescriptor()->full_name(),
      binary, &json);
  return json;
}

std::string ToJson(const google::protobuf::Message& message) {
  return Indent(ToCompactJson(message));
}

}  // namespace weft::client
