// A bare gRPC echo server: "/bench.Echo/Echo" returns the request bytes it
// received. It is the floor for per-request cost in `make bench`: same gRPC,
// same machine, same bytes as the weft request, none of weft's work.
//
//   build/bench/echo_server --listen=127.0.0.1:0   # prints "listening on ..."
//   build/bench/echo_server --tls_cert=server.pem --tls_key=server.key
//       # the same over TLS: the floor for a TLS call

#include <signal.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/impl/codegen/service_type.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "Address to serve on.");
ABSL_FLAG(int, max_message_bytes, 256 << 20, "Largest message accepted.");
ABSL_FLAG(std::string, tls_cert, "",
          "Serve TLS with this certificate chain (PEM file); needs "
          "--tls_key. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key, "", "The private key of --tls_cert.");

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// A unary method, "/bench.Echo/Echo", that answers with the request's own
// bytes. Registered the way generated code registers a raw callback method
// (there is no .proto for it: it never parses the bytes), so it costs what a
// unary gRPC call costs and nothing more.
class EchoService final : public grpc::Service {
 public:
  EchoService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/bench.Echo/Echo", grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodRawCallback(
        0, new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer,
                                                    grpc::ByteBuffer>(
               [](grpc::CallbackServerContext* context,
                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
                 *response = *request;
                 grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
                 reactor->Finish(grpc::Status::OK);
                 return reactor;
               }));
  }
};

}  // namespace

int main(int argc, char** argv) {
  // As weftd does: no lock-order graph for gRPC's absl::Mutex (Debian's
  // Abseil is built without NDEBUG).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    std::string cert;
    std::string key;
    if (!ReadFile(absl::GetFlag(FLAGS_tls_cert), &cert) ||
        !ReadFile(absl::GetFlag(FLAGS_tls_key), &key)) {
      std::cerr << "echo_server: cannot read --tls_cert or --tls_key\n";
      return 2;
    }
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(options);
  }
  builder.AddListeningPort(listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "echo_server: cannot listen on " << listen << "\n";
    return 2;
  }
  std::cout << "listening on " << listen.substr(0, listen.rfind(':')) << ":"
            << port << std::endl;
  int signal = 0;
  sigwait(&stop, &signal);
  server->Shutdown();
  return 0;
}
