#include "server/handlers/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/errors.h"
#include "server/common/text.h"
#include "server/engine/sync.h"
#include "server/handlers/json.h"

namespace weft::handlers {
namespace {

using engine::Mutex;
using engine::MutexLock;

// libcurl's process-wide set-up, once, before any thread uses it.
void GlobalInit() {
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)code;
}

// A URL's parts, as libcurl's URL parser reads them.
struct UrlParts {
  std::string scheme;
  std::string host;  // Without brackets.
  int port = 0;
};

// INVALID_ARGUMENT unless `url` is an absolute http or https URL with a host.
absl::StatusOr<UrlParts> ParseUrl(const std::string& url) {
  CURLU* u = curl_url();
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  UrlParts parts;
  absl::Status status;
  auto part = [&](CURLUPart which, std::string* out, unsigned flags) {
    char* text = nullptr;
    if (curl_url_get(u, which, &text, flags) != CURLUE_OK) return false;
    *out = text;
    curl_free(text);
    return true;
  };
  std::string port;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    status = absl::InvalidArgumentError(absl::StrCat(
        common::Quote(url, 200), " is not an absolute http or https URL"));
  } else if (!part(CURLUPART_SCHEME, &parts.scheme, 0) ||
             (parts.scheme != "http" && parts.scheme != "https")) {
    status = absl::InvalidArgumentError(absl::StrCat(
        common::Quote(url, 200), ": only http and https URLs are allowed, not ",
        common::Quote(parts.scheme + ":")));
  } else if (!part(CURLUPART_HOST, &parts.host, 0) || parts.host.empty()) {
    status = absl::InvalidArgumentError(
        absl::StrCat(common::Quote(url, 200), " has no host"));
  } else if (!part(CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
             !absl::SimpleAtoi(port, &parts.port)) {
    status = absl::InvalidArgumentError(
        absl::StrCat(common::Quote(url, 200), " has no valid port"));
  }
  curl_url_cleanup(u);
  if (!status.ok()) return status;
  if (parts.host.size() > 2 && parts.host.front() == '[' &&
      parts.host.back() == ']') {
    parts.host = parts.host.substr(1, parts.host.size() - 2);
    // A zone id ("fe80::1%25eth0") is not part of the address.
    parts.host = parts.host.substr(0, parts.host.find('%'));
  }
  return parts;
}

}  // namespace

