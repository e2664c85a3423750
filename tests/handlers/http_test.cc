// The http handler against the local HTTP fixture: values, errors and their
// codes, timeouts, cancellation seen by the server, bodies, redirects, the
// SSRF guard with every bypass form, proxies, and 1,000 calls at once on a
// fixed number of threads.

#include "server/handlers/http.h"

#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/engine/event_loop.h"
#include "tests/fixture/http_fixture.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"

namespace weft::handlers {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::weft::testing::FromJson;
using ::weft::testing::HttpFixture;
using ::weft::testing::StatusIs;
using ::weft::testing::ToJson;

// The threads of this process, from /proc.
int ThreadCount() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
  }
  return n;
}

// A port nothing listens on: bound, then closed.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Where a call's result lands; shared with the callback, which may outlive
// a failed wait.
struct Outcome {
  weft::testing::Notification done;
  CallResult result = absl::UnknownError("not done");
};

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fixture = HttpFixture::Start();
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *std::move(fixture);
    client_ = MakeClient(absl::StrCat("127.0.0.1:", fixture_->port()));
  }

  static std::unique_ptr<HttpClient> MakeClient(absl::string_view allow,
                                                std::string proxy = "",
                                                int per_host = 0) {
    HttpOptions options;
    options.max_connections_per_host = per_host;
    auto list = AllowList::Parse(allow);
    EXPECT_TRUE(list.ok()) << list.status();
    options.allow = *std::move(list);
    options.proxy = std::move(proxy);
    auto client = HttpClient::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  // Checks and prepares `args_json` the way the plan compiler does.
  absl::StatusOr<std::unique_ptr<handlers::Call>> Prepare(
      HttpClient& client, absl::string_view args_json) {
    registries_.push_back(std::make_unique<HandlerRegistry>());
    EXPECT_TRUE(RegisterHttpHandler(*registries_.back(), client).ok());
    const Handler* handler = registries_.back()->Find("http");
    args_.push_back(std::make_unique<google::protobuf::Struct>(
        FromJson<google::protobuf::Struct>(args_json)));
    if (absl::Status s = CheckArgs(handler->info(), *args_.back()); !s.ok()) {
      return s;
    }
    return handler->Prepare(*args_.back());
  }

  // Starts a call; its result lands in the returned Outcome.
  std::shared_ptr<Outcome> Start(HttpClient& client,
                                 absl::string_view args_json,
                                 engine::CancellationToken token = {}) {
    auto outcome = std::make_shared<Outcome>();
    auto call = Prepare(client, args_json);
    if (!call.ok()) {
      outcome->result = call.status();
      outcome->done.Notify();
      return outcome;
    }
    calls_.push_back(*std::move(call));
    calls_.back()->Start(CallContext{loop_, token},
                         [outcome](CallResult r) mutable {
                           outcome->result = std::move(r);
                           outcome->done.Notify();
                         });
    return outcome;
  }

  CallResult Fetch(HttpClient& client, absl::string_view args_json) {
    std::shared_ptr<Outcome> o = Start(client, args_json);
    EXPECT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
    return o->result;
  }
  CallResult Fetch(absl::string_view args_json) {
    return Fetch(*client_, args_json);
  }

  std::string Url(absl::string_view path) const { return fixture_->Url(path); }

  engine::EventLoop loop_{2};
  std::unique_ptr<HttpFixture> fixture_;
  std::vector<std::unique_ptr<HandlerRegistry>> registries_;
  std::vector<std::unique_ptr<google::protobuf::Struct>> args_;
  std::vector<std::unique_ptr<handlers::Call>> calls_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpTest, GetReturnsStatusHeadersAndTheJsonBodyParsed) {
  CallResult r = Fetch(absl::StrCat(R"({"url": ")", Url("/users/42"), R"("})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& f = r->struct_value().fields();
  EXPECT_EQ(f.at("status").number_value(), 200);
  EXPECT_EQ(
      f.at("headers").struct_value().fields().at("content-type").string_value(),
      "application/json");
  EXPECT_EQ(ToJson(f.at("body")), R"({"id":42,"name":"Ada Lovelace"})");
}

TEST_F(HttpTest, PostSendsAJsonBodyAndAStringBodyAsTheyAre) {
  CallResult r =
      Fetch(absl::StrCat(R"({"method": "POST", "url": ")", Url("/send"),
                         R"(", "body": {"to": "ada@example.com"}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& body = r->struct_value().fields().at("body").struct_value();
  EXPECT_EQ(body.fields().at("method").string_value(), "POST");
  EXPECT_EQ(body.fields().at("body").string_value(),
            R"({"to":"ada@example.com"})");

  r = Fetch(absl::StrCat(R"({"method": "PUT", "url": ")", Url("/notes/1"),
                         R"(", "body": "plain words"})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& put = r->struct_value().fields().at("body").struct_value();
  EXPECT_EQ(put.fields().at("method").string_value(), "PUT");
  EXPECT_EQ(put.fields().at("body").string_value(), "plain words");
}

TEST_F(HttpTest, TextBodiesAreStringsAndBinaryBodiesAreBase64) {
  CallResult text =
      Fetch(absl::StrCat(R"({"url": ")", Url("/t?bytes=5"), R"("})"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->struct_value().fields().at("body").string_value(), "xxxxx");

  CallResult binary =
      Fetch(absl::StrCat(R"({"url": ")", Url("/b?binary=300"), R"("})"));
  ASSERT_TRUE(binary.ok()) << binary.status();
  const auto& f = binary->struct_value().fields();
  EXPECT_FALSE(f.contains("body"));
  std::string bytes;
  ASSERT_TRUE(absl::Base64Unescape(f.at("body_base64").string_value(), &bytes));
  ASSERT_EQ(bytes.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(static_cast<unsigned char>(bytes[i]), i & 0xff) << i;
  }
}

TEST_F(HttpTest, BigBodiesNeedALargerMaxResponseBytes) {
  const std::string big = Url("/big?bytes=2097152");  // 2 MiB.
  EXPECT_THAT(Fetch(absl::StrCat(R"({"url": ")", big, R"("})")).status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("larger than 1048576 bytes "
                                 "(args.max_response_bytes)")));
  EXPECT_EQ(common::Reason(
                Fetch(absl::StrCat(R"({"url": ")", big, R"("})")).status()),
            "HTTP_RESPONSE_TOO_LARGE");
  CallResult r = Fetch(absl::StrCat(R"({"url": ")", big,
                                    R"(", "max_response_bytes": 3145728})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->struct_value().fields().at("body").string_value(),
            std::string(2097152, 'x'));
}

