// TLS on the listener, through a real server and the C++ client: plaintext
// and mutual TLS, the files' errors, a principal named by its certificate,
// and rotation by Reload (what weftd does on SIGHUP).

#include "server/weftd/tls.h"

#include <memory>
#include <string>

#include "client/client.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/auth/principals.h"
#include "server/weftd/server.h"
#include "tests/testing/certs.h"
#include "tests/testing/json.h"
#include "tests/testing/scratch_dir.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::weftd {
namespace {

using ::testing::HasSubstr;
using weft::testing::Certs;
using weft::testing::IsOk;
using weft::testing::ScratchDir;
using weft::testing::StatusIs;

constexpr absl::Duration kCall = absl::Seconds(20);

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : certs_(dir_.path()) {
    certs_.MakeCa("ca");
    certs_.MakeCert("server", "ca", "/CN=localhost");
    certs_.MakeCert("alice", "ca", "/O=Example/CN=alice");
  }

  TlsPaths Paths(bool mutual = false) const {
    return {certs_.Path("server.pem"), certs_.Path("server.key"),
            mutual ? certs_.Path("ca.pem") : ""};
  }

  // Starts a server with `tls`; returns "127.0.0.1:PORT" (an IP literal:
  // nothing to resolve).
  std::string Serve(const TlsFiles& tls,
                    std::shared_ptr<auth::Callers> callers = nullptr) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.credentials = tls.Credentials();
    options.callers = std::move(callers);
    server_ = std::make_unique<WeftServer>(std::move(options));
    absl::StatusOr<std::string> address = server_->Start();
    EXPECT_THAT(address, IsOk());
    return "127.0.0.1:" + address->substr(address->rfind(':') + 1);
  }

  // Health over a fresh connection as `options` say.
  absl::Status Health(const std::string& address,
                      const client::ConnectOptions& options) {
    absl::StatusOr<std::unique_ptr<client::Client>> c =
        client::Client::Connect(address, options);
    if (!c.ok()) return c.status();
    return (*c)->Check("", kCall).status();
  }

  ScratchDir dir_;
  Certs certs_;
  std::unique_ptr<WeftServer> server_;
};

TEST_F(TlsTest, AClientTrustingTheCaIsServedAndAPlaintextOneIsNot) {
  absl::StatusOr<std::unique_ptr<TlsFiles>> tls = TlsFiles::Open(Paths());
  ASSERT_THAT(tls, IsOk());
  EXPECT_FALSE((*tls)->mutual());
  const std::string address = Serve(**tls);
  EXPECT_THAT(Health(address, {.tls_ca = certs_.Path("ca.pem")}), IsOk());
  EXPECT_THAT(Health(address, {}),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  // A CA that did not sign the server's certificate.
  certs_.MakeCa("other");
  EXPECT_THAT(Health(address, {.tls_ca = certs_.Path("other.pem")}),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST_F(TlsTest, UnderMutualTlsEveryCallNeedsACertificateHealthIncluded) {
  absl::StatusOr<std::unique_ptr<TlsFiles>> tls = TlsFiles::Open(Paths(true));
  ASSERT_THAT(tls, IsOk());
  EXPECT_TRUE((*tls)->mutual());
  const std::string address = Serve(**tls);
  EXPECT_THAT(Health(address, {.tls_ca = certs_.Path("ca.pem")}),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_THAT(Health(address, {.tls_ca = certs_.Path("ca.pem"),
                               .tls_cert = certs_.Path("alice.pem"),
                               .tls_key = certs_.Path("alice.key")}),
              IsOk());
  // A client certificate from a CA the server does not trust.
  certs_.MakeCa("other");
  certs_.MakeCert("mallory", "other", "/O=Example/CN=alice");
  EXPECT_THAT(Health(address, {.tls_ca = certs_.Path("ca.pem"),
                               .tls_cert = certs_.Path("mallory.pem"),
                               .tls_key = certs_.Path("mallory.key")}),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST_F(TlsTest, AClientCertificatesSubjectNamesItsPrincipal) {
  absl::StatusOr<std::unique_ptr<TlsFiles>> tls = TlsFiles::Open(Paths(true));
  ASSERT_THAT(tls, IsOk());
  absl::StatusOr<std::shared_ptr<const auth::PrincipalTable>> table =
      auth::PrincipalTable::Create(
          weft::testing::FromJson<weft::v1::AuthTokens>(R"({"principals": [
            {"name": "alice", "role": "user",
             "certificateSubject": "CN=alice,O=Example"}]})"));
  ASSERT_THAT(table, IsOk());
  const std::string address =
      Serve(**tls, std::make_shared<auth::Callers>(*table));
  client::ConnectOptions options{.tls_ca = certs_.Path("ca.pem"),
                                 .tls_cert = certs_.Path("alice.pem"),
                                 .tls_key = certs_.Path("alice.key")};
  absl::StatusOr<std::unique_ptr<client::Client>> alice =
      client::Client::Connect(address, options);
  ASSERT_THAT(alice, IsOk());
  EXPECT_THAT((*alice)->ListHandlers(kCall), IsOk());
  // Another subject, from the same CA: a valid connection, no principal.
  certs_.MakeCert("carol", "ca", "/O=Example/CN=carol");
  options.tls_cert = certs_.Path("carol.pem");
  options.tls_key = certs_.Path("carol.key");
  absl::StatusOr<std::unique_ptr<client::Client>> carol =
      client::Client::Connect(address, options);
  ASSERT_THAT(carol, IsOk());
  EXPECT_THAT((*carol)->ListHandlers(kCall).status(),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("subject names no principal")));
}

TEST_F(TlsTest, BadFilesNameTheFlagAndTheFile) {
  TlsPaths missing = Paths();
  missing.key = certs_.Path("nope.key");
  EXPECT_THAT(TlsFiles::Open(missing).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls_key " + missing.key +
                                 ": cannot read the file")));
  certs_.Write("junk.pem", "not a certificate\n");
  TlsPaths junk = Paths();
  junk.cert = certs_.Path("junk.pem");
  EXPECT_THAT(TlsFiles::Open(junk).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls_cert " + junk.cert +
                                 ": holds no PEM certificate")));
  TlsPaths key_is_cert = Paths();
  key_is_cert.key = certs_.Path("server.pem");
  EXPECT_THAT(TlsFiles::Open(key_is_cert).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds no PEM private key")));
  TlsPaths mismatched = Paths();
  mismatched.key = certs_.Path("alice.key");
  EXPECT_THAT(TlsFiles::Open(mismatched).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls_key " + mismatched.key +
                                 ": does not match the certificate in "
                                 "--tls_cert " +
                                 mismatched.cert)));
  TlsPaths bad_ca = Paths(true);
  bad_ca.client_ca = certs_.Path("server.key");
  EXPECT_THAT(TlsFiles::Open(bad_ca).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls_client_ca " + bad_ca.client_ca +
                                 ": holds no PEM certificate")));
}