absl::StatusCode CodeForHttpStatus(int status) {
  if (status == 404) return absl::StatusCode::kNotFound;
  if (status == 401) return absl::StatusCode::kUnauthenticated;
  if (status == 403) return absl::StatusCode::kPermissionDenied;
  if (status == 429 || (status >= 500 && status <= 599)) {
    return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kFailedPrecondition;
}

class HttpClient::Impl {
 public:
  explicit Impl(HttpOptions options)
      : options_(std::move(options)), parse_("http-parse", 1, 1'000'000) {}

  ~Impl() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    if (thread_.joinable()) thread_.join();
    for (CURL* e : idle_easy_) curl_easy_cleanup(e);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    for (int fd : {epoll_fd_, wake_fd_}) {
      if (fd >= 0) close(fd);
    }
  }

  absl::Status Init() {
    GlobalInit();
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
      return absl::InternalError("libcurl: curl_multi_init failed");
    }
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(options_.max_idle_connections));
    // libcurl tells us which sockets to watch and when its next timeout is;
    // the IO thread waits on them with epoll, so each wake-up costs what
    // happened, not the number of transfers in flight.
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      return absl::InternalError("http client: cannot create epoll/eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "weft-http");
      Loop();
    });
    return absl::OkStatus();
  }

  int active() const { return active_.load(std::memory_order_relaxed); }
  int64_t connections_opened() const {
    return opened_.load(std::memory_order_relaxed);
  }

  void Offload(engine::Closure fn) {
    // The queue is long enough for every transfer there can be; if it is
    // full anyway, the work is dropped unrun, and its owner (which keeps
    // a deadline of its own) answers.
    parse_.Submit(std::move(fn)).IgnoreError();
  }

  void Fetch(HttpRequest request, const engine::CancellationToken& token,
             Done done) {
    absl::StatusOr<UrlParts> url = ParseUrl(request.url);
    if (!url.ok()) {
      std::move(done)(url.status());
      return;
    }
    if (absl::Status allowed = CheckBeforeStart(*url); !allowed.ok()) {
      std::move(done)(std::move(allowed));
      return;
    }
    auto t = std::make_unique<Transfer>();
    t->impl = this;
    t->id = next_id_.fetch_add(1, std::memory_order_relaxed);
    t->url = std::move(*url);
    t->request = std::move(request);
    t->current_url = t->request.url;
    t->done = std::move(done);
    t->response.memory = engine::MemoryCharge(options_.memory);
    if (t->request.timeout > absl::ZeroDuration()) {
      t->deadline = absl::Now() + t->request.timeout;
    }
    active_.fetch_add(1, std::memory_order_relaxed);
    // The callback may run at once (a cancelled token); it only records the
    // reason, which the IO thread reads when it takes the transfer.
    Transfer* raw = t.get();
    t->on_cancel.emplace(token, [this, raw](const absl::Status& reason) {
      // Seen at once by the open-socket callback: no connection is opened
      // for a cancelled transfer, however many wait before the IO thread
      // gets to the cancel.
      raw->cancelled.store(true, std::memory_order_release);
      {
        MutexLock lock(&mu_);
        raw->cancel_reason = reason;
        cancels_.push_back(raw->id);
      }
      Wake();
    });
    {
      MutexLock lock(&mu_);
      if (!stopping_) {
        incoming_.push_back(std::move(t));
        t = nullptr;
      }
    }
    if (t != nullptr) {
      t->on_cancel.reset();
      active_.fetch_sub(1, std::memory_order_relaxed);
      std::move(t->done)(
          common::WithReason(absl::CancelledError("weftd is shutting down"),
                             common::kShuttingDown));
      return;
    }
    Wake();
  }

 private:
  struct Transfer {
    Impl* impl = nullptr;
    uint64_t id = 0;
    HttpRequest request;
    UrlParts url;
    std::string current_url;
    absl::Time deadline = absl::InfiniteFuture();
    Done done;
    int redirects = 0;
    CURL* easy = nullptr;
    curl_slist* header_list = nullptr;
    HttpResponse response;
    bool too_big = false;
    // Headers received, and whether they passed max_header_bytes.
    int64_t header_bytes = 0;
    bool headers_too_big = false;
    // The blank line that ends the headers has come.
    bool headers_done = false;
    // The body's memory could not be charged.
    bool out_of_memory = false;
    std::atomic<bool> cancelled{false};
    // "127.0.0.1 port 8080" when the guard refused an address, and how many
    // sockets it allowed (this hop).
    std::string refused;
    int allowed = 0;
    char error[CURL_ERROR_SIZE] = {};
    absl::Status cancel_reason;  // Guarded by impl->mu_.
    std::optional<engine::CancellationCallback> on_cancel;
  };

  // Checks made before any connection: the allow list is not empty, and
  // with a proxy, the URL's host is allowed (the proxy hides the address).
  absl::Status CheckBeforeStart(const UrlParts& url) const {
    if (options_.allow.empty()) {
      return Permanent(common::WithReason(
          absl::PermissionDeniedError(
              "http calls are refused: weftd allows no destinations (set "
              "--http_allow, or httpAllow in the config file)"),
          common::kUrlNotAllowed, {{"flag", "--http_allow"}}));
    }
    if (!options_.proxy.empty() &&
        !options_.allow.AllowsUrlHost(url.host, url.port)) {
      return Permanent(common::WithReason(
          absl::PermissionDeniedError(absl::StrCat(
              "http: ", url.host, " port ", url.port,
              " is not allowed by --http_allow (", options_.allow.text(), ")")),
          common::kUrlNotAllowed, {{"flag", "--http_allow"}}));
    }
    return absl::OkStatus();
  }

  static curl_socket_t OpenSocket(void* clientp, curlsocktype purpose,
                                  curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(clientp);
    const HttpOptions& options = t->impl->options_;
    if (t->cancelled.load(std::memory_order_acquire)) return CURL_SOCKET_BAD;
    if (purpose == CURLSOCKTYPE_IPCXN && options.proxy.empty()) {
      int port = 0;
      std::optional<IpAddress> ip =
          IpAddress::FromSockaddr(&address->addr, &port);
      if (!ip.has_value() || !options.allow.Allows(t->url.host, *ip, port)) {
        t->refused =
            absl::StrCat(ip.has_value() ? ip->ToString() : "?", " port ", port);
        return CURL_SOCKET_BAD;
      }
      ++t->allowed;
    }
    t->impl->opened_.fetch_add(1, std::memory_order_relaxed);
    return socket(address->family, address->socktype | SOCK_CLOEXEC,
                  address->protocol);
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    const size_t bytes = size * n;
    if (static_cast<int64_t>(t->response.body.size() + bytes) >
        t->request.max_response_bytes) {
      t->too_big = true;
      return 0;  // Ends the transfer with CURLE_WRITE_ERROR.
    }
    if (!t->response.memory.TryAdd(static_cast<int64_t>(bytes))) {
      t->out_of_memory = true;
      return 0;
    }
    t->response.body.append(data, bytes);
    return bytes;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    const size_t bytes = size * n;
    t->header_bytes += static_cast<int64_t>(bytes);
    if (t->header_bytes > t->impl->options_.max_header_bytes) {
      t->headers_too_big = true;
      return 0;  // Ends the transfer with CURLE_WRITE_ERROR.
    }
    absl::string_view line(data, bytes);
    line = absl::StripTrailingAsciiWhitespace(line);
    t->headers_done = line.empty();
    if (absl::StartsWith(line, "HTTP/")) {
      // A new response (after a 100 Continue, say): start again.
      t->response.headers.clear();
      // "HTTP/1.1 503 Service Unavailable": keep the reason phrase.
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 2));
      t->response.reason =
          parts.size() == 3 ? std::string(parts[2]) : std::string();
      return bytes;
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return bytes;
    t->response.headers.emplace_back(
        absl::AsciiStrToLower(
            absl::StripAsciiWhitespace(line.substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
    return bytes;
  }

  // Sets the easy handle up for the transfer's current URL and method.
  absl::Status Configure(Transfer& t) {
    if (t.easy == nullptr && !idle_easy_.empty()) {
      // A handle kept from an earlier transfer (already reset): its buffers
      // are allocated and touched.
      t.easy = idle_easy_.back();
      idle_easy_.pop_back();
    } else if (t.easy == nullptr) {
      t.easy = curl_easy_init();
      if (t.easy == nullptr) return absl::ResourceExhaustedError("libcurl");
    } else {
      curl_easy_reset(t.easy);
    }
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, t.current_url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Impl::OpenSocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "weft");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(t.request.max_response_bytes));
    // "" means "no proxy, whatever the environment says"; no_proxy "" means
    // the proxy, when there is one, is used for every host.
    curl_easy_setopt(e, CURLOPT_PROXY, options_.proxy.c_str());
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    if (t.deadline != absl::InfiniteFuture()) {
      const int64_t ms = std::max<int64_t>(
          1, absl::ToInt64Milliseconds(t.deadline - absl::Now()));
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(ms));
    }
    const std::string& method = t.request.method;
    if (method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (t.request.has_body || method == "POST") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t.request.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.request.body.data());
      if (method != "POST") {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
    } else if (method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (t.header_list == nullptr) {
      // No "Expect: 100-continue" round trip for large bodies.
      t.header_list = curl_slist_append(nullptr, "Expect:");
      for (const auto& [name, value] : t.request.headers) {
        t.header_list = curl_slist_append(
            t.header_list, absl::StrCat(name, ": ", value).c_str());
      }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);
    return absl::OkStatus();
  }

  void Start(std::unique_ptr<Transfer> t) {
    Transfer& ref = *t;
    absl::Status status = Configure(ref);
    if (status.ok() && curl_multi_add_handle(multi_, ref.easy) != CURLM_OK) {
      status = absl::InternalError("libcurl: curl_multi_add_handle failed");
    }
    const uint64_t id = ref.id;
    transfers_.emplace(id, std::move(t));
    if (!status.ok()) Finish(id, std::move(status), /*added=*/false);
  }

  // Ends transfer `id`: frees its handles, then calls its done.
  void Finish(uint64_t id, absl::StatusOr<HttpResponse> result, bool added) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers_.erase(it);
    if (added) curl_multi_remove_handle(multi_, t->easy);
    if (t->easy != nullptr) {
      if (idle_easy_.size() < kMaxIdleEasyHandles) {
        curl_easy_reset(t->easy);
        idle_easy_.push_back(t->easy);
      } else {
        curl_easy_cleanup(t->easy);
      }
    }
    curl_slist_free_all(t->header_list);
    // After this the cancellation function is not running and never will.
    t->on_cancel.reset();
    active_.fetch_sub(1, std::memory_order_relaxed);
    std::move(t->done)(std::move(result));
  }

  // What a finished transfer (CURLMSG_DONE) amounts to; nullopt when it
  // was sent on to a redirect.
  std::optional<absl::StatusOr<HttpResponse>> Completed(Transfer& t,
                                                        CURLcode code) {
    const std::string where = absl::StrCat(
        t.request.method, " ", common::Abbreviate(t.current_url, 200));
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
      t.response.status = static_cast<int>(status);
      t.response.url = t.current_url;
      if (status >= 300 && status < 400 && t.request.max_redirects > 0) {
        return Redirect(t, where);
      }
      return std::move(t.response);
    }
    // Refused, unless another address of the same name was allowed and
    // failed in its own way (then that is the error).
    if (!t.refused.empty() && t.allowed == 0) {
      return Permanent(common::WithReason(
          absl::PermissionDeniedError(absl::StrCat(
              where, ": the destination ", t.refused,
              " is not allowed by --http_allow (",
              options_.allow.empty() ? "nothing" : options_.allow.text(), ")")),
          common::kUrlNotAllowed, {{"flag", "--http_allow"}}));
    }
    const std::string detail =
        t.error[0] != '\0' ? std::string(t.error) : curl_easy_strerror(code);
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        return common::WithReason(
            absl::DeadlineExceededError(absl::StrCat(
                where, ": no answer within ",
                absl::FormatDuration(t.request.timeout), " (args.timeout)")),
            common::kHttpTimeout);
      case CURLE_OUT_OF_MEMORY:
        // libcurl refuses one header line over 100 KB this way, before
        // the header callback sees it.
        if (!t.headers_done) {
          return Permanent(common::WithReason(
              absl::OutOfRangeError(
                  absl::StrCat(where,
                               ": the response headers are larger than libcurl "
                               "accepts (100 KB a line; weft takes ",
                               options_.max_header_bytes, " bytes in all)")),
              common::kHttpResponseTooLarge));
        }
        break;
      case CURLE_WRITE_ERROR:
      case CURLE_FILESIZE_EXCEEDED:
        if (t.headers_too_big) {
          return Permanent(common::WithReason(
              absl::OutOfRangeError(
                  absl::StrCat(where, ": the response headers are larger than ",
                               options_.max_header_bytes, " bytes")),
              common::kHttpResponseTooLarge));
        }
        if (t.out_of_memory) {
          // The budget's refusal (MEMORY_EXHAUSTED, its flag and limit),
          // saying which call.
          const absl::Status refusal =
              t.response.memory.Refusal(CURL_MAX_WRITE_SIZE, "its body");
          return common::WithMessage(
              refusal, absl::StrCat(where, ": ", refusal.message()));
        }
        if (t.too_big || code == CURLE_FILESIZE_EXCEEDED) {
          return common::WithReason(
              absl::OutOfRangeError(
                  absl::StrCat(where, ": the response body is larger than ",
                               t.request.max_response_bytes,
                               " bytes (args.max_response_bytes)")),
              common::kHttpResponseTooLarge);
        }
        break;
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_URL_MALFORMAT:
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", detail));
      default:
        break;
    }
    return common::WithReason(
        absl::UnavailableError(absl::StrCat(where, ": ", detail)),
        common::kHttpUnreachable);
  }

  // Sends `t` on to its response's Location, through the same checks as
  // the first URL.
  std::optional<absl::StatusOr<HttpResponse>> Redirect(
      Transfer& t, const std::string& where) {
    char* location = nullptr;
    curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_URL, &location);
    if (location == nullptr) return std::move(t.response);  // No Location.
    if (++t.redirects > t.request.max_redirects) {
      return common::WithReason(
          absl::OutOfRangeError(
              absl::StrCat(where, ": more than ", t.request.max_redirects,
                           " redirects (args.follow_redirects)")),
          common::kHttpTooManyRedirects);
    }
    std::string next = location;
    absl::StatusOr<UrlParts> url = ParseUrl(next);
    if (!url.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": redirected to ", url.status().message()));
    }
    if (absl::Status allowed = CheckBeforeStart(*url); !allowed.ok()) {
      return allowed;
    }
    const int status = t.response.status;
    if (status == 303 ||
        ((status == 301 || status == 302) && t.request.method == "POST")) {
      t.request.method = "GET";
      t.request.has_body = false;
      t.request.body.clear();
    }
    curl_multi_remove_handle(multi_, t.easy);
    t.url = *std::move(url);
    t.current_url = std::move(next);
    t.response.status = 0;
    t.response.reason.clear();
    t.response.headers.clear();
    t.response.body.clear();
    t.response.memory.Reset();
    t.header_bytes = 0;
    t.headers_done = false;
    t.refused.clear();
    t.allowed = 0;
    absl::Status status_ok = Configure(t);
    if (status_ok.ok() && curl_multi_add_handle(multi_, t.easy) != CURLM_OK) {
      status_ok = absl::InternalError("libcurl: curl_multi_add_handle failed");
    }
    if (!status_ok.ok()) {
      // Not in the multi handle any more; Finish must not remove it.
      curl_easy_cleanup(t.easy);
      t.easy = nullptr;
      return status_ok;
    }
    return std::nullopt;
  }

  using Clock = std::chrono::steady_clock;

  void Wake() {
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  }

  // CURLMOPT_SOCKETFUNCTION: watch `s` for what libcurl asks.
  static int OnSocket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.data.fd = s;
    if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
    if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, s, &ev) != 0 &&
        errno == ENOENT) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION: libcurl's next timeout (-1: none).
  static int OnTimer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      self->timer_.reset();
    } else {
      self->timer_ = Clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
  }

  // How long epoll may wait: until libcurl's timer, or until woken.
  int TimerWaitMs() const {
    if (!timer_.has_value()) return -1;
    const auto left = *timer_ - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    return static_cast<int>(
        std::chrono::ceil<std::chrono::milliseconds>(left).count());
  }

  void Loop() {
    std::vector<epoll_event> events(256);
    for (;;) {
      std::vector<std::unique_ptr<Transfer>> incoming;
      std::vector<std::pair<uint64_t, absl::Status>> cancels;
      bool stopping;
      {
        MutexLock lock(&mu_);
        incoming.swap(incoming_);
        for (const auto& t : incoming) {
          if (!t->cancel_reason.ok())
            cancels.emplace_back(t->id, absl::Status());
        }
        for (uint64_t id : cancels_) cancels.emplace_back(id, absl::Status());
        cancels_.clear();
        stopping = stopping_;
      }
      for (auto& t : incoming) {
        if (t->cancelled.load(std::memory_order_acquire)) {
          // Ended below, among the cancels, without ever being added.
          const uint64_t id = t->id;
          transfers_.emplace(id, std::move(t));
          continue;
        }
        Start(std::move(t));
      }
      for (auto& [id, reason] : cancels) {
        auto it = transfers_.find(id);
        if (it == transfers_.end()) continue;
        {
          MutexLock lock(&mu_);
          reason = it->second->cancel_reason;
        }
        Finish(id, std::move(reason), it->second->easy != nullptr);
      }
      if (stopping) break;
      int running = 0;
      const int wait_ms = TimerWaitMs();
      const int n = wait_ms == 0
                        ? 0
                        : epoll_wait(epoll_fd_, events.data(),
                                     static_cast<int>(events.size()), wait_ms);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) {
          uint64_t count;
          (void)!read(wake_fd_, &count, sizeof(count));
          continue;
        }
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi_, fd, flags, &running);
      }
      if (timer_.has_value() && Clock::now() >= *timer_) {
        timer_.reset();  // The action may set the next one.
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
        const CURLcode code = msg->data.result;
        std::optional<absl::StatusOr<HttpResponse>> result =
            Completed(*t, code);
        if (result.has_value()) {
          Finish(t->id, *std::move(result), t->easy != nullptr);
        }
      }
    }
    // Shutting down: end what is left, queued or running.
    {
      MutexLock lock(&mu_);
      for (auto& t : incoming_) {
        const uint64_t id = t->id;
        transfers_.emplace(id, std::move(t));
      }
      incoming_.clear();
    }
    while (!transfers_.empty()) {
      auto it = transfers_.begin();
      Finish(it->first,
             common::WithReason(absl::CancelledError("weftd is shutting down"),
                                common::kShuttingDown),
             it->second->easy != nullptr);
    }
  }

  static constexpr size_t kMaxIdleEasyHandles = 1024;

  const HttpOptions options_;
  // Reads large bodies (HttpCall), off the IO thread.
  engine::ThreadPool parse_;
  CURLM* multi_ = nullptr;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int> active_{0};
  std::atomic<int64_t> opened_{0};

  Mutex mu_;
  std::vector<std::unique_ptr<Transfer>> incoming_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancels_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // The IO thread's own.
  std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::optional<Clock::time_point> timer_;
  std::vector<CURL*> idle_easy_;
};

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(
    HttpOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

void HttpClient::Fetch(HttpRequest request,
                       const engine::CancellationToken& token, Done done) {
  impl_->Fetch(std::move(request), token, std::move(done));
}

int HttpClient::active() const { return impl_->active(); }

int64_t HttpClient::connections_opened() const {
  return impl_->connections_opened();
}

void HttpClient::Offload(engine::Closure fn) { impl_->Offload(std::move(fn)); }

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kMaxRedirects = 10;

// "application/json", "application/problem+json; charset=utf-8".
bool IsJsonMediaType(absl::string_view content_type) {
  absl::string_view type = content_type.substr(0, content_type.find(';'));
  type = absl::StripAsciiWhitespace(type);
  const std::string lower = absl::AsciiStrToLower(type);
  return lower == "application/json" || absl::EndsWith(lower, "+json");
}

// An HTTP token (RFC 9110): method and header names.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    if (c == '\0' || std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) {
      return false;
    }
  }
  return true;
}