TEST_F(HttpTest, StatusesOutsideAcceptStatusMapToCodesRetriesUnderstand) {
  const std::vector<std::pair<int, absl::StatusCode>> cases = {
      {404, absl::StatusCode::kNotFound},
      {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},
      {429, absl::StatusCode::kUnavailable},
      {500, absl::StatusCode::kUnavailable},
      {503, absl::StatusCode::kUnavailable},
      {400, absl::StatusCode::kFailedPrecondition},
      {409, absl::StatusCode::kFailedPrecondition},
      {302, absl::StatusCode::kFailedPrecondition},
  };
  for (const auto& [status, code] : cases) {
    SCOPED_TRACE(status);
    const std::string url = Url(absl::StrCat("/x?status=", status));
    CallResult r = Fetch(absl::StrCat(R"({"url": ")", url, R"("})"));
    EXPECT_THAT(r.status(),
                StatusIs(code, AllOf(HasSubstr(absl::StrCat(
                                         "GET ", url, " answered ", status)),
                                     HasSubstr("args.accept_status is 200-299"),
                                     HasSubstr("\"path\": \"/x\""))));
    EXPECT_FALSE(IsPermanent(r.status()));
    EXPECT_EQ(common::Reason(r.status()), "HTTP_STATUS");
    EXPECT_EQ(common::ReasonMetadata(r.status(), "status"),
              absl::StrCat(status));
  }
  // A status the call accepts is a value like any other.
  CallResult accepted =
      Fetch(absl::StrCat(R"({"url": ")", Url("/x?status=404"),
                         R"(", "accept_status": [200, "400-404"]})"));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->struct_value().fields().at("status").number_value(), 404);
  EXPECT_EQ(CodeForHttpStatus(599), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(418), absl::StatusCode::kFailedPrecondition);
}

