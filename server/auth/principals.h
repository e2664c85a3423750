// Callers: who may call weftd, and who a call says it is.
//
// The --auth_tokens file lists principals, each with a role and the SHA-256
// of its bearer token (never the token), or, under mutual TLS, the subject
// of its client certificate:
//
//   absl::StatusOr<std::shared_ptr<const PrincipalTable>> table =
//       PrincipalTable::Create(tokens);  // weft.v1.AuthTokens
//   absl::StatusOr<Principal> caller =
//       (*table)->Authenticate("Bearer s3cret", /*certificate_subject=*/"");
//
// Errors are UNAUTHENTICATED with reason CREDENTIALS_MISSING or
// CREDENTIALS_INVALID, and never say which principals exist. Tokens are
// compared in constant time: every principal's digest is compared in full,
// whichever matches.
//
// Thread-safety: a PrincipalTable is immutable; Callers is thread-safe.

#ifndef WEFT_SERVER_AUTH_PRINCIPALS_H_
#define WEFT_SERVER_AUTH_PRINCIPALS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/sync.h"
#include "weft/v1/config.pb.h"

namespace weft::auth {

enum class Role { kUser, kAdmin };

// Who makes a call. With auth off every call is the anonymous admin.
struct Principal {
  // As the tokens file names it; empty for the anonymous admin.
  std::string name;
  Role role = Role::kAdmin;

  bool admin() const { return role == Role::kAdmin; }
  // The anonymous admin: every call when --auth_tokens is not set.
  static Principal Anonymous() { return {}; }
};

class PrincipalTable {
 public:
  // Checks every principal; errors (INVALID_ARGUMENT) name the field as the
  // file writes it: "principals[1].tokenSha256: ...".
  static absl::StatusOr<std::shared_ptr<const PrincipalTable>> Create(
      const weft::v1::AuthTokens& tokens);

  // The principal a call presents. `authorization` is its authorization
  // header ("Bearer TOKEN"; empty if it sent none); `certificate_subject`
  // that of its verified client certificate (empty if none). A token, when
  // given, decides: an unknown one fails even if the certificate names a
  // principal.
  absl::StatusOr<Principal> Authenticate(
      absl::string_view authorization,
      absl::string_view certificate_subject) const;

  int size() const { return static_cast<int>(entries_.size()); }

 private:
  struct Entry {
    Principal principal;
    bool has_token = false;
    std::array<uint8_t, 32> token_sha256{};
    std::string certificate_subject;
  };
  explicit PrincipalTable(std::vector<Entry> entries)
      : entries_(std::move(entries)) {}

  std::vector<Entry> entries_;
};

// The table in force, replaced whole when weftd reads the file again
// (SIGHUP). Off (no table) means every call is the anonymous admin.
class Callers {
 public:
  Callers() = default;
  explicit Callers(std::shared_ptr<const PrincipalTable> table)
      : enabled_(table != nullptr), table_(std::move(table)) {}

  // Whether calls need a principal; fixed at start.
  bool enabled() const { return enabled_; }

  // Takes effect for calls that start after it returns; null is ignored.
  void Replace(std::shared_ptr<const PrincipalTable> table);

  // As PrincipalTable::Authenticate; the anonymous admin when off.
  absl::StatusOr<Principal> Authenticate(
      absl::string_view authorization,
      absl::string_view certificate_subject) const;

 private:
  const bool enabled_ = false;
  // engine::Mutex, not absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, which would not see this lock.
  mutable engine::Mutex mu_;
  std::shared_ptr<const PrincipalTable> table_ ABSL_GUARDED_BY(mu_);
};

// The SHA-256 of `token` as 64 lowercase hex digits, as the tokens file
// holds it.
std::string TokenSha256(absl::string_view token);

}  // namespace weft::auth

#endif  // WEFT_SERVER_AUTH_PRINCIPALS_H_