// A status range from accept_status: 200, or "200-299".
struct StatusRange {
  int low;
  int high;
};

absl::StatusOr<std::vector<StatusRange>> ParseAcceptStatus(const Value* list) {
  if (list == nullptr) return std::vector<StatusRange>{{200, 299}};
  std::vector<StatusRange> ranges;
  const auto& values = list->list_value().values();
  if (values.empty()) {
    return ArgError("accept_status", "must list at least one status");
  }
  for (int i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    const std::string where = absl::StrCat("accept_status[", i, "]");
    StatusRange r{0, 0};
    if (v.has_number_value() &&
        v.number_value() == static_cast<int>(v.number_value())) {
      r.low = r.high = static_cast<int>(v.number_value());
    } else if (v.has_string_value()) {
      std::vector<absl::string_view> parts =
          absl::StrSplit(v.string_value(), '-');
      if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &r.low) ||
          !absl::SimpleAtoi(parts.back(), &r.high)) {
        return ArgError(where, absl::StrCat("expected a status like 204 or a "
                                            "range like \"200-299\", got ",
                                            common::Quote(v.string_value())));
      }
    } else {
      return ArgError(where,
                      "expected a status like 204 or a range like "
                      "\"200-299\"");
    }
    if (r.low < 100 || r.high > 599 || r.low > r.high) {
      return ArgError(where, "statuses are from 100 to 599, low to high");
    }
    ranges.push_back(r);
  }
  return ranges;
}