TEST_F(HttpTest, APerHostLimitMakesCallsWaitForAConnection) {
  auto client = MakeClient(absl::StrCat("127.0.0.1:", fixture_->port()), "", 2);
  std::vector<std::shared_ptr<Outcome>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(Start(
        *client, absl::StrCat(R"({"url": ")", Url("/x?delay=100"), R"("})")));
  }
  for (auto& o : calls) {
    ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
    EXPECT_TRUE(o->result.ok()) << o->result.status();
  }
  // Six calls at once, two connections: the others waited and reused them.
  EXPECT_EQ(client->connections_opened(), 2);
  EXPECT_EQ(fixture_->connections(), 2);
  EXPECT_EQ(client->calls(HttpClient::Outcome::kOk), 6);
}

TEST_F(HttpTest, CallsAreCountedByHowTheyEnded) {
  EXPECT_TRUE(Fetch(absl::StrCat(R"({"url": ")", Url("/x"), R"("})")).ok());
  EXPECT_FALSE(
      Fetch(absl::StrCat(R"({"url": ")", Url("/x?status=503"), R"("})")).ok());
  EXPECT_FALSE(Fetch(R"({"url": "http://10.1.2.3:1/"})").ok());
  EXPECT_FALSE(Fetch(absl::StrCat(R"({"url": ")", Url("/x?delay=30000"),
                                  R"(", "timeout": "0.05s"})"))
                   .ok());
  EXPECT_EQ(client_->calls(HttpClient::Outcome::kOk), 1);
  EXPECT_EQ(client_->calls(HttpClient::Outcome::kHttpStatus), 1);
  EXPECT_EQ(client_->calls(HttpClient::Outcome::kNotAllowed), 1);
  EXPECT_EQ(client_->calls(HttpClient::Outcome::kTimeout), 1);
  EXPECT_EQ(client_->calls(HttpClient::Outcome::kUnreachable), 0);
  EXPECT_EQ(HttpClient::OutcomeName(HttpClient::Outcome::kNotAllowed),
            "not_allowed");
}

TEST_F(HttpTest, NobodyListeningIsUnavailable) {
  const int port = ClosedPort();
  auto client = MakeClient(absl::StrCat("127.0.0.1:", port));
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/x");
  const absl::Status s =
      Fetch(*client, absl::StrCat(R"({"url": ")", url, R"("})")).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          HasSubstr(absl::StrCat("GET ", url, ": "))));
  EXPECT_EQ(common::Reason(s), "HTTP_UNREACHABLE");
}

TEST_F(HttpTest, ItsOwnTimeoutIsDeadlineExceededAndTheServerSeesTheClose) {
  CallResult r = Fetch(absl::StrCat(R"({"url": ")", Url("/slow?delay=30000"),
                                    R"(", "timeout": "0.2s"})"));
  EXPECT_THAT(r.status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("no answer within 200ms (args.timeout)")));
  EXPECT_EQ(common::Reason(r.status()), "HTTP_TIMEOUT");
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
}

TEST_F(HttpTest, CancellationEndsTheCallAtOnceAndClosesTheConnection) {
  engine::CancellationSource source;
  std::shared_ptr<Outcome> o = Start(
      *client_, absl::StrCat(R"({"url": ")", Url("/hang?hang=1"), R"("})"),
      source.token());
  ASSERT_TRUE(weft::testing::WaitFor([&] { return fixture_->waiting() == 1; }));
  EXPECT_FALSE(o->done.HasBeenNotified());
  source.Cancel(absl::CancelledError("cancelled: lost the race"));
  ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(o->result.status(), StatusIs(absl::StatusCode::kCancelled,
                                           "cancelled: lost the race"));
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
  // The call ended at the cancel; the IO thread lets the transfer go soon
  // after.
  EXPECT_TRUE(weft::testing::WaitFor([&] { return client_->active() == 0; }));
}

