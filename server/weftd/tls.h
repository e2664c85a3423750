// TLS on weftd's listener: the certificate chain and key (--tls_cert,
// --tls_key) and, for mutual TLS, the CAs client certificates must chain to
// (--tls_client_ca).
//
// weftd reads the files itself, at start and on Reload() (SIGHUP), checks
// them (each parses; the key matches the certificate), and hands gRPC a
// copy in memory (a memfd) that gRPC's file watcher picks up within a
// second. So rotating a certificate is: replace the files, send SIGHUP; a
// file that is missing or wrong at a reload is logged and the ones in use
// stay, and a half-written file is never served.
//
//   absl::StatusOr<std::unique_ptr<TlsFiles>> tls = TlsFiles::Open(paths);
//   options.credentials = (*tls)->Credentials();
//   ...  // on SIGHUP:
//   if (absl::Status s = (*tls)->Reload(); !s.ok()) log(s.message());
//
// Thread-compatible: Open and Reload from one thread (weftd's main).

#ifndef WEFT_SERVER_WEFTD_TLS_H_
#define WEFT_SERVER_WEFTD_TLS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace grpc::experimental {
class FileWatcherCertificateProvider;
}  // namespace grpc::experimental

namespace weft::weftd {

struct TlsPaths {
  std::string cert;       // --tls_cert: PEM certificate chain, leaf first.
  std::string key;        // --tls_key: PEM private key.
  std::string client_ca;  // --tls_client_ca: PEM CAs; empty: no mutual TLS.
};

class TlsFiles {
 public:
  // Reads and checks the files. Errors (INVALID_ARGUMENT) name the flag
  // and the file: "--tls_key /etc/weft/key.pem: cannot read the file".
  static absl::StatusOr<std::unique_ptr<TlsFiles>> Open(TlsPaths paths);
  ~TlsFiles();
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;

  // Reads the files again. On an error nothing changes: the files read
  // before are still served.
  absl::Status Reload();

  // For the listener; the same credentials for the life of the server.
  std::shared_ptr<grpc::ServerCredentials> Credentials() const;

  bool mutual() const { return !paths_.client_ca.empty(); }

 private:
  explicit TlsFiles(TlsPaths paths) : paths_(std::move(paths)) {}

  TlsPaths paths_;
  // The copies gRPC reads, as /proc/self/fd/N.
  int key_fd_ = -1;
  int cert_fd_ = -1;
  int ca_fd_ = -1;
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
};

}  // namespace weft::weftd

#endif  // WEFT_SERVER_WEFTD_TLS_H_
