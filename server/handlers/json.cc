#include "server/handlers/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/text.h"

namespace weft::handlers {
namespace {

using google::protobuf::Value;

class Parser {
 public:
  Parser(absl::string_view text, int max_depth)
      : text_(text), max_depth_(max_depth) {}

  absl::StatusOr<Value> Parse() {
    Value out;
    SkipSpace();
    if (absl::Status s = ParseValue(&out, 0); !s.ok()) return s;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the value");
    return out;
  }

 private:
  absl::Status ParseValue(Value* out, int depth) {
    if (pos_ >= text_.size()) return Error("expected a value, got the end");
    switch (text_[pos_]) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseList(out, depth + 1);
      case '"': {
        std::string s;
        if (absl::Status st = ParseString(&s); !st.ok()) return st;
        out->set_string_value(std::move(s));
        return absl::OkStatus();
      }
      case 't':
        return Literal("true", [out] { out->set_bool_value(true); });
      case 'f':
        return Literal("false", [out] { out->set_bool_value(false); });
      case 'n':
        return Literal("null", [out] {
          out->set_null_value(google::protobuf::NULL_VALUE);
        });
      default:
        return ParseNumber(out);
    }
  }

  absl::Status Enter(int depth) {
    if (depth > max_depth_) {
      return Located(absl::StatusCode::kOutOfRange,
                     absl::StrCat("nested deeper than ", max_depth_,
                                  " levels of objects and lists"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseObject(Value* out, int depth) {
    if (absl::Status s = Enter(depth); !s.ok()) return s;
    ++pos_;  // '{'
    auto* fields = out->mutable_struct_value()->mutable_fields();
    SkipSpace();
    if (Consume('}')) return absl::OkStatus();
    for (;;) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        return Error("expected a key in double quotes");
      }
      std::string key;
      if (absl::Status s = ParseString(&key); !s.ok()) return s;
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after the key");
      SkipSpace();
      Value& v = (*fields)[key];
      v.Clear();
      if (absl::Status s = ParseValue(&v, depth); !s.ok()) return s;
      SkipSpace();
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or '}' in the object");
    }
  }

  absl::Status ParseList(Value* out, int depth) {
    if (absl::Status s = Enter(depth); !s.ok()) return s;
    ++pos_;  // '['
    auto* values = out->mutable_list_value()->mutable_values();
    SkipSpace();
    if (Consume(']')) return absl::OkStatus();
    for (;;) {
      SkipSpace();
      if (absl::Status s = ParseValue(values->Add(), depth); !s.ok()) return s;
      SkipSpace();
      if (Consume(']')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or ']' in the list");
    }
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Reads the 4 hex digits after "\u".
  bool ReadHex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = Hex(text_[pos_ + i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  absl::Status ParseString(std::string* out) {
    ++pos_;  // '"'
    const size_t start = pos_;
    for (;;) {
      // Copy the plain run at once.
      size_t run = pos_;
      while (run < text_.size() && text_[run] != '"' && text_[run] != '\\' &&
             static_cast<unsigned char>(text_[run]) >= 0x20) {
        ++run;
      }
      out->append(text_.data() + pos_, run - pos_);
      pos_ = run;
      if (pos_ >= text_.size()) {
        pos_ = start - 1;
        return Error("a string that never ends");
      }
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c != '\\') return Error("a control character in a string");
      ++pos_;
      if (pos_ >= text_.size()) return Error("a string that never ends");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          *out += e;
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!ReadHex4(&cp)) return Error("\\u needs four hex digits");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (text_.substr(pos_, 2) != "\\u" ||
                (pos_ += 2, !ReadHex4(&low)) || low < 0xDC00 || low > 0xDFFF) {
              return Error("a lone UTF-16 surrogate in \\u escapes");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("a lone UTF-16 surrogate in \\u escapes");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error("an unknown escape in a string");
      }
    }
    if (!common::IsValidUtf8(*out)) {
      pos_ = start;
      return Error("a string that is not UTF-8");
    }
    return absl::OkStatus();
  }

  absl::Status ParseNumber(Value* out) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        ++pos_;
      }
      return pos_ - from;
    };
    Consume('-');
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      pos_ = start;
      return Error("expected a value");
    }
    if (Consume('.') && digits() == 0)
      return Error("expected digits after '.'");
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (!Consume('+')) Consume('-');
      if (digits() == 0) return Error("expected digits in the exponent");
    }
    double v = 0;
    const auto [end, ec] =
        std::from_chars(text_.data() + start, text_.data() + pos_, v);
    if (ec != std::errc() || end != text_.data() + pos_ || !std::isfinite(v)) {
      pos_ = start;
      return Error("a number beyond the range of a double");
    }
    out->set_number_value(v);
    return absl::OkStatus();
  }

  template <typename Set>
  absl::Status Literal(absl::string_view word, Set set) {
    if (text_.substr(pos_, word.size()) != word)
      return Error("expected a value");
    pos_ += word.size();
    set();
    return absl::OkStatus();
  }

  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::Status Error(absl::string_view what) const {
    return Located(absl::StatusCode::kInvalidArgument, what);
  }

  // "line L, column C: what", counted in bytes.
  absl::Status Located(absl::StatusCode code, absl::string_view what) const {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return absl::Status(code, absl::StrCat("line ", line, ", column ",
                                           pos_ - line_start + 1, ": ", what));
  }

  const absl::string_view text_;
  const int max_depth_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Value> ParseJson(absl::string_view text, int max_depth) {
  return Parser(text, max_depth).Parse();
}

int JsonDepth(absl::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace weft::handlers