TEST_F(HttpTest, AnAlreadyCancelledTokenNeverReachesTheServer) {
  engine::CancellationSource source;
  source.Cancel(absl::CancelledError("cancelled before the start"));
  std::shared_ptr<Outcome> o =
      Start(*client_, absl::StrCat(R"({"url": ")", Url("/x"), R"("})"),
            source.token());
  ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(o->result.status(), StatusIs(absl::StatusCode::kCancelled,
                                           "cancelled before the start"));
  EXPECT_EQ(fixture_->requests(), 0);
}

TEST_F(HttpTest, DestroyingTheClientEndsWhatIsInFlight) {
  std::shared_ptr<Outcome> o = Start(
      *client_, absl::StrCat(R"({"url": ")", Url("/hang?hang=1"), R"("})"));
  ASSERT_TRUE(weft::testing::WaitFor([&] { return fixture_->waiting() == 1; }));
  client_.reset();
  ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(o->result.status(),
              StatusIs(absl::StatusCode::kCancelled, "weftd is shutting down"));
  EXPECT_EQ(common::Reason(o->result.status()), "SHUTTING_DOWN");
}

TEST_F(HttpTest, RedirectsAreFollowedOnlyWhenAsked) {
  const std::string hop = Url(absl::StrCat("/hop?location=", Url("/users/42")));
  EXPECT_THAT(Fetch(absl::StrCat(R"({"url": ")", hop, R"("})")).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("answered 302")));
  CallResult r = Fetch(
      absl::StrCat(R"({"url": ")", hop, R"(", "follow_redirects": true})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ToJson(r->struct_value().fields().at("body")),
            R"({"id":42,"name":"Ada Lovelace"})");

  // Ten hops are followed; an eleventh is an error.
  CallResult ten = Fetch(absl::StrCat(R"({"url": ")", Url("/x?redirects=10"),
                                      R"(", "follow_redirects": true})"));
  ASSERT_TRUE(ten.ok()) << ten.status();
  EXPECT_EQ(ten->struct_value().fields().at("status").number_value(), 200);
  const absl::Status eleven =
      Fetch(absl::StrCat(R"({"url": ")", Url("/x?redirects=11"),
                         R"(", "follow_redirects": true})"))
          .status();
  EXPECT_THAT(eleven, StatusIs(absl::StatusCode::kOutOfRange,
                               HasSubstr("more than 10 redirects")));
  EXPECT_EQ(common::Reason(eleven), "HTTP_TOO_MANY_REDIRECTS");
}

TEST_F(HttpTest, OnlyHttpAndHttpsUrlsAreAccepted) {
  for (const char* url :
       {"file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/x",
        "dict://127.0.0.1:11211/", "not a url", "http://"}) {
    SCOPED_TRACE(url);
    EXPECT_THAT(
        Fetch(absl::StrCat(R"({"url": ")", url, R"("})")).status(),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("args.url: ")));
  }
  // Nor in a redirect.
  EXPECT_THAT(
      Fetch(absl::StrCat(R"({"url": ")",
                         Url("/hop?location=file:///etc/passwd"),
                         R"(", "follow_redirects": true})"))
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("redirected to \"file:///etc/passwd\": only http and "
                         "https URLs are allowed")));
}

TEST_F(HttpTest, BadArgumentsAreRejectedBeforeAnythingRuns) {
  const std::string url = Url("/x");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("method": "GET /admin")", "args.method: \"GET /admin\" is not"},
      {R"("headers": {"X-A": 1})", "args.headers.X-A: expected a string"},
      {R"("headers": {"X-A": "a\r\nHost: evil"})",
       "args.headers.X-A: must not hold CR, LF or NUL"},
      {R"("headers": {"Bad Name": "v"})", "args.headers: \"Bad Name\" is not"},
      {R"("accept_status": [])", "args.accept_status: must list at least one"},
      {R"("accept_status": ["2xx"])", "args.accept_status[0]: expected a"},
      {R"("accept_status": [700])", "args.accept_status[0]: statuses are"},
      {R"("accept_status": ["300-200"])", "args.accept_status[0]: statuses"},
      {R"("max_response_bytes": 0)", "args.max_response_bytes: must be"},
      {R"("timeout": "soon")", "args.timeout: \"soon\" is not a duration"},
      {R"("follow_redirects": "yes")", "args.follow_redirects: expected"},
  };
  for (const auto& [extra, message] : cases) {
    SCOPED_TRACE(extra);
    EXPECT_THAT(
        Prepare(*client_,
                absl::StrCat(R"({"url": ")", url, R"(", )", extra, "}"))
            .status(),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)));
  }
  EXPECT_EQ(fixture_->requests(), 0);
}

