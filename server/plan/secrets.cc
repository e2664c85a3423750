#include "server/plan/secrets.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/common/text.h"

namespace weft::plan {

using google::protobuf::Value;

bool IsSecretName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!absl::ascii_isalpha(name[0]) && name[0] != '_') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

absl::StatusOr<std::shared_ptr<const SecretTable>> SecretTable::Create(
    const std::map<std::string, std::string>& values) {
  auto table = std::shared_ptr<SecretTable>(new SecretTable());
  for (const auto& [name, value] : values) {
    const std::string where =
        absl::StrCat("secrets[", common::Quote(name), "]");
    if (!IsSecretName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": a secret's name is 1 to 128 letters, digits, '_', '-' and '.', "
          "starting with a letter or '_'"));
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the value is empty"));
    }
    table->values_[name].set_string_value(value);
  }
  return std::shared_ptr<const SecretTable>(std::move(table));
}

const Value* SecretTable::Find(absl::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

std::shared_ptr<const SecretTable> Secrets::Get() const {
  engine::MutexLock lock(&mu_);
  return table_;
}

void Secrets::Replace(std::shared_ptr<const SecretTable> table) {
  engine::MutexLock lock(&mu_);
  table_ = std::move(table);
}

namespace {

// The shortest part of a secret that, found in a text, gives the text away
// as holding it (cut, escaped or quoted in part).
constexpr size_t kFragment = 8;

// The name of a used secret `text` holds a fragment of, or null.
const std::string* FragmentOf(const UsedSecrets& used, absl::string_view text) {
  for (const auto& [name, value] : used) {
    const size_t n = std::min(kFragment, value.size());
    for (size_t i = 0; i + n <= value.size(); ++i) {
      if (absl::StrContains(text, absl::string_view(value).substr(i, n))) {
        return &name;
      }
    }
  }
  return nullptr;
}

bool Contains(const UsedSecrets& used, absl::string_view text) {
  return FragmentOf(used, text) != nullptr;
}

}  // namespace

std::string Redact(const UsedSecrets& used, absl::string_view text) {
  // Longest first: a secret that holds another is replaced whole.
  std::vector<std::pair<std::string, std::string>> replacements;
  replacements.reserve(used.size());
  for (const auto& [name, value] : used) {
    replacements.emplace_back(value, absl::StrCat("[secret ", name, "]"));
  }
  std::sort(replacements.begin(), replacements.end(),
            [](const auto& a, const auto& b) {
              return a.first.size() > b.first.size();
            });
  std::string out = absl::StrReplaceAll(text, replacements);
  // What is left of one (cut to a message's length, escaped in a quote):
  // the text goes whole.
  if (const std::string* name = FragmentOf(used, out); name != nullptr) {
    return absl::StrCat("[withheld: it held part of secret ", *name, "]");
  }
  return out;
}

bool Redact(const UsedSecrets& used, Value* value) {
  if (value->has_string_value()) {
    if (!Contains(used, value->string_value())) return false;
    value->set_string_value(Redact(used, value->string_value()));
    return true;
  }
  bool changed = false;
  if (value->has_list_value()) {
    for (Value& v : *value->mutable_list_value()->mutable_values()) {
      changed |= Redact(used, &v);
    }
    return changed;
  }
  if (!value->has_struct_value()) return false;
  auto* fields = value->mutable_struct_value()->mutable_fields();
  std::vector<std::string> keys;
  for (auto& [key, v] : *fields) {
    changed |= Redact(used, &v);
    if (Contains(used, key)) keys.push_back(key);
  }
  for (const std::string& key : keys) {
    Value v = std::move((*fields)[key]);
    fields->erase(key);
    (*fields)[Redact(used, key)] = std::move(v);
  }
  return changed || !keys.empty();
}

}  // namespace weft::plan
