// AllowList: where the http handler may connect (--http_allow), the core of
// its SSRF guard. The check is made on the address a connection is about to
// use (libcurl's open-socket callback), so what a URL says cannot smuggle a
// destination past it: DNS answers, numeric host forms (2130706433, 0x7f.1)
// and redirects all end up as an address that must be allowed.
//
// Entries, comma-separated:
//   api.example.com          a host name, any port
//   api.example.com:8443     a host name and port
//   *.example.com            every name under example.com (not the name itself)
//   10.1.2.3, [::1]:8080     an address, with or without a port
//   10.0.0.0/8, fd00::/8     a CIDR range, any port
// A host-name entry allows a connection whose URL names that host (as
// written, compared case-insensitively) to whatever address the name
// resolves to: the operator trusts that name's DNS. It never matches a host
// written as a number. Address and range entries match the connected
// address; an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is matched as the
// IPv4 address it carries.
//
// Thread-safety: immutable after Parse; safe to share.

#ifndef WEFT_SERVER_HANDLERS_ALLOW_LIST_H_
#define WEFT_SERVER_HANDLERS_ALLOW_LIST_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::handlers {

// An IPv4 or IPv6 address; IPv4 is kept as its IPv4-mapped IPv6 form.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  bool is_v4() const;
  // "127.0.0.1", "::1".
  std::string ToString() const;
  // Parses the canonical textual forms only (inet_pton): "127.0.0.1",
  // "::1", "::ffff:127.0.0.1"; never "2130706433" or "0x7f.1".
  static std::optional<IpAddress> Parse(absl::string_view text);
  // From a socket address (AF_INET or AF_INET6); sets *port.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* address,
                                               int* port);
};

class AllowList {
 public:
  // Errors are INVALID_ARGUMENT naming the entry.
  static absl::StatusOr<AllowList> Parse(absl::string_view text);

  bool empty() const { return hosts_.empty() && ranges_.empty(); }

  // Whether a connection to `address`:`port`, made for a URL whose host is
  // `url_host` (as the URL writes it, without brackets), is allowed.
  bool Allows(absl::string_view url_host, const IpAddress& address,
              int port) const;

  // Whether a URL naming `url_host` and `port` is allowed when the address
  // it connects to cannot be seen (through a proxy): host entries match
  // names, address and range entries match a host written as a canonical
  // address. Numeric forms such as "2130706433" match nothing.
  bool AllowsUrlHost(absl::string_view url_host, int port) const;

  // The entries, as given, for messages.
  const std::string& text() const { return text_; }

 private:
  struct Host {
    std::string name;         // Lowercase, without "*.".
    bool subdomains = false;  // "*.name".
    std::optional<int> port;
  };
  struct Range {
    IpAddress network;
    int prefix_bits = 128;  // Of the 128-bit (mapped) form.
    std::optional<int> port;
  };

  bool MatchesRange(const IpAddress& address, int port) const;
  bool MatchesHost(absl::string_view url_host, int port) const;

  std::string text_;
  std::vector<Host> hosts_;
  std::vector<Range> ranges_;
};

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_ALLOW_LIST_H_