std::string RangesText(const std::vector<StatusRange>& ranges) {
  return absl::StrJoin(ranges, ", ", [](std::string* out, StatusRange r) {
    absl::StrAppend(out, r.low);
    if (r.high != r.low) absl::StrAppend(out, "-", r.high);
  });
}

// The handler's value for a response: {status, headers, body} with body
// parsed JSON, a string, or body_base64. A JSON body nested deeper than
// kMaxJsonDepth fails the call (OUT_OF_RANGE, permanent).
absl::StatusOr<Value> ResponseValue(const HttpResponse& response,
                                    absl::string_view where) {
  Value out;
  Struct& fields = *out.mutable_struct_value();
  (*fields.mutable_fields())["status"].set_number_value(response.status);
  Struct& headers =
      *(*fields.mutable_fields())["headers"].mutable_struct_value();
  std::string content_type;
  for (const auto& [name, value] : response.headers) {
    Value& v = (*headers.mutable_fields())[name];
    if (v.has_string_value()) {
      v.set_string_value(absl::StrCat(v.string_value(), ", ", value));
    } else {
      v.set_string_value(value);
    }
    if (name == "content-type") content_type = value;
  }
  Value& body = (*fields.mutable_fields())["body"];
  if (IsJsonMediaType(content_type) && !response.body.empty()) {
    absl::StatusOr<Value> parsed = ParseJson(response.body);
    if (parsed.ok()) {
      body = *std::move(parsed);
      return out;
    }
    if (parsed.status().code() == absl::StatusCode::kOutOfRange) {
      return Permanent(common::WithReason(
          absl::OutOfRangeError(absl::StrCat(
              where, ": the JSON body is ", parsed.status().message(),
              ", the most weft keeps in a value")),
          common::kValueTooDeep));
    }
    // Not JSON after all: the text, as for any other body.
  }
  if (common::IsValidUtf8(response.body)) {
    body.set_string_value(response.body);
  } else {
    fields.mutable_fields()->erase("body");
    (*fields.mutable_fields())["body_base64"].set_string_value(
        absl::Base64Escape(response.body));
  }
  return out;
}

