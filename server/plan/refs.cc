#include "server/plan/refs.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/errors.h"
#include "server/common/text.h"
#include "server/handlers/handler.h"
#include "server/plan/secrets.h"

namespace weft::plan {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kRefKey = "$ref";
constexpr absl::string_view kFormatKey = "$format";
constexpr absl::string_view kLiteralKey = "$literal";
constexpr absl::string_view kSecretKey = "$secret";
// A reference's text, and a $format's, at most.
constexpr size_t kMaxRefBytes = 1024;
// Deeper paths than this are surely a mistake.
constexpr size_t kMaxPathSteps = 32;

absl::Status BadReference(absl::string_view where, absl::string_view what) {
  return common::FieldError(where, what, common::kBadReference);
}

bool IsIdStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsIdChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-'; }

// ".field" when the field is plain, else ["field"].
std::string FieldStep(absl::string_view field) {
  const bool plain =
      !field.empty() && field.size() <= common::kQuoteBytes &&
      std::all_of(field.begin(), field.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
               c == '-';
      });
  return plain ? absl::StrCat(".", field)
               : absl::StrCat("[", common::Quote(field), "]");
}

std::string PathText(absl::string_view id, const std::vector<PathStep>& path,
                     size_t steps) {
  std::string out(id);
  for (size_t i = 0; i < steps && i < path.size(); ++i) {
    if (path[i].index >= 0) {
      absl::StrAppend(&out, "[", path[i].index, "]");
    } else {
      absl::StrAppend(&out, ".", path[i].field);
    }
  }
  return out;
}

// Parses "id.field[2].other" into `ref`; `where` names it in errors.
absl::Status ParseRef(absl::string_view text, absl::string_view where,
                      Ref* ref) {
  ref->text = std::string(text);
  ref->where = std::string(where);
  const std::string shown = common::Quote(text);
  if (text.empty()) {
    return BadReference(where,
                        "empty; a reference names a node by its id, then "
                        "optionally a path into its value: \"user.id\"");
  }
  if (text.size() > kMaxRefBytes) {
    return BadReference(where,
                        absl::StrCat("longer than ", kMaxRefBytes, " bytes"));
  }
  size_t i = 0;
  while (i < text.size() && text[i] != '.' && text[i] != '[') ++i;
  ref->id = std::string(text.substr(0, i));
  if (ref->id == kItemId || ref->id == kIndexId) {
    if (ref->id == kIndexId && i < text.size()) {
      return BadReference(where, absl::StrCat(shown,
                                              ": $index is a number, "
                                              "with no path into it"));
    }
  } else if (!IsReferenceableId(ref->id)) {
    return BadReference(
        where, absl::StrCat(shown,
                            " does not start with a node id that references "
                            "can name: ids matching [A-Za-z_][A-Za-z0-9_-]*, "
                            "then .field or [index] steps"));
  }
  while (i < text.size()) {
    if (ref->path.size() == kMaxPathSteps) {
      return BadReference(where, absl::StrCat(shown, " has more than ",
                                              kMaxPathSteps, " path steps"));
    }
    PathStep step;
    if (text[i] == '.') {
      size_t end = ++i;
      while (end < text.size() && text[end] != '.' && text[end] != '[') ++end;
      if (end == i) {
        return BadReference(
            where, absl::StrCat(shown, ": an empty field name at offset ", i,
                                "; write .field or [index]"));
      }
      step.field = std::string(text.substr(i, end - i));
      i = end;
    } else if (text[i] == '[') {
      const size_t close = text.find(']', i);
      const absl::string_view digits = close == absl::string_view::npos
                                           ? absl::string_view()
                                           : text.substr(i + 1, close - i - 1);
      uint64_t index = 0;
      if (digits.empty() ||
          !std::all_of(digits.begin(), digits.end(),
                       [](char c) { return absl::ascii_isdigit(c); }) ||
          digits.size() > 9 || !absl::SimpleAtoi(digits, &index)) {
        return BadReference(
            where, absl::StrCat(shown, ": a list index at offset ", i,
                                " must be digits in brackets, such as [0]"));
      }
      step.index = static_cast<int64_t>(index);
      i = close + 1;
    } else {
      return BadReference(where, absl::StrCat(shown, ": unexpected ",
                                              common::Quote(text.substr(i, 1)),
                                              " at offset ", i));
    }
    ref->path.push_back(std::move(step));
  }
  return absl::OkStatus();
}

