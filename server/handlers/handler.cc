#include "server/handlers/handler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/duration.h"
#include "server/common/status_codes.h"
#include "server/common/text.h"

namespace weft::handlers {
namespace {

using google::protobuf::Value;

absl::string_view JsonTypeOf(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNullValue:
      return "null";
    case Value::kNumberValue:
      return "number";
    case Value::kStringValue:
      return "string";
    case Value::kBoolValue:
      return "bool";
    case Value::kStructValue:
      return "object";
    case Value::kListValue:
      return "list";
    case Value::KIND_NOT_SET:
      break;
  }
  return "nothing";
}

absl::Status Mistyped(const ArgSpec& spec, const Value& v) {
  std::string expected(ArgTypeName(spec.type));
  if (spec.type == ArgType::kDuration)
    expected = "a duration string like \"1.5s\"";
  if (spec.type == ArgType::kCode)
    expected = "a status code name like \"UNAVAILABLE\"";
  return ArgError(spec.name,
                  absl::StrCat("expected ", expected, ", got ", JsonTypeOf(v)));
}

absl::Status CheckOne(const ArgSpec& spec, const Value& v) {
  switch (spec.type) {
    case ArgType::kAny:
      if (v.kind_case() == Value::KIND_NOT_SET) return Mistyped(spec, v);
      return absl::OkStatus();
    case ArgType::kString:
      if (!v.has_string_value()) return Mistyped(spec, v);
      return absl::OkStatus();
    case ArgType::kNumber:
      if (!v.has_number_value() || !std::isfinite(v.number_value())) {
        return Mistyped(spec, v);
      }
      return absl::OkStatus();
    case ArgType::kInteger:
      if (!v.has_number_value()) return Mistyped(spec, v);
      if (v.number_value() != std::trunc(v.number_value()) ||
          std::fabs(v.number_value()) > 9007199254740992.0) {
        return ArgError(spec.name,
                        absl::StrCat("expected a whole number, got ",
                                     common::FormatNumber(v.number_value())));
      }
      if (v.number_value() < static_cast<double>(spec.min) ||
          v.number_value() > static_cast<double>(spec.max)) {
        if (spec.min == 0 && v.number_value() < 0) {
          return ArgError(spec.name, "must not be negative");
        }
        return ArgError(
            spec.name,
            absl::StrCat("must be between ", spec.min, " and ", spec.max,
                         ", got ", common::FormatNumber(v.number_value())));
      }
      return absl::OkStatus();
    case ArgType::kBool:
      if (!v.has_bool_value()) return Mistyped(spec, v);
      return absl::OkStatus();
    case ArgType::kDuration: {
      if (!v.has_string_value()) return Mistyped(spec, v);
      absl::StatusOr<absl::Duration> d =
          common::ParseJsonDuration(v.string_value());
      if (!d.ok()) return ArgError(spec.name, d.status().message());
      if (*d < absl::ZeroDuration()) {
        return ArgError(spec.name,
                        absl::StrCat("must not be negative, got ",
                                     common::Quote(v.string_value())));
      }
      return absl::OkStatus();
    }
    case ArgType::kCode: {
      if (!v.has_string_value()) return Mistyped(spec, v);
      absl::StatusOr<absl::StatusCode> code =
          common::ParseCodeName(v.string_value());
      if (!code.ok()) return ArgError(spec.name, code.status().message());
      if (*code == absl::StatusCode::kOk) {
        return ArgError(spec.name, "must be an error code, not OK");
      }
      return absl::OkStatus();
    }
    case ArgType::kObject:
      if (!v.has_struct_value()) return Mistyped(spec, v);
      return absl::OkStatus();
    case ArgType::kList:
      if (!v.has_list_value()) return Mistyped(spec, v);
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view ArgTypeName(ArgType type) {
  switch (type) {
    case ArgType::kAny:
      return "any";
    case ArgType::kString:
      return "string";
    case ArgType::kNumber:
      return "number";
    case ArgType::kInteger:
      return "integer";
    case ArgType::kBool:
      return "bool";
    case ArgType::kDuration:
      return "duration";
    case ArgType::kCode:
      return "code";
    case ArgType::kObject:
      return "object";
    case ArgType::kList:
      return "list";
  }
  return "any";
}

absl::Status CheckArgs(const HandlerInfo& info,
                       const google::protobuf::Struct& args) {
  // Report in a stable order: unknown names first, alphabetically.
  std::vector<std::string> unknown;
  for (const auto& [name, value] : args.fields()) {
    bool known = false;
    for (const ArgSpec& spec : info.args) known |= spec.name == name;
    if (!known) unknown.push_back(name);
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    std::vector<absl::string_view> names;
    for (const ArgSpec& spec : info.args) names.push_back(spec.name);
    return ArgError(
        unknown.front(),
        absl::StrCat("unknown argument of handler ", common::Quote(info.name),
                     "; it takes ",
                     names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  for (const ArgSpec& spec : info.args) {
    auto it = args.fields().find(spec.name);
    if (it == args.fields().end()) {
      if (spec.required) {
        return ArgError(spec.name,
                        absl::StrCat("required by handler ",
                                     common::Quote(info.name), " but missing"));
      }
      continue;
    }
    if (absl::Status s = CheckOne(spec, it->second); !s.ok()) return s;
  }
  return absl::OkStatus();
}

const google::protobuf::Value* Args::Find(absl::string_view name) const {
  auto it = args_.fields().find(std::string(name));
  return it == args_.fields().end() ? nullptr : &it->second;
}

std::string Args::String(absl::string_view name,
                         absl::string_view fallback) const {
  const Value* v = Find(name);
  return v != nullptr && v->has_string_value() ? v->string_value()
                                               : std::string(fallback);
}

absl::Duration Args::Duration(absl::string_view name,
                              absl::Duration fallback) const {
  const Value* v = Find(name);
  if (v == nullptr || !v->has_string_value()) return fallback;
  absl::StatusOr<absl::Duration> d =
      common::ParseJsonDuration(v->string_value());
  return d.ok() ? *d : fallback;
}

int64_t Args::Integer(absl::string_view name, int64_t fallback) const {
  const Value* v = Find(name);
  return v != nullptr && v->has_number_value()
             ? static_cast<int64_t>(v->number_value())
             : fallback;
}

absl::StatusCode Args::Code(absl::string_view name) const {
  const Value* v = Find(name);
  if (v == nullptr || !v->has_string_value()) return absl::StatusCode::kUnknown;
  absl::StatusOr<absl::StatusCode> c = common::ParseCodeName(v->string_value());
  return c.ok() ? *c : absl::StatusCode::kUnknown;
}

namespace {
constexpr absl::string_view kPermanentUrl = "type.weft.dev/permanent";
}  // namespace

absl::Status Permanent(absl::Status error) {
  error.SetPayload(kPermanentUrl, absl::Cord("1"));
  return error;
}

bool IsPermanent(const absl::Status& error) {
  return error.GetPayload(kPermanentUrl).has_value();
}

std::string ArgPath(absl::string_view name) {
  const bool plain =
      !name.empty() && name.size() <= common::kQuoteBytes &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
               c == '.' || c == '[' || c == ']' || c == '-';
      });
  return plain ? absl::StrCat("args.", name)
               : absl::StrCat("args[", common::Quote(name), "]");
}

absl::Status ArgError(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(ArgPath(name), ": ", what));
}

}  // namespace weft::handlers
