// The --auth_tokens principals: what a file may say, and who a call is.

#include "server/auth/principals.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"

namespace weft::auth {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using weft::testing::FromJson;
using weft::testing::IsOk;
using weft::testing::StatusIs;

// printf %s alice-token | sha256sum, and the same for bob-token.
const std::string kAliceSha = TokenSha256("alice-token");
const std::string kBobSha = TokenSha256("bob-token");

std::shared_ptr<const PrincipalTable> Table(const std::string& json) {
  absl::StatusOr<std::shared_ptr<const PrincipalTable>> table =
      PrincipalTable::Create(FromJson<weft::v1::AuthTokens>(json));
  EXPECT_THAT(table, IsOk());
  return table.ok() ? *table : nullptr;
}

std::shared_ptr<const PrincipalTable> AliceAndBob() {
  return Table(R"({"principals": [
    {"name": "alice", "role": "admin", "tokenSha256": ")" +
               kAliceSha + R"("},
    {"name": "bob", "role": "user", "tokenSha256": ")" +
               kBobSha + R"(", "certificateSubject": "CN=bob,O=Example"}]})");
}

absl::Status CreateError(const std::string& json) {
  return PrincipalTable::Create(FromJson<weft::v1::AuthTokens>(json)).status();
}

TEST(TokenSha256Test, IsTheHexDigestSha256sumPrints) {
  // printf %s abc | sha256sum
  EXPECT_EQ(TokenSha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(PrincipalTableTest, ATokenNamesItsPrincipalAndRole) {
  std::shared_ptr<const PrincipalTable> table = AliceAndBob();
  absl::StatusOr<Principal> alice =
      table->Authenticate("Bearer alice-token", "");
  ASSERT_THAT(alice, IsOk());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_TRUE(alice->admin());
  absl::StatusOr<Principal> bob = table->Authenticate("Bearer bob-token", "");
  ASSERT_THAT(bob, IsOk());
  EXPECT_EQ(bob->name, "bob");
  EXPECT_FALSE(bob->admin());
  EXPECT_EQ(table->size(), 2);
}

TEST(PrincipalTableTest,
     TheSchemeIsCaseInsensitiveAndSpaceAroundTheTokenIgnored) {
  std::shared_ptr<const PrincipalTable> table = AliceAndBob();
  absl::StatusOr<Principal> p = table->Authenticate("bearer   bob-token ", "");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->name, "bob");
  EXPECT_THAT(table->Authenticate("BEARER alice-token", ""), IsOk());
}

TEST(PrincipalTableTest, NoCredentialsIsCredentialsMissing) {
  absl::Status s = AliceAndBob()->Authenticate("", "").status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated,
                          HasSubstr("authorization: Bearer TOKEN")));
  EXPECT_EQ(common::Reason(s), common::kCredentialsMissing);
}

TEST(PrincipalTableTest, AnUnknownTokenIsInvalidAndNamesNoPrincipal) {
  for (const char* header : {"Bearer nope", "Bearer ", "Bearer alice-token2"}) {
    absl::Status s = AliceAndBob()->Authenticate(header, "").status();
    EXPECT_THAT(s,
                StatusIs(absl::StatusCode::kUnauthenticated,
                         AllOf(Not(HasSubstr("alice")), Not(HasSubstr("bob")))))
        << header;
    EXPECT_EQ(common::Reason(s), common::kCredentialsInvalid) << header;
  }
}

TEST(PrincipalTableTest, AnotherSchemeIsInvalid) {
  for (const char* header : {"Basic YWxpY2U6eA==", "alice-token", "Bearer"}) {
    absl::Status s = AliceAndBob()->Authenticate(header, "").status();
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated,
                            HasSubstr("\"Bearer TOKEN\"")))
        << header;
    EXPECT_EQ(common::Reason(s), common::kCredentialsInvalid);
  }
}

TEST(PrincipalTableTest, ACertificateSubjectNamesItsPrincipal) {
  std::shared_ptr<const PrincipalTable> table = AliceAndBob();
  absl::StatusOr<Principal> p = table->Authenticate("", "CN=bob,O=Example");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->name, "bob");
  // Exactly the subject: another order or part of it names nobody.
  for (const char* subject : {"O=Example,CN=bob", "CN=bob", "CN=alice"}) {
    absl::Status s = table->Authenticate("", subject).status();
    EXPECT_THAT(
        s, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("bob"))))
        << subject;
    EXPECT_EQ(common::Reason(s), common::kCredentialsInvalid);
  }
}