// The text of a body for an error message: its start, if it is text.
std::string BodySnippet(const std::string& body) {
  if (body.empty() || !common::IsValidUtf8(body)) return "";
  constexpr size_t kMax = 200;
  std::string s = body.size() <= kMax ? body : body.substr(0, kMax) + "...";
  return absl::StrCat(": ", absl::StripAsciiWhitespace(s));
}

// What an http call needs once its response comes, shared with the
// completion so that it outlives the plan if the call ends first (cancelled
// or timed out while the transfer winds down).
struct HttpCallSpec {
  HttpRequest request;
  std::vector<StatusRange> accept;

  CallResult Answer(absl::StatusOr<HttpResponse> response) const {
    if (!response.ok()) return response.status();
    const std::string where = absl::StrCat(
        request.method, " ", common::Abbreviate(response->url, 200));
    for (const StatusRange& r : accept) {
      if (response->status >= r.low && response->status <= r.high) {
        return ResponseValue(*response, where);
      }
    }
    return common::WithReason(
        absl::Status(
            CodeForHttpStatus(response->status),
            absl::StrCat(where, " answered ", response->status,
                         response->reason.empty() ? "" : " ",
                         common::Abbreviate(response->reason, 100),
                         " (args.accept_status is ", RangesText(accept), ")",
                         BodySnippet(response->body))),
        common::kHttpStatus, {{"status", absl::StrCat(response->status)}});
  }
};

