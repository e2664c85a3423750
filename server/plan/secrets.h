// Secrets: values a plan names and never holds.
//
// Anywhere in a call's args, {"$secret": "NAME"} is replaced, when the call
// starts, by the value --secrets gives NAME (a string). The plan keeps the
// object as written, so a stored task, GetTask and the journal hold the
// name, never the value; a call's value and error are redacted before the
// run keeps them: every occurrence of a secret value the call was given
// becomes "[secret NAME]" (the upstream's echo of a header, a URL quoted in
// an error). A value transformed on the way (base64, hashed) is not found.
//
//   auto table = SecretTable::Create({{"api_key", "s3cr3t"}});
//   Secrets secrets(*table);      // weftd's, replaced on SIGHUP
//   plan::Compile(..., &secrets);  // unknown names: INVALID_ARGUMENT
//
// Thread-safety: a SecretTable is immutable; Secrets is thread-safe.

#ifndef WEFT_SERVER_PLAN_SECRETS_H_
#define WEFT_SERVER_PLAN_SECRETS_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "server/engine/sync.h"

namespace weft::plan {

// Whether `name` may name a secret: 1 to 128 of letters, digits, '_', '-'
// and '.', starting with a letter or '_'.
bool IsSecretName(absl::string_view name);

// One version of the secrets: names to values.
class SecretTable {
 public:
  // INVALID_ARGUMENT naming the first bad entry ("secrets[\"NAME\"]: ..."):
  // a name IsSecretName refuses, or an empty value.
  static absl::StatusOr<std::shared_ptr<const SecretTable>> Create(
      const std::map<std::string, std::string>& values);

  // The value (a string Value), or null if there is no such secret.
  const google::protobuf::Value* Find(absl::string_view name) const;
  int size() const { return static_cast<int>(values_.size()); }

 private:
  SecretTable() = default;
  absl::flat_hash_map<std::string, google::protobuf::Value> values_;
};

// The secrets in force: replaced as a whole (on SIGHUP).
class Secrets {
 public:
  explicit Secrets(std::shared_ptr<const SecretTable> table)
      : table_(std::move(table)) {}
  std::shared_ptr<const SecretTable> Get() const ABSL_LOCKS_EXCLUDED(mu_);
  void Replace(std::shared_ptr<const SecretTable> table)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable engine::Mutex mu_;
  std::shared_ptr<const SecretTable> table_ ABSL_GUARDED_BY(mu_);
};

// The secrets a call was given: (name, value).
using UsedSecrets = std::vector<std::pair<std::string, std::string>>;

// `text` with every occurrence of a used secret's value replaced by
// "[secret NAME]" (longest first); a text that still holds 8 bytes of one
// in a row (a value cut short or escaped in a quote) is replaced whole by
// "[withheld: it held part of secret NAME]".
std::string Redact(const UsedSecrets& used, absl::string_view text);
// The same in every string and object key of `value`; true if it changed.
bool Redact(const UsedSecrets& used, google::protobuf::Value* value);

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_SECRETS_H_