TEST(PrincipalTableTest, ATokenDecidesOverTheCertificate) {
  std::shared_ptr<const PrincipalTable> table = AliceAndBob();
  absl::StatusOr<Principal> p =
      table->Authenticate("Bearer alice-token", "CN=bob,O=Example");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->name, "alice");
  EXPECT_THAT(table->Authenticate("Bearer wrong", "CN=bob,O=Example"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("token")));
}

TEST(PrincipalTableTest, AnUppercaseDigestInTheFileMatches) {
  std::string upper = kBobSha;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  std::shared_ptr<const PrincipalTable> table = Table(
      R"({"principals": [{"name": "bob", "role": "user", "tokenSha256": ")" +
      upper + R"("}]})");
  EXPECT_THAT(table->Authenticate("Bearer bob-token", ""), IsOk());
}

TEST(PrincipalTableTest, BadFilesNameTheFieldAtFault) {
  const std::string ok = R"("tokenSha256": ")" + kAliceSha + R"(")";
  struct Case {
    std::string json;
    std::string says;
  };
  const Case cases[] = {
      {R"({"principals": [{"name": "", "role": "user", )" + ok + "}]}",
       "principals[0].name: must be 1 to 128"},
      {R"({"principals": [{"name": "a b", "role": "user", )" + ok + "}]}",
       "principals[0].name: must be 1 to 128"},
      {R"({"principals": [{"name": ")" + std::string(129, 'a') +
           R"(", "role": "user", )" + ok + "}]}",
       "principals[0].name: must be 1 to 128"},
      {R"({"principals": [{"name": "a", "role": "root", )" + ok + "}]}",
       "principals[0].role: must be \"admin\" or \"user\", got \"root\""},
      {R"({"principals": [{"name": "a", "role": "user"}]})",
       "principals[0].tokenSha256: a principal needs a tokenSha256, a "
       "certificateSubject or both"},
      {R"({"principals": [{"name": "a", "role": "user", "tokenSha256": "s3cret"}]})",
       "principals[0].tokenSha256: must be the token's SHA-256 as 64 hex"},
      {R"({"principals": [{"name": "a", "role": "user", "tokenSha256": ")" +
           std::string(64, 'g') + R"("}]})",
       "principals[0].tokenSha256: must be the token's SHA-256"},
      {R"({"principals": [{"name": "a", "role": "user", )" + ok +
           R"(}, {"name": "a", "role": "admin", "tokenSha256": ")" + kBobSha +
           R"("}]})",
       "principals[1].name: \"a\" is named by an earlier principal"},
      {R"({"principals": [{"name": "a", "role": "user", )" + ok +
           R"(}, {"name": "b", "role": "admin", )" + ok + "}]}",
       "principals[1].tokenSha256: an earlier principal has the same token"},
      {R"({"principals": [{"name": "a", "role": "user", "certificateSubject": "CN=a"},
                          {"name": "b", "role": "user", "certificateSubject": "CN=a"}]})",
       "principals[1].certificateSubject: an earlier principal has the same "
       "subject"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(CreateError(c.json),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.says)))
        << c.json;
  }
}

TEST(PrincipalTableTest, AnEmptyFileAdmitsNobody) {
  std::shared_ptr<const PrincipalTable> table = Table("{}");
  EXPECT_EQ(table->size(), 0);
  EXPECT_THAT(table->Authenticate("Bearer x", ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("token")));
}

TEST(CallersTest, OffEveryCallIsTheAnonymousAdmin) {
  Callers off;
  EXPECT_FALSE(off.enabled());
  absl::StatusOr<Principal> p = off.Authenticate("", "");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->name, "");
  EXPECT_TRUE(p->admin());
  // Whatever the call sends.
  EXPECT_THAT(off.Authenticate("Bearer anything", ""), IsOk());
}

TEST(CallersTest, ReplaceTakesEffectForTheNextCall) {
  Callers callers(AliceAndBob());
  EXPECT_TRUE(callers.enabled());
  EXPECT_THAT(callers.Authenticate("Bearer bob-token", ""), IsOk());
  callers.Replace(Table(R"({"principals": [{"name": "alice", "role": "admin",
                                            "tokenSha256": ")" +
                        kAliceSha + R"("}]})"));
  EXPECT_THAT(callers.Authenticate("Bearer bob-token", ""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("token")));
  EXPECT_THAT(callers.Authenticate("Bearer alice-token", ""), IsOk());
  // A null table is ignored: auth stays on with the table in force.
  callers.Replace(nullptr);
  EXPECT_THAT(callers.Authenticate("Bearer alice-token", ""), IsOk());
  EXPECT_THAT(
      callers.Authenticate("", ""),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer")));
}

}  // namespace
}  // namespace weft::auth