// One attempt of an http call. It ends exactly once: with the response, at
// once when its token is cancelled, or when args.timeout passes, whichever
// comes first, whatever the IO thread is doing.
class HttpAttempt : public std::enable_shared_from_this<HttpAttempt> {
 public:
  HttpAttempt(engine::Env& env, const engine::CancellationToken& token,
              CallDone done)
      : env_(env), scope_(token), done_(std::move(done)) {}

  ~HttpAttempt() {
    // Dropped without an answer (its parse work was dropped at shutdown).
    Complete(absl::UnavailableError("the http call was dropped"));
  }

  void Start(HttpClient& client, std::shared_ptr<const HttpCallSpec> spec,
             const engine::CancellationToken& token) {
    std::weak_ptr<HttpAttempt> weak = weak_from_this();
    on_cancel_.emplace(token, [weak](const absl::Status& reason) {
      if (auto self = weak.lock()) self->Complete(reason);
    });
    if (spec->request.timeout > absl::ZeroDuration()) {
      const std::string message = absl::StrCat(
          spec->request.method, " ", common::Abbreviate(spec->request.url, 200),
          ": no answer within ", absl::FormatDuration(spec->request.timeout),
          " (args.timeout)");
      timer_ =
          env_.Schedule(env_.Now() + spec->request.timeout, [weak, message] {
            auto self = weak.lock();
            if (self == nullptr) return;
            const absl::Status timeout = common::WithReason(
                absl::DeadlineExceededError(message), common::kHttpTimeout);
            self->Complete(timeout);
            self->scope_.Cancel(timeout);
          });
    }
    client.Fetch(spec->request, scope_.token(),
                 [self = shared_from_this(), &client,
                  spec](absl::StatusOr<HttpResponse> response) mutable {
                   self->Fetched(client, std::move(spec), std::move(response));
                 });
  }