// Parses a $format string into `hole` (texts and refs).
absl::Status ParseFormat(absl::string_view format, absl::string_view where,
                         Hole* hole) {
  if (format.size() > 64 * kMaxRefBytes) {
    return BadReference(
        where, absl::StrCat("longer than ", 64 * kMaxRefBytes, " bytes"));
  }
  std::string text;
  size_t i = 0;
  while (i < format.size()) {
    const char c = format[i];
    if (c == '{' && i + 1 < format.size() && format[i + 1] == '{') {
      text.push_back('{');
      i += 2;
    } else if (c == '}' && i + 1 < format.size() && format[i + 1] == '}') {
      text.push_back('}');
      i += 2;
    } else if (c == '}') {
      return BadReference(where, absl::StrCat("a lone '}' at offset ", i,
                                              "; write }} for one"));
    } else if (c == '{') {
      const size_t close = format.find('}', i);
      if (close == absl::string_view::npos) {
        return BadReference(
            where, absl::StrCat("the '{' at offset ", i,
                                " is not closed; write {{ for a brace, or "
                                "{node.path} for a value"));
      }
      Ref ref;
      if (absl::Status s =
              ParseRef(format.substr(i + 1, close - i - 1), where, &ref);
          !s.ok()) {
        return s;
      }
      hole->texts.push_back(std::move(text));
      text.clear();
      hole->refs.push_back(std::move(ref));
      i = close + 1;
    } else {
      text.push_back(c);
      ++i;
    }
  }
  hole->texts.push_back(std::move(text));
  return absl::OkStatus();
}

class Parser {
 public:
  explicit Parser(ArgTemplate* out) : out_(out) {}

  // Returns what `in` becomes in the template's base; adds its holes.
  absl::StatusOr<Value> Parse(const Value& in, const std::string& where,
                              std::vector<PathStep>& location) {
    if (in.has_list_value()) {
      Value out;
      auto* list = out.mutable_list_value();
      for (int i = 0; i < in.list_value().values_size(); ++i) {
        location.push_back(PathStep{"", i});
        absl::StatusOr<Value> v =
            Parse(in.list_value().values(i), absl::StrCat(where, "[", i, "]"),
                  location);
        location.pop_back();
        if (!v.ok()) return v.status();
        *list->add_values() = *std::move(v);
      }
      return out;
    }
    if (!in.has_struct_value()) return in;
    const auto& fields = in.struct_value().fields();
    for (absl::string_view key :
         {kRefKey, kFormatKey, kLiteralKey, kSecretKey}) {
      auto it = fields.find(std::string(key));
      if (it == fields.end()) continue;
      const std::string at = absl::StrCat(where, ".", key);
      if (fields.size() != 1) {
        std::vector<std::string> others;
        for (const auto& [k, v] : fields) {
          if (k != key) others.push_back(common::Quote(k));
        }
        std::sort(others.begin(), others.end());
        return BadReference(
            where, absl::StrCat("an object with a ", common::Quote(key),
                                " key has no other keys, and this one has ",
                                absl::StrJoin(others, ", "),
                                "; to pass such an object as it is, wrap it: "
                                "{\"$literal\": {...}}"));
      }
      const Value& v = it->second;
      if (key == kLiteralKey) return v;
      if (key == kSecretKey) {
        if (!v.has_string_value() || !IsSecretName(v.string_value())) {
          return BadReference(
              at,
              "must be a secret's name: 1 to 128 letters, digits, '_', '-' "
              "and '.', starting with a letter or '_'");
        }
        Ref ref;
        ref.source = Ref::Source::kSecret;
        ref.id = v.string_value();
        ref.text = v.string_value();
        ref.where = at;
        Hole hole;
        hole.location = location;
        hole.refs.push_back(std::move(ref));
        out_->holes.push_back(std::move(hole));
        Value null;
        null.set_null_value(google::protobuf::NULL_VALUE);
        return null;
      }
      if (!v.has_string_value()) {
        return BadReference(
            at, key == kRefKey
                    ? "must be a string naming a node and a path: \"user.id\""
                    : "must be a string such as \"/users/{user.id}\"");
      }
      Hole hole;
      hole.location = location;
      if (key == kRefKey) {
        Ref ref;
        if (absl::Status s = ParseRef(v.string_value(), at, &ref); !s.ok()) {
          return s;
        }
        hole.refs.push_back(std::move(ref));
      } else {
        if (absl::Status s = ParseFormat(v.string_value(), at, &hole);
            !s.ok()) {
          return s;
        }
        if (hole.refs.empty()) {
          // Only text (and escaped braces): a plain string.
          Value text;
          text.set_string_value(std::move(hole.texts.front()));
          return text;
        }
      }
      out_->holes.push_back(std::move(hole));
      Value null;
      null.set_null_value(google::protobuf::NULL_VALUE);
      return null;
    }
    Value out;
    auto* out_fields = out.mutable_struct_value()->mutable_fields();
    for (const auto& [key, value] : fields) {
      location.push_back(PathStep{key, -1});
      absl::StatusOr<Value> v =
          Parse(value, absl::StrCat(where, FieldStep(key)), location);
      location.pop_back();
      if (!v.ok()) return v.status();
      (*out_fields)[key] = *std::move(v);
    }
    return out;
  }

