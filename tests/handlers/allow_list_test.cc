#include "server/handlers/allow_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace weft::handlers {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::StatusIs;

IpAddress Ip(const char* text) {
  std::optional<IpAddress> a = IpAddress::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress());
}

AllowList List(const char* text) {
  absl::StatusOr<AllowList> list = AllowList::Parse(text);
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? *list : AllowList();
}

TEST(IpAddressTest, OnlyCanonicalFormsParse) {
  EXPECT_TRUE(Ip("127.0.0.1").is_v4());
  EXPECT_FALSE(Ip("::1").is_v4());
  EXPECT_EQ(Ip("::ffff:127.0.0.1").ToString(), "127.0.0.1");  // Mapped.
  for (const char* numeric :
       {"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "localhost", ""}) {
    EXPECT_FALSE(IpAddress::Parse(numeric).has_value()) << numeric;
  }
}

TEST(IpAddressTest, FromSockaddrReadsAddressAndPort) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
  int port = 0;
  std::optional<IpAddress> a =
      IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in), &port);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->ToString(), "10.1.2.3");
  EXPECT_EQ(port, 8080);

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
  a = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), &port);
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(port, 443);
}

TEST(AllowListTest, NothingAllowedRefusesEverything) {
  AllowList list = List("");
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(list.Allows("example.com", Ip("93.184.216.34"), 80));
}

TEST(AllowListTest, HostNamesMatchTheUrlsHostAndPort) {
  AllowList list = List("api.example.com, Mail.Internal:8025, *.svc.local");
  EXPECT_TRUE(list.Allows("api.example.com", Ip("10.0.0.1"), 443));
  EXPECT_TRUE(list.Allows("API.Example.COM", Ip("10.0.0.1"), 80));
  EXPECT_TRUE(list.Allows("mail.internal", Ip("10.0.0.2"), 8025));
  EXPECT_FALSE(list.Allows("mail.internal", Ip("10.0.0.2"), 25));
  EXPECT_TRUE(list.Allows("search.svc.local", Ip("10.0.0.3"), 80));
  EXPECT_FALSE(list.Allows("svc.local", Ip("10.0.0.3"), 80));
  EXPECT_FALSE(list.Allows("evilsvc.local", Ip("10.0.0.3"), 80));
  EXPECT_FALSE(list.Allows("example.com", Ip("10.0.0.1"), 443));
}

TEST(AllowListTest, AddressesAndRangesMatchTheConnectedAddress) {
  AllowList list =
      List("10.0.0.0/8, 192.168.1.5:8080, [fd00::1]:443, fd12::/16");
  EXPECT_TRUE(list.Allows("anything", Ip("10.200.3.4"), 80));
  EXPECT_FALSE(list.Allows("anything", Ip("11.0.0.1"), 80));
  EXPECT_TRUE(list.Allows("192.168.1.5", Ip("192.168.1.5"), 8080));
  EXPECT_FALSE(list.Allows("192.168.1.5", Ip("192.168.1.5"), 8081));
  EXPECT_TRUE(list.Allows("fd00::1", Ip("fd00::1"), 443));
  EXPECT_FALSE(list.Allows("fd00::1", Ip("fd00::1"), 80));
  EXPECT_TRUE(list.Allows("x", Ip("fd12:abcd::9"), 80));
  EXPECT_FALSE(list.Allows("x", Ip("fd13::9"), 80));
}

// The bypasses the SSRF guard must refuse: each names an address that is not
// allowed, whatever the URL says.
TEST(AllowListTest, NumericFormsAndMappedAddressesCannotReachLoopback) {
  AllowList list = List("example.com, 10.0.0.0/8");
  const IpAddress loopback = Ip("127.0.0.1");
  for (const char* host : {"2130706433", "0x7f.1", "127.1", "0177.0.0.1",
                           "::ffff:127.0.0.1", "localhost", "127.0.0.1"}) {
    EXPECT_FALSE(list.Allows(host, loopback, 80)) << host;
  }
  // An IPv4-mapped IPv6 connection is matched as the IPv4 it carries.
  AllowList loop = List("127.0.0.0/8");
  EXPECT_TRUE(loop.Allows("x", Ip("::ffff:127.0.0.1"), 80));
  EXPECT_FALSE(List("::1").Allows("x", Ip("::ffff:127.0.0.1"), 80));
}

TEST(AllowListTest, BadEntriesAreNamed) {
  EXPECT_THAT(AllowList::Parse("10.0.0.0/33"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--http_allow: \"10.0.0.0/33\": the prefix length must "
                       "be from 0 to 32"));
  EXPECT_THAT(AllowList::Parse("example.com:0"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the port must be from 1 to 65535")));
  EXPECT_THAT(AllowList::Parse("2130706433"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("numeric forms like 2130706433")));
  EXPECT_THAT(AllowList::Parse("[::1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not an IPv6 address in brackets")));
  EXPECT_THAT(AllowList::Parse("exa_mple.com"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"exa_mple.com\"")));
}

TEST(AllowListTest, BehindAProxyTheUrlHostIsCheckedAsWritten) {
  AllowList list = List("api.example.com:443, *.internal, 10.0.0.0/8");
  EXPECT_TRUE(list.AllowsUrlHost("api.example.com", 443));
  EXPECT_FALSE(list.AllowsUrlHost("api.example.com", 80));
  EXPECT_TRUE(list.AllowsUrlHost("users.internal", 80));
  EXPECT_TRUE(list.AllowsUrlHost("10.1.2.3", 80));
  EXPECT_TRUE(list.AllowsUrlHost("::ffff:10.1.2.3", 80));
  // A name is not an address, and numeric forms are neither.
  EXPECT_FALSE(list.AllowsUrlHost("11.0.0.1", 80));
  EXPECT_FALSE(list.AllowsUrlHost("167772161", 80));  // 10.0.0.1
  EXPECT_FALSE(list.AllowsUrlHost("0xa.1", 80));
  EXPECT_FALSE(list.AllowsUrlHost("evil.example.com", 443));
}

}  // namespace
}  // namespace weft::handlers