// --- The SSRF guard. ---

TEST_F(HttpTest, WithNothingAllowedEveryCallIsRefusedNamingTheFlag) {
  auto client = MakeClient("");
  CallResult r =
      Fetch(*client, absl::StrCat(R"({"url": ")", Url("/x"), R"("})"));
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kPermissionDenied,
                                   HasSubstr("set --http_allow")));
  EXPECT_TRUE(IsPermanent(r.status()));
  EXPECT_EQ(common::Reason(r.status()), "URL_NOT_ALLOWED");
  EXPECT_EQ(common::ReasonMetadata(r.status(), "flag"), "--http_allow");
  EXPECT_EQ(fixture_->requests(), 0);
}

TEST_F(HttpTest, EveryNumericAndDnsFormOfAnAddressNotAllowedIsRefused) {
  // Only a name that is not this machine is allowed.
  auto client = MakeClient("api.example.com");
  const int port = fixture_->port();
  for (absl::string_view host :
       {"127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1",
        "127.1", "017700000001", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
        "[::1]", "localhost", "LOCALHOST", "127.0.0.1.nip.io"}) {
    SCOPED_TRACE(host);
    const std::string url = absl::StrCat("http://", host, ":", port, "/x");
    CallResult r = Fetch(*client, absl::StrCat(R"({"url": ")", url, R"("})"));
    if (host == "127.0.0.1.nip.io" &&
        r.status().code() == absl::StatusCode::kUnavailable) {
      continue;  // No DNS on this machine: refused by resolution instead.
    }
    EXPECT_THAT(r.status(),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("is not allowed by --http_allow "
                                         "(api.example.com)"),
                               HasSubstr(absl::StrCat(" port ", port)))));
    EXPECT_TRUE(IsPermanent(r.status()));
  }
  EXPECT_EQ(fixture_->connections(), 0);
}

TEST_F(HttpTest, TheRefusalNamesTheAddressItWouldHaveReached) {
  auto client = MakeClient("10.0.0.0/8");
  const std::string url =
      absl::StrCat("http://2130706433:", fixture_->port(), "/x");
  EXPECT_THAT(
      Fetch(*client, absl::StrCat(R"({"url": ")", url, R"("})")).status(),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr(absl::StrCat("the destination 127.0.0.1 port ",
                                      fixture_->port(),
                                      " is not allowed by "
                                      "--http_allow (10.0.0.0/8)"))));
}

TEST_F(HttpTest, AnAllowedAddressIsReachedWhateverFormTheUrlWritesItIn) {
  // The operator allowed the address: numeric forms of it are that address.
  for (absl::string_view host :
       {"2130706433", "[::ffff:127.0.0.1]", "localhost"}) {
    SCOPED_TRACE(host);
    CallResult r = Fetch(absl::StrCat(R"({"url": "http://)", host, ":",
                                      fixture_->port(), R"(/users/42"})"));
    EXPECT_TRUE(r.ok()) << r.status();
  }
}

TEST_F(HttpTest, ARedirectCannotReachAnAddressThatIsNotAllowed) {
  auto other = HttpFixture::Start();
  ASSERT_TRUE(other.ok());
  // Allowed: the fixture's port only; the other fixture is on another port.
  for (const std::string& target :
       {(*other)->Url("/secret"),
        absl::StrCat("http://2130706433:", (*other)->port(), "/secret"),
        absl::StrCat("http://localhost:", (*other)->port(), "/secret")}) {
    SCOPED_TRACE(target);
    CallResult r = Fetch(absl::StrCat(
        R"({"url": ")", Url(absl::StrCat("/hop?location=", target)),
        R"(", "follow_redirects": true})"));
    EXPECT_THAT(
        r.status(),
        StatusIs(absl::StatusCode::kPermissionDenied,
                 HasSubstr(absl::StrCat(" port ", (*other)->port(),
                                        " is not allowed by --http_allow"))));
  }
  EXPECT_EQ((*other)->connections(), 0);
}

