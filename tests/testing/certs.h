// Certificates for TLS tests, made with `openssl` when the test runs (none
// are kept in the tree, so none expire there): a CA, and certificates it
// signs for a server (localhost, 127.0.0.1) or a client (any subject).
//
//   ScratchDir dir;
//   Certs certs(dir.path());
//   certs.MakeCa("ca");                              // ca.pem, ca.key
//   certs.MakeCert("server", "ca", "/CN=localhost");  // server.pem, .key
//   certs.Path("server.pem")

#ifndef WEFT_TESTS_TESTING_CERTS_H_
#define WEFT_TESTS_TESTING_CERTS_H_

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace weft::testing {

class Certs {
 public:
  explicit Certs(std::string dir) : dir_(std::move(dir)) {}

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // NAME.pem and NAME.key: a self-signed CA.
  bool MakeCa(const std::string& name) {
    return Shell(
        "openssl req -x509 -newkey ec -pkeyopt "
        "ec_paramgen_curve:P-256 -nodes -keyout " +
        name + ".key -out " + name + ".pem -days 2 -subj '/CN=" + name +
        " test CA'");
  }

  // NAME.pem and NAME.key: a certificate for `subject` ("/O=x/CN=y")
  // signed by the CA `ca`, valid for localhost and 127.0.0.1.
  bool MakeCert(const std::string& name, const std::string& ca,
                const std::string& subject) {
    return Shell(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        "-nodes -keyout " +
        name + ".key -out " + name + ".csr -subj '" + subject +
        "' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' "
        "> " +
        name + ".ext && openssl x509 -req -in " + name + ".csr -CA " + ca +
        ".pem -CAkey " + ca + ".key -CAcreateserial -out " + name +
        ".pem -days 2 -extfile " + name + ".ext");
  }

  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name)) << text;
  }

 private:
  bool Shell(const std::string& command) {
    const std::string line =
        "cd '" + dir_ + "' && { " + command + "; } >/dev/null 2>&1";
    const int rc = std::system(line.c_str());
    EXPECT_EQ(rc, 0) << line;
    return rc == 0;
  }

  std::string dir_;
};

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_CERTS_H_
