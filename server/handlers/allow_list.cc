#include "server/handlers/allow_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/text.h"

namespace weft::handlers {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};

absl::Status Bad(absl::string_view entry, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--http_allow: ", common::Quote(entry), ": ", why));
}

// A DNS name: labels of letters, digits and '-', the last one not all
// digits (so no numeric host form is ever a name).
bool IsHostName(absl::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::vector<absl::string_view> labels = absl::StrSplit(name, '.');
  for (absl::string_view label : labels) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
    if (label.front() == '-' || label.back() == '-') return false;
  }
  for (char c : labels.back()) {
    if (absl::ascii_isalpha(c)) return true;
  }
  return false;
}

std::optional<int> ParsePort(absl::string_view text) {
  int port;
  if (!absl::SimpleAtoi(text, &port) || port < 1 || port > 65535) {
    return std::nullopt;
  }
  return port;
}

}  // namespace

bool IpAddress::is_v4() const {
  return std::memcmp(bytes.data(), kMappedPrefix, 12) == 0;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddress> IpAddress::Parse(absl::string_view text) {
  const std::string s(text);
  IpAddress a;
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memcpy(a.bytes.data(), kMappedPrefix, 12);
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* address,
                                                 int* port) {
  IpAddress a;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    std::memcpy(a.bytes.data(), kMappedPrefix, 12);
    std::memcpy(a.bytes.data() + 12, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
    return a;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    std::memcpy(a.bytes.data(), &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
    return a;
  }
  return std::nullopt;
}

absl::StatusOr<AllowList> AllowList::Parse(absl::string_view text) {
  AllowList list;
  list.text_ = std::string(text);
  for (absl::string_view raw : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) continue;
    // A CIDR range.
    if (const size_t slash = entry.find('/'); slash != entry.npos) {
      std::optional<IpAddress> network =
          IpAddress::Parse(entry.substr(0, slash));
      int bits;
      if (!network.has_value()) return Bad(entry, "not an IP address range");
      const int max_bits = network->is_v4() ? 32 : 128;
      if (!absl::SimpleAtoi(entry.substr(slash + 1), &bits) || bits < 0 ||
          bits > max_bits) {
        return Bad(entry, absl::StrCat("the prefix length must be from 0 to ",
                                       max_bits));
      }
      Range r;
      r.network = *network;
      r.prefix_bits = network->is_v4() ? 96 + bits : bits;
      list.ranges_.push_back(r);
      continue;
    }
    // "[v6]" or "[v6]:port".
    if (absl::StartsWith(entry, "[")) {
      const size_t close = entry.find(']');
      std::optional<IpAddress> a =
          close == entry.npos ? std::nullopt
                              : IpAddress::Parse(entry.substr(1, close - 1));
      if (!a.has_value()) return Bad(entry, "not an IPv6 address in brackets");
      Range r{*a, 128, std::nullopt};
      absl::string_view rest = entry.substr(close + 1);
      if (!rest.empty()) {
        if (!absl::ConsumePrefix(&rest, ":") || !(r.port = ParsePort(rest))) {
          return Bad(entry, "the port must be from 1 to 65535");
        }
      }
      list.ranges_.push_back(r);
      continue;
    }
    // A bare IPv6 address (more than one ':').
    if (std::count(entry.begin(), entry.end(), ':') > 1) {
      std::optional<IpAddress> a = IpAddress::Parse(entry);
      if (!a.has_value()) return Bad(entry, "not an IPv6 address");
      list.ranges_.push_back(Range{*a, 128, std::nullopt});
      continue;
    }
    // host, host:port, IPv4, IPv4:port.
    absl::string_view host = entry;
    std::optional<int> port;
    if (const size_t colon = entry.find(':'); colon != entry.npos) {
      host = entry.substr(0, colon);
      port = ParsePort(entry.substr(colon + 1));
      if (!port.has_value()) {
        return Bad(entry, "the port must be from 1 to 65535");
      }
    }
    if (std::optional<IpAddress> a = IpAddress::Parse(host); a.has_value()) {
      list.ranges_.push_back(Range{*a, 128, port});
      continue;
    }
    Host h;
    h.port = port;
    std::string name = absl::AsciiStrToLower(host);
    if (absl::StartsWith(name, "*.")) {
      h.subdomains = true;
      name = name.substr(2);
    }
    if (!IsHostName(name)) {
      return Bad(entry,
                 "not a host name, host:port, IP address or CIDR range (host "
                 "names are written in letters; numeric forms like 2130706433 "
                 "are not addresses)");
    }
    h.name = std::move(name);
    list.hosts_.push_back(std::move(h));
  }
  return list;
}

bool AllowList::MatchesRange(const IpAddress& address, int port) const {
  for (const Range& r : ranges_) {
    if (r.port.has_value() && *r.port != port) continue;
    const int full = r.prefix_bits / 8;
    const int rest = r.prefix_bits % 8;
    if (std::memcmp(address.bytes.data(), r.network.bytes.data(), full) != 0) {
      continue;
    }
    if (rest != 0) {
      const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((address.bytes[full] & mask) != (r.network.bytes[full] & mask)) {
        continue;
      }
    }
    return true;
  }
  return false;
}

bool AllowList::MatchesHost(absl::string_view url_host, int port) const {
  const std::string host = absl::AsciiStrToLower(url_host);
  if (!IsHostName(host)) return false;
  for (const Host& h : hosts_) {
    if (h.port.has_value() && *h.port != port) continue;
    if (h.subdomains ? absl::EndsWith(host, absl::StrCat(".", h.name))
                     : host == h.name) {
      return true;
    }
  }
  return false;
}

bool AllowList::Allows(absl::string_view url_host, const IpAddress& address,
                       int port) const {
  return MatchesRange(address, port) || MatchesHost(url_host, port);
}

bool AllowList::AllowsUrlHost(absl::string_view url_host, int port) const {
  if (std::optional<IpAddress> ip = IpAddress::Parse(url_host)) {
    return MatchesRange(*ip, port);
  }
  return MatchesHost(url_host, port);
}

}  // namespace weft::handlers