TEST_F(HttpTest, ProxyVariablesInTheEnvironmentAreIgnored) {
  auto proxy = HttpFixture::Start();
  ASSERT_TRUE(proxy.ok());
  const std::string proxy_url = (*proxy)->Url("");
  for (const char* name :
       {"http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
    setenv(name, proxy_url.c_str(), 1);
  }
  CallResult r = Fetch(absl::StrCat(R"({"url": ")", Url("/users/42"), R"("})"));
  for (const char* name :
       {"http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
    unsetenv(name);
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fixture_->requests(), 1);
  EXPECT_EQ((*proxy)->connections(), 0);
}

TEST_F(HttpTest, WithHttpProxyTheUrlHostIsCheckedAndTheProxyCarriesTheCall) {
  auto proxy = HttpFixture::Start();
  ASSERT_TRUE(proxy.ok());
  auto client = MakeClient("api.example.com, 10.1.2.3", (*proxy)->Url(""));
  // Allowed by name: the proxy gets the request (the fixture echoes it).
  CallResult r =
      Fetch(*client, R"({"url": "http://api.example.com/v1/things"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*proxy)->requests(), 1);
  // Not allowed, in any form: refused before the proxy hears of it.
  for (const char* url : {"http://127.0.0.1/x", "http://2130706433/x",
                          "http://evil.example.com/x", "http://localhost/x"}) {
    SCOPED_TRACE(url);
    EXPECT_THAT(
        Fetch(*client, absl::StrCat(R"({"url": ")", url, R"("})")).status(),
        StatusIs(absl::StatusCode::kPermissionDenied,
                 HasSubstr("is not allowed by --http_allow")));
  }
  EXPECT_EQ((*proxy)->requests(), 1);
}

// --- Scale. ---

TEST_F(HttpTest, AThousandCallsAtOnceAllAnswerOnAFixedNumberOfThreads) {
  constexpr int kCalls = 1000;
  // Two sockets a call in this process (client and fixture): raise the soft
  // open-file limit to the hard one, as weftd does.
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = limit.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_GE(limit.rlim_cur, rlim_t{2 * kCalls + 100})
      << "the hard limit on open files is too low for this test";
  const int threads_before = ThreadCount();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  const std::string args =
      absl::StrCat(R"({"url": ")", Url("/slow?delay=200"), R"("})");
  for (int i = 0; i < kCalls; ++i) outcomes.push_back(Start(*client_, args));
  int most_threads = 0;
  ASSERT_TRUE(weft::testing::WaitFor([&] {
    most_threads = std::max(most_threads, ThreadCount());
    for (const auto& o : outcomes) {
      if (!o->done.HasBeenNotified()) return false;
    }
    return true;
  }));
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o->result.ok()) << o->result.status();
    EXPECT_EQ(o->result->struct_value().fields().at("status").number_value(),
              200);
  }
  EXPECT_EQ(fixture_->requests(), kCalls);
  // The client's IO thread and the event loop's: no thread per call.
  EXPECT_LE(most_threads, threads_before + 2);
}

TEST_F(HttpTest, AJsonBodyNestedTooDeeplyFailsAtOnceAndOtherCallsGoOn) {
  // 100,000 levels, 200 KB: protobuf's parser held the IO thread for
  // minutes with this.
  std::shared_ptr<Outcome> deep =
      Start(*client_,
            absl::StrCat(R"({"url": ")", Url("/deep?nested=100000"), R"("})"));
  CallResult other =
      Fetch(absl::StrCat(R"({"url": ")", Url("/users/42"), R"("})"));
  EXPECT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(deep->done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(deep->result.status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("the JSON body is line 1, column 33: nested "
                                 "deeper than 32 levels")));
  EXPECT_TRUE(IsPermanent(deep->result.status()));
  EXPECT_EQ(common::Reason(deep->result.status()), "VALUE_TOO_DEEP");
  // Within the limit, it is a value like any other.
  CallResult fine =
      Fetch(absl::StrCat(R"({"url": ")", Url("/deep?nested=32"), R"("})"));
  ASSERT_TRUE(fine.ok()) << fine.status();
}

TEST_F(HttpTest, HugeResponseHeadersAreAClearErrorThatIsNotRetried) {
  // One header of 200 KB (libcurl refuses lines over 100 KB itself), and
  // one of 80 KB (over weft's 64 KiB for all headers).
  CallResult r = Fetch(
      absl::StrCat(R"({"url": ")", Url("/h?header_bytes=200000"), R"("})"));
  EXPECT_THAT(r.status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("the response headers are larger than "
                                 "libcurl accepts")));
  EXPECT_TRUE(IsPermanent(r.status()));
  r = Fetch(
      absl::StrCat(R"({"url": ")", Url("/h?header_bytes=80000"), R"("})"));
  EXPECT_THAT(r.status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("the response headers are larger than 65536 "
                                 "bytes")));
  EXPECT_TRUE(IsPermanent(r.status()));
  CallResult ok =
      Fetch(absl::StrCat(R"({"url": ")", Url("/h?header_bytes=1000"), R"("})"));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(HttpTest, ABodyTheMemoryBudgetCannotTakeIsRefused) {
  engine::MemoryBudget budget(100'000, "bodies", "--max_inflight_bytes");
  HttpOptions options;
  options.allow =
      *AllowList::Parse(absl::StrCat("127.0.0.1:", fixture_->port()));
  options.memory = &budget;
  auto client = HttpClient::Create(std::move(options));
  ASSERT_TRUE(client.ok());
  CallResult r = Fetch(
      **client, absl::StrCat(R"({"url": ")", Url("/b?bytes=200000"), R"("})"));
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kResourceExhausted,
                                   HasSubstr("--max_inflight_bytes")));
  EXPECT_EQ(common::Reason(r.status()), "MEMORY_EXHAUSTED");
  EXPECT_EQ(common::ReasonMetadata(r.status(), "flag"), "--max_inflight_bytes");
  CallResult small = Fetch(
      **client, absl::StrCat(R"({"url": ")", Url("/b?bytes=1000"), R"("})"));
  EXPECT_TRUE(small.ok()) << small.status();
  calls_.clear();
  EXPECT_TRUE(weft::testing::WaitFor([&] { return budget.used() == 0; }));
}