 private:
  ArgTemplate* const out_;
};

// The node `ref` reads, walked along its path; errors as FillArgs says.
absl::StatusOr<const Value*> Walk(const Ref& ref, RefLookup lookup) {
  const RefTarget target = lookup(ref);
  if (target.value == nullptr && ref.source == Ref::Source::kSecret) {
    return handlers::Permanent(common::WithReason(
        absl::FailedPreconditionError(absl::StrCat(
            ref.where, ": ", common::Quote(ref.id),
            " is no longer a secret this weftd knows (--secrets was read "
            "again without it)")),
        common::kUnknownSecret));
  }
  if (target.value == nullptr) {
    return handlers::Permanent(common::WithReason(
        absl::FailedPreconditionError(
            absl::StrCat(ref.where, ": ", common::Quote(ref.text),
                         " reads node ", common::Quote(ref.id),
                         ", which finished without a value: ", target.why_not)),
        common::kRefNoValue));
  }
  const Value* v = target.value;
  for (size_t i = 0; i < ref.path.size(); ++i) {
    const PathStep& step = ref.path[i];
    const Value* next = nullptr;
    std::string missing;
    if (step.index >= 0) {
      if (v->has_list_value() && step.index < v->list_value().values_size()) {
        next = &v->list_value().values(static_cast<int>(step.index));
      } else {
        missing = absl::StrCat("has no item [", step.index, "]");
      }
    } else if (v->has_struct_value()) {
      auto it = v->struct_value().fields().find(step.field);
      if (it != v->struct_value().fields().end()) {
        next = &it->second;
      } else {
        missing = absl::StrCat("has no field ", common::Quote(step.field));
      }
    } else {
      missing = absl::StrCat("has no field ", common::Quote(step.field));
    }
    if (next == nullptr) {
      return handlers::Permanent(
          common::WithReason(absl::InvalidArgumentError(absl::StrCat(
                                 ref.where, ": ", common::Quote(ref.text), ": ",
                                 PathText(ref.id, ref.path, i), " ", missing,
                                 "; it is ", DescribeShape(*v))),
                             common::kRefPathNotFound));
    }
    v = next;
  }
  return v;
}

// The place `location` names in `args`, made if absent.
Value* Locate(Struct& args, const std::vector<PathStep>& location) {
  Value* v = &(*args.mutable_fields())[location.front().field];
  for (size_t i = 1; i < location.size(); ++i) {
    const PathStep& step = location[i];
    if (step.index >= 0) {
      v = v->mutable_list_value()->mutable_values(static_cast<int>(step.index));
    } else {
      v = &(*v->mutable_struct_value()->mutable_fields())[step.field];
    }
  }
  return v;
}

}  // namespace

bool HasDataFlow(const Struct& args) {
  for (const auto& [key, value] : args.fields()) {
    if (HasDataFlow(value)) return true;
  }
  return false;
}

bool HasDataFlow(const Value& value) {
  if (value.has_list_value()) {
    for (const Value& v : value.list_value().values()) {
      if (HasDataFlow(v)) return true;
    }
    return false;
  }
  if (!value.has_struct_value()) return false;
  const auto& fields = value.struct_value().fields();
  for (absl::string_view key : {kRefKey, kFormatKey, kLiteralKey, kSecretKey}) {
    if (fields.contains(std::string(key))) return true;
  }
  return HasDataFlow(value.struct_value());
}

bool IsReferenceableId(absl::string_view id) {
  return !id.empty() && IsIdStart(id[0]) &&
         std::all_of(id.begin() + 1, id.end(), IsIdChar);
}

absl::StatusOr<ArgTemplate> ParseArgs(const Struct& args,
                                      absl::string_view path) {
  ArgTemplate out;
  Parser parser(&out);
  std::vector<PathStep> location;
  for (const auto& [name, value] : args.fields()) {
    const size_t holes = out.holes.size();
    location.push_back(PathStep{name, -1});
    absl::StatusOr<Value> v = parser.Parse(
        value, absl::StrCat(path, ".", handlers::ArgPath(name)), location);
    location.pop_back();
    if (!v.ok()) return v.status();
    (*out.base.mutable_fields())[name] = *std::move(v);
    if (out.holes.size() != holes) out.dynamic_args.push_back(name);
  }
  std::sort(out.dynamic_args.begin(), out.dynamic_args.end());
  return out;
}

