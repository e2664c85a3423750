#include "server/weftd/tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "server/weftd/config.h"

namespace weft::weftd {
namespace {

// How often gRPC's watcher reads the in-memory copies: a reload is served
// within this long.
constexpr unsigned kRefreshSeconds = 1;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate in `pem`, or null.
std::unique_ptr<X509, X509Free> FirstCertificate(const std::string& pem) {
  auto bio = Bio(pem);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

std::string Where(absl::string_view flag, const std::string& path) {
  return absl::StrCat("--", flag, " ", path);
}

absl::StatusOr<std::string> Read(absl::string_view flag,
                                 const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, "a PEM file");
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", text.status().message()));
  }
  return text;
}

// Checks the PEM texts: `cert` holds a certificate, `key` a private key
// matching it, `ca` (if given) a certificate.
absl::Status Check(const std::string& cert, const std::string& key,
                   const std::string& ca, const TlsPaths& paths) {
  std::unique_ptr<X509, X509Free> leaf = FirstCertificate(cert);
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where("tls_cert", paths.cert),
        ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  auto bio = Bio(key);
  std::unique_ptr<EVP_PKEY, KeyFree> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where("tls_key", paths.key),
        ": holds no PEM private key (an encrypted key is not accepted)"));
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        Where("tls_key", paths.key), ": does not match the certificate in ",
        Where("tls_cert", paths.cert)));
  }
  if (!paths.client_ca.empty() && FirstCertificate(ca) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where("tls_client_ca", paths.client_ca),
        ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return absl::OkStatus();
}

// A file in memory holding `text`; -1 and errno on failure.
int MemoryFile(const char* name, const std::string& text) {
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

// Puts `text` in memory at `*fd` (a new descriptor the first time; after
// that the same number, swapped in one step by dup2, so that a reader sees
// the old file or the new one, never part of either).
absl::Status Publish(const char* name, const std::string& text, int* fd) {
  const int fresh = MemoryFile(name, text);
  if (fresh < 0) {
    return absl::InternalError(absl::StrCat(
        "cannot keep the TLS files in memory: ", std::strerror(errno)));
  }
  if (*fd < 0) {
    *fd = fresh;
    return absl::OkStatus();
  }
  const int swapped = dup3(fresh, *fd, O_CLOEXEC);
  const int saved = errno;
  close(fresh);
  if (swapped < 0) {
    return absl::InternalError(absl::StrCat(
        "cannot keep the TLS files in memory: ", std::strerror(saved)));
  }
  return absl::OkStatus();
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

}  // namespace

absl::StatusOr<std::unique_ptr<TlsFiles>> TlsFiles::Open(TlsPaths paths) {
  std::unique_ptr<TlsFiles> files(new TlsFiles(std::move(paths)));
  if (absl::Status s = files->Reload(); !s.ok()) return s;
  const TlsPaths& p = files->paths_;
  files->provider_ =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          FdPath(files->key_fd_), FdPath(files->cert_fd_),
          p.client_ca.empty() ? std::string() : FdPath(files->ca_fd_),
          kRefreshSeconds);
  return files;
}

TlsFiles::~TlsFiles() {
  provider_.reset();  // Its thread reads the descriptors.
  for (int fd : {key_fd_, cert_fd_, ca_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status TlsFiles::Reload() {
  absl::StatusOr<std::string> cert = Read("tls_cert", paths_.cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = Read("tls_key", paths_.key);
  if (!key.ok()) return key.status();
  std::string ca;
  if (!paths_.client_ca.empty()) {
    absl::StatusOr<std::string> read = Read("tls_client_ca", paths_.client_ca);
    if (!read.ok()) return read.status();
    ca = *std::move(read);
  }
  if (absl::Status s = Check(*cert, *key, ca, paths_); !s.ok()) return s;
  // gRPC's watcher reads the key and then the certificate, once a second.
  // Should that read fall between these two swaps (microseconds apart), it
  // would pair the new key with the old certificate: handshakes would then
  // fail until its next read, a second later. Everything weftd can check,
  // it checked above.
  if (absl::Status s = Publish("weft-tls-key", *key, &key_fd_); !s.ok()) {
    return s;
  }
  if (absl::Status s = Publish("weft-tls-cert", *cert, &cert_fd_); !s.ok()) {
    return s;
  }
  if (!paths_.client_ca.empty()) {
    if (absl::Status s = Publish("weft-tls-ca", ca, &ca_fd_); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> TlsFiles::Credentials() const {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_identity_key_cert_pairs();
  if (mutual()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace weft::weftd