TEST_F(HttpTest, NoConnectionOpensOnceTheCallsAreCancelled) {
  constexpr int kCalls = 400;
  engine::CancellationSource source;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  const std::string args =
      absl::StrCat(R"({"url": ")", Url("/hang?hang=1"), R"("})");
  for (int i = 0; i < kCalls; ++i) {
    outcomes.push_back(Start(*client_, args, source.token()));
  }
  source.Cancel(absl::CancelledError("the caller's deadline passed"));
  const int64_t opened = client_->connections_opened();
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
    EXPECT_THAT(o->result.status(), StatusIs(absl::StatusCode::kCancelled,
                                             "the caller's deadline passed"));
  }
  ASSERT_TRUE(weft::testing::WaitFor([&] { return client_->active() == 0; }));
  // One may have been between the check and the socket when the cancel came.
  EXPECT_LE(client_->connections_opened(), opened + 1);
}

TEST_F(HttpTest, ItsOwnTimeoutEndsTheCallOnTheEngineClock) {
  // The call ends when its timeout passes even before libcurl's own timer:
  // its completion does not wait for the IO thread.
  std::shared_ptr<Outcome> o =
      Start(*client_, absl::StrCat(R"({"url": ")", Url("/hang?hang=1"),
                                   R"(", "timeout": "0.1s"})"));
  ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(weft::testing::kWait));
  EXPECT_THAT(o->result.status(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                           HasSubstr("(args.timeout)")));
  EXPECT_TRUE(weft::testing::WaitFor(
      [&] { return fixture_->closed_before_answer() == 1; }));
}

}  // namespace
}  // namespace weft::handlers
