#include "server/common/text.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft::common {
namespace {

// The length of the valid UTF-8 character starting at s[i], or 0 if the
// bytes there are not one.
size_t CharLength(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t extra;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) {
    extra = 1;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + extra >= s.size()) return 0;
  uint32_t cp = c & (0x3F >> extra);
  for (size_t k = 1; k <= extra; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return extra + 1;
}

// The longest prefix of `s` of at most `max_bytes` that ends at a character
// boundary (invalid bytes count as characters of one byte).
size_t PrefixLength(absl::string_view s, size_t max_bytes) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = std::max<size_t>(CharLength(s, i), 1);
    if (i + n > max_bytes) break;
    i += n;
  }
  return i;
}

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = CharLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string Quote(absl::string_view s, size_t max_bytes) {
  const size_t keep = PrefixLength(s, max_bytes);
  std::string out = "\"";
  for (size_t i = 0; i < keep;) {
    const size_t n = CharLength(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (n == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
      ++i;
      continue;
    }
    if (n == 1) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        absl::StrAppendFormat(&out, "\\x%02x", c);
      } else {
        out += static_cast<char>(c);
      }
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
  out += '"';
  if (keep < s.size()) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

std::string Abbreviate(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  // Room for the note at the end.
  const size_t room = max_bytes > 40 ? max_bytes - 40 : max_bytes;
  const size_t keep = PrefixLength(message, room);
  return absl::StrCat(message.substr(0, keep), "... (", message.size(),
                      " bytes in all)");
}

absl::Status Abbreviate(const absl::Status& status, size_t max_bytes) {
  if (status.message().size() <= max_bytes) return status;
  absl::Status out(status.code(), Abbreviate(status.message(), max_bytes));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

std::string FormatNumber(double n) {
  if (std::isnan(n)) return "NaN";
  if (std::isinf(n)) return n > 0 ? "Infinity" : "-Infinity";
  if (n == std::trunc(n) && std::fabs(n) < 1e18) {
    return absl::StrCat(static_cast<int64_t>(n));
  }
  for (int digits = 1; digits <= 17; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, n);
    if (std::strtod(text.c_str(), nullptr) == n) return text;
  }
  return absl::StrFormat("%.17g", n);
}

namespace {

bool IsLowerHex(absl::string_view s, bool nonzero) {
  bool zero = true;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    zero &= c == '0';
  }
  return !(nonzero && zero);
}

}  // namespace

std::string Traceparent(absl::string_view header) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  if (header.size() < 55 || header[2] != '-' || header[35] != '-' ||
      header[52] != '-') {
    return "";
  }
  const absl::string_view version = header.substr(0, 2);
  if (!IsLowerHex(version, false) || version == "ff") return "";
  if (version == "00" ? header.size() != 55
                      : header.size() > 55 && header[55] != '-') {
    return "";
  }
  if (!IsLowerHex(header.substr(3, 32), true) ||
      !IsLowerHex(header.substr(36, 16), true) ||
      !IsLowerHex(header.substr(53, 2), false)) {
    return "";
  }
  return absl::StrCat("00", header.substr(2, 53));
}

std::string TraceId(absl::string_view traceparent) {
  const std::string valid = Traceparent(traceparent);
  return valid.empty() ? "" : valid.substr(3, 32);
}

}  // namespace weft::common
