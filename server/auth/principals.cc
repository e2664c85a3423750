#include "server/auth/principals.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/errors.h"
#include "server/common/text.h"

namespace weft::auth {
namespace {

constexpr size_t kMaxNameBytes = 128;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-' || c == '@';
}

std::array<uint8_t, 32> Sha256(absl::string_view data) {
  // Fetched once: SHA256() looks the algorithm up among OpenSSL's providers
  // on every call (a lock and a lookup by name), once per request here.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  std::array<uint8_t, 32> digest;
  unsigned int size = 0;
  if (sha256 == nullptr ||
      EVP_Digest(data.data(), data.size(), digest.data(), &size, sha256,
                 nullptr) != 1 ||
      size != digest.size()) {
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           digest.data());
  }
  return digest;
}

// 64 hex digits, either case, into 32 bytes.
bool ParseDigest(absl::string_view hex, std::array<uint8_t, 32>* out) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  const std::string bytes = absl::HexStringToBytes(hex);
  std::copy(bytes.begin(), bytes.end(), out->begin());
  return true;
}

absl::Status Unauthenticated(absl::string_view message,
                             absl::string_view reason) {
  return common::WithReason(absl::UnauthenticatedError(message), reason);
}

}  // namespace

std::string TokenSha256(absl::string_view token) {
  const std::array<uint8_t, 32> digest = Sha256(token);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::StatusOr<std::shared_ptr<const PrincipalTable>> PrincipalTable::Create(
    const weft::v1::AuthTokens& tokens) {
  std::vector<Entry> entries;
  std::set<std::string> names;
  std::set<std::array<uint8_t, 32>> digests;
  std::set<std::string> subjects;
  for (int i = 0; i < tokens.principals_size(); ++i) {
    const weft::v1::Principal& p = tokens.principals(i);
    const std::string at = absl::StrCat("principals[", i, "].");
    auto bad = [&](absl::string_view field, absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(at, field, ": ", why));
    };
    if (p.name().empty() || p.name().size() > kMaxNameBytes ||
        !std::all_of(p.name().begin(), p.name().end(), IsNameChar)) {
      return bad("name",
                 absl::StrCat("must be 1 to 128 letters, digits, '.', '_', "
                              "'-' or '@', got ",
                              common::Quote(p.name())));
    }
    if (!names.insert(p.name()).second) {
      return bad("name", absl::StrCat(common::Quote(p.name()),
                                      " is named by an earlier principal"));
    }
    Entry entry;
    entry.principal.name = p.name();
    if (p.role() == "admin") {
      entry.principal.role = Role::kAdmin;
    } else if (p.role() == "user") {
      entry.principal.role = Role::kUser;
    } else {
      return bad("role", absl::StrCat("must be \"admin\" or \"user\", got ",
                                      common::Quote(p.role())));
    }
    if (!p.token_sha256().empty()) {
      if (!ParseDigest(p.token_sha256(), &entry.token_sha256)) {
        return bad("tokenSha256",
                   "must be the token's SHA-256 as 64 hex digits (printf %s "
                   "TOKEN | sha256sum), not the token");
      }
      if (!digests.insert(entry.token_sha256).second) {
        return bad("tokenSha256",
                   "an earlier principal has the same token; each needs its "
                   "own");
      }
      entry.has_token = true;
    }
    if (!p.certificate_subject().empty()) {
      if (!subjects.insert(p.certificate_subject()).second) {
        return bad("certificateSubject",
                   "an earlier principal has the same subject");
      }
      entry.certificate_subject = p.certificate_subject();
    }
    if (!entry.has_token && entry.certificate_subject.empty()) {
      return bad("tokenSha256",
                 "a principal needs a tokenSha256, a certificateSubject or "
                 "both");
    }
    entries.push_back(std::move(entry));
  }
  return std::shared_ptr<const PrincipalTable>(
      new PrincipalTable(std::move(entries)));
}

absl::StatusOr<Principal> PrincipalTable::Authenticate(
    absl::string_view authorization,
    absl::string_view certificate_subject) const {
  if (!authorization.empty()) {
    absl::string_view token = authorization;
    // The scheme is case-insensitive (RFC 9110, 11.1).
    if (token.size() < 7 ||
        !absl::EqualsIgnoreCase(token.substr(0, 7), "Bearer ")) {
      return Unauthenticated(
          "the authorization header must be \"Bearer TOKEN\"",
          common::kCredentialsInvalid);
    }
    token = absl::StripAsciiWhitespace(token.substr(7));
    const std::array<uint8_t, 32> digest = Sha256(token);
    // Every digest is compared in full, so the time taken does not depend
    // on which principal (if any) matches, nor where.
    const Principal* found = nullptr;
    for (const Entry& e : entries_) {
      const bool match =
          e.has_token &&
          CRYPTO_memcmp(digest.data(), e.token_sha256.data(), 32) == 0;
      if (match) found = &e.principal;
    }
    if (found == nullptr) {
      return Unauthenticated("the bearer token is not valid",
                             common::kCredentialsInvalid);
    }
    return *found;
  }
  if (!certificate_subject.empty()) {
    for (const Entry& e : entries_) {
      if (e.certificate_subject == certificate_subject) return e.principal;
    }
    return Unauthenticated(
        "the client certificate's subject names no principal; send "
        "\"authorization: Bearer TOKEN\" instead",
        common::kCredentialsInvalid);
  }
  return Unauthenticated(
      "this call needs credentials: send \"authorization: Bearer TOKEN\" "
      "metadata (weft --token, WEFT_TOKEN)",
      common::kCredentialsMissing);
}

void Callers::Replace(std::shared_ptr<const PrincipalTable> table) {
  if (table == nullptr) return;
  engine::MutexLock lock(&mu_);
  table_ = std::move(table);
}

absl::StatusOr<Principal> Callers::Authenticate(
    absl::string_view authorization,
    absl::string_view certificate_subject) const {
  if (!enabled_) return Principal::Anonymous();
  std::shared_ptr<const PrincipalTable> table;
  {
    engine::MutexLock lock(&mu_);
    table = table_;
  }
  return table->Authenticate(authorization, certificate_subject);
}

}  // namespace weft::auth