 private:
  // On the IO thread: the body is read elsewhere, the IO thread goes on.
  void Fetched(HttpClient& client, std::shared_ptr<const HttpCallSpec> spec,
               absl::StatusOr<HttpResponse> response) {
    if (timer_.has_value()) env_.Cancel(*timer_);
    if (Answered()) return;
    // Small bodies are read on the event loop (a millisecond at most);
    // large ones on the client's parse thread.
    constexpr size_t kReadOnLoopBytes = 64 << 10;
    const bool small =
        !response.ok() || response->body.size() <= kReadOnLoopBytes;
    auto read = [self = shared_from_this(), spec = std::move(spec),
                 response = std::move(response), small]() mutable {
      // On the event loop already when small: answer here.
      self->Complete(spec->Answer(std::move(response)), /*post=*/!small);
    };
    if (small) {
      env_.Post(std::move(read));
    } else {
      client.Offload(std::move(read));
    }
  }

  bool Answered() {
    engine::MutexLock lock(&mu_);
    return !done_;
  }

  // The first call answers, on the event loop (posted there unless it runs
  // there already); later ones do nothing.
  void Complete(CallResult result, bool post = true) {
    CallDone done;
    {
      engine::MutexLock lock(&mu_);
      done = std::move(done_);
      done_ = nullptr;
    }
    if (!done) return;
    if (!post) {
      std::move(done)(std::move(result));
      return;
    }
    env_.Post([done = std::move(done), result = std::move(result)]() mutable {
      std::move(done)(std::move(result));
    });
  }

  engine::Env& env_;
  // The transfer's scope: cancelled with the call, or by its timeout.
  engine::CancellationSource scope_;
  engine::Mutex mu_;
  CallDone done_ ABSL_GUARDED_BY(mu_);
  std::optional<engine::CancellationCallback> on_cancel_;
  std::optional<engine::TimerId> timer_;
};

class HttpCall : public Call {
 public:
  HttpCall(HttpClient& client, HttpRequest request,
           std::vector<StatusRange> accept)
      : client_(client),
        spec_(std::make_shared<const HttpCallSpec>(
            HttpCallSpec{std::move(request), std::move(accept)})) {}

  void Start(const CallContext& ctx, CallDone done) const override {
    if (ctx.token.cancelled()) {
      std::move(done)(ctx.token.reason());
      return;
    }
    auto attempt =
        std::make_shared<HttpAttempt>(ctx.env, ctx.token, std::move(done));
    attempt->Start(client_, spec_, ctx.token);
  }

 private:
  HttpClient& client_;
  const std::shared_ptr<const HttpCallSpec> spec_;
};