// A fresh channel each time (its own subchannels), so that one failed
// handshake's backoff does not answer for the next attempt.
bool Handshakes(const std::string& address, const std::string& ca_pem) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel =
      grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
  // Until the first handshake succeeds (READY) or fails.
  const auto deadline = absl::ToChronoTime(absl::Now() + absl::Seconds(30));
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY &&
         state != GRPC_CHANNEL_TRANSIENT_FAILURE) {
    if (!channel->WaitForStateChange(state, deadline)) return false;
    state = channel->GetState(true);
  }
  return state == GRPC_CHANNEL_READY;
}

TEST_F(TlsTest, ReloadServesNewFilesAndABadReloadKeepsTheOldOnes) {
  absl::StatusOr<std::unique_ptr<TlsFiles>> tls = TlsFiles::Open(Paths());
  ASSERT_THAT(tls, IsOk());
  const std::string address = Serve(**tls);
  certs_.MakeCa("next");
  certs_.MakeCert("rotated", "next", "/CN=localhost");
  const std::string ca = certs_.Read("ca.pem");
  const std::string next = certs_.Read("next.pem");
  ASSERT_TRUE(Handshakes(address, ca));
  EXPECT_FALSE(Handshakes(address, next));

  // Half a rotation: the new key beside the old certificate.
  certs_.Write("server.key", certs_.Read("rotated.key"));
  EXPECT_THAT((*tls)->Reload(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not match the certificate")));
  EXPECT_TRUE(Handshakes(address, ca));  // The old pair is still served.

  certs_.Write("server.pem", certs_.Read("rotated.pem"));
  ASSERT_THAT((*tls)->Reload(), IsOk());
  // gRPC reads the new pair within a second.
  EXPECT_TRUE(
      weft::testing::WaitFor([&] { return Handshakes(address, next); }));
  EXPECT_FALSE(Handshakes(address, ca));
}

TEST(ClientConnectTest, FilesThatCannotBeReadOrACertificateWithoutKeyFail) {
  EXPECT_THAT(
      client::Client::Connect("127.0.0.1:1", {.tls_ca = "/nonexistent/ca.pem"})
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--tls_ca /nonexistent/ca.pem: cannot read "
                         "the file")));
  ScratchDir dir;
  Certs certs(dir.path());
  ASSERT_TRUE(certs.MakeCa("ca"));
  EXPECT_THAT(
      client::Client::Connect("127.0.0.1:1", {.tls_ca = certs.Path("ca.pem"),
                                              .tls_cert = certs.Path("ca.pem")})
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--tls_cert and --tls_key go together")));
}

}  // namespace
}  // namespace weft::weftd