absl::StatusOr<ArgTemplate> ParseItems(const Value& items,
                                       absl::string_view where) {
  const bool is_ref =
      items.has_struct_value() &&
      items.struct_value().fields().contains(std::string(kRefKey));
  if (!items.has_list_value() && !is_ref) {
    return common::FieldError(
        where,
        absl::StrCat("is ", DescribeShape(items),
                     "; a map needs a list, or {\"$ref\": \"...\"} naming "
                     "one an earlier step made"));
  }
  ArgTemplate out;
  Parser parser(&out);
  std::vector<PathStep> location = {PathStep{"items", -1}};
  absl::StatusOr<Value> v = parser.Parse(items, std::string(where), location);
  if (!v.ok()) return v.status();
  for (const Hole& hole : out.holes) {
    if (hole.refs.front().source == Ref::Source::kSecret) {
      return BadReference(hole.refs.front().where,
                          "a secret goes only in a call's args, not in a "
                          "map's items");
    }
  }
  (*out.base.mutable_fields())["items"] = *std::move(v);
  if (!out.holes.empty()) out.dynamic_args.push_back("items");
  return out;
}

absl::StatusOr<Struct> FillArgs(const ArgTemplate& t, RefLookup lookup) {
  Struct args = t.base;
  for (const Hole& hole : t.holes) {
    Value* place = Locate(args, hole.location);
    if (!hole.is_format()) {
      absl::StatusOr<const Value*> v = Walk(hole.refs.front(), lookup);
      if (!v.ok()) return v.status();
      *place = **v;
      continue;
    }
    std::string text = hole.texts.front();
    for (size_t i = 0; i < hole.refs.size(); ++i) {
      const Ref& ref = hole.refs[i];
      absl::StatusOr<const Value*> v = Walk(ref, lookup);
      if (!v.ok()) return v.status();
      if ((*v)->has_string_value()) {
        text += (*v)->string_value();
      } else if ((*v)->has_number_value()) {
        text += common::FormatNumber((*v)->number_value());
      } else {
        return handlers::Permanent(common::WithReason(
            absl::InvalidArgumentError(absl::StrCat(
                ref.where, ": {", ref.text, "} is ", DescribeShape(**v),
                "; a $format slot takes a string or a number (use $ref to "
                "pass other values whole)")),
            common::kRefBadValue));
      }
      text += hole.texts[i + 1];
    }
    place->set_string_value(std::move(text));
  }
  return args;
}

absl::StatusOr<const Value*> ResolveItems(const ArgTemplate& t,
                                          RefLookup lookup, Value* owned) {
  if (t.holes.empty()) return &t.base.fields().at("items");
  if (t.holes.size() == 1 && !t.holes[0].is_format() &&
      t.holes[0].location.size() == 1) {
    return Walk(t.holes[0].refs.front(), lookup);  // {"$ref": ...} itself.
  }
  absl::StatusOr<Struct> filled = FillArgs(t, lookup);
  if (!filled.ok()) return filled.status();
  *owned = std::move((*filled->mutable_fields())["items"]);
  return owned;
}

std::string DescribeShape(const Value& value) {
  switch (value.kind_case()) {
    case Value::kStructValue: {
      const auto& fields = value.struct_value().fields();
      if (fields.empty()) return "an empty object";
      std::vector<std::string> keys;
      for (const auto& [k, v] : fields) keys.push_back(k);
      std::sort(keys.begin(), keys.end());
      constexpr size_t kShown = 8;
      std::vector<std::string> shown;
      for (size_t i = 0; i < keys.size() && i < kShown; ++i) {
        shown.push_back(common::Quote(keys[i], 40));
      }
      return absl::StrCat(
          "an object with keys ", absl::StrJoin(shown, ", "),
          keys.size() > kShown
              ? absl::StrCat(" and ", keys.size() - kShown, " more")
              : "");
    }
    case Value::kListValue: {
      const int n = value.list_value().values_size();
      return n == 0   ? std::string("an empty list")
             : n == 1 ? std::string("a list of 1 item")
                      : absl::StrCat("a list of ", n, " items");
    }
    case Value::kNumberValue:
      return absl::StrCat("the number ",
                          common::FormatNumber(value.number_value()));
    case Value::kStringValue:
      return absl::StrCat("the string ",
                          common::Quote(value.string_value(), 40));
    case Value::kBoolValue:
      return value.bool_value() ? "true" : "false";
    default:
      return "null";
  }
}

}  // namespace weft::plan