class HttpHandler : public Handler {
 public:
  explicit HttpHandler(HttpClient& client) : client_(client) {
    info_ = HandlerInfo{
        .name = "http",
        .description =
            "Calls an HTTP service without holding a thread; returns "
            "{status, headers, body} (body parsed when the response is "
            "JSON, body_base64 when it is not UTF-8). Destinations must be "
            "allowed by --http_allow.",
        .args =
            {
                {.name = "url",
                 .type = ArgType::kString,
                 .required = true,
                 .description = "An http or https URL."},
                {.name = "method",
                 .type = ArgType::kString,
                 .description = "GET if absent."},
                {.name = "headers",
                 .type = ArgType::kObject,
                 .description = "Request headers, name to string value."},
                {.name = "body",
                 .type = ArgType::kAny,
                 .description = "A string is sent as it is; any other JSON "
                                "value is sent as JSON."},
                {.name = "timeout",
                 .type = ArgType::kDuration,
                 .description = "For the whole exchange, like \"2s\"; "
                                "DEADLINE_EXCEEDED when it passes."},
                {.name = "max_response_bytes",
                 .type = ArgType::kInteger,
                 .description = "The largest body accepted, 1 MiB if absent "
                                "(at most 64 MiB); OUT_OF_RANGE beyond.",
                 .min = 1,
                 .max = 64 << 20},
                {.name = "follow_redirects",
                 .type = ArgType::kBool,
                 .description = "Follow up to 10 redirects; false if absent."},
                {.name = "accept_status",
                 .type = ArgType::kList,
                 .description =
                     "Statuses that succeed, like [200, \"300-304\"]; "
                     "200-299 if absent. Others fail: 404 NOT_FOUND, "
                     "401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 429 "
                     "and 5xx UNAVAILABLE, the rest "
                     "FAILED_PRECONDITION."},
            },
    };
  }

  const HandlerInfo& info() const override { return info_; }

  absl::StatusOr<std::unique_ptr<Call>> Prepare(
      const Struct& struct_args) const override {
    Args args(struct_args);
    HttpRequest request;
    request.url = args.String("url");
    if (absl::StatusOr<UrlParts> url = ParseUrl(request.url); !url.ok()) {
      return ArgError("url", url.status().message());
    }
    request.method = args.String("method", "GET");
    if (!IsToken(request.method)) {
      return ArgError("method", absl::StrCat(common::Quote(request.method),
                                             " is not an HTTP method"));
    }
    bool has_content_type = false;
    if (const Value* headers = args.Find("headers")) {
      for (const auto& [name, value] : headers->struct_value().fields()) {
        if (!IsToken(name)) {
          return ArgError("headers", absl::StrCat(common::Quote(name),
                                                  " is not a header name"));
        }
        if (!value.has_string_value()) {
          return ArgError(absl::StrCat("headers.", name), "expected a string");
        }
        if (value.string_value().find_first_of(std::string("\r\n\0", 3)) !=
            std::string::npos) {
          return ArgError(absl::StrCat("headers.", name),
                          "must not hold CR, LF or NUL");
        }
        if (absl::EqualsIgnoreCase(name, "content-type")) {
          has_content_type = true;
        }
        request.headers.emplace_back(name, value.string_value());
      }
      // Stable order, whatever the map's.
      std::sort(request.headers.begin(), request.headers.end());
    }
    if (const Value* body = args.Find("body")) {
      request.has_body = true;
      if (body->has_string_value()) {
        request.body = body->string_value();
      } else {
        if (!google::protobuf::util::MessageToJsonString(*body, &request.body)
                 .ok()) {
          return ArgError("body", "cannot be written as JSON");
        }
        if (!has_content_type) {
          request.headers.emplace_back("Content-Type", "application/json");
        }
      }
    }
    request.timeout = args.Duration("timeout");
    request.max_response_bytes = args.Integer("max_response_bytes", 1 << 20);
    const Value* follow = args.Find("follow_redirects");
    request.max_redirects =
        follow != nullptr && follow->bool_value() ? kMaxRedirects : 0;
    absl::StatusOr<std::vector<StatusRange>> accept =
        ParseAcceptStatus(args.Find("accept_status"));
    if (!accept.ok()) return accept.status();
    return std::make_unique<HttpCall>(client_, std::move(request),
                                      *std::move(accept));
  }

 private:
  HttpClient& client_;
  HandlerInfo info_;
};

}  // namespace

void RegisterHttpHandler(HandlerRegistry& registry, HttpClient& client) {
  registry.Register(std::make_unique<HttpHandler>(client)).IgnoreError();
}

}  // namespace weft::handlers
