#include "server/handlers/http_client.h"

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
#include "server/handlers/handler.h"
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
}  // namespace

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
    // Transfers beyond it wait in libcurl's queue for a free connection.
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(options_.max_connections_per_host));
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
  const HttpOptions& options() const { return options_; }
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

const HttpOptions& HttpClient::options() const { return impl_->options(); }

absl::string_view HttpClient::OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kHttpStatus:
      return "http_status";
    case Outcome::kUnreachable:
      return "unreachable";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kTooLarge:
      return "too_large";
    case Outcome::kNotAllowed:
      return "not_allowed";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kOther:
      return "other";
  }
  return "other";
}

HttpClient::Outcome HttpClient::OutcomeOf(const absl::Status& status) {
  if (status.ok()) return Outcome::kOk;
  const std::string reason = common::Reason(status);
  if (reason == common::kHttpStatus) return Outcome::kHttpStatus;
  if (reason == common::kHttpUnreachable) return Outcome::kUnreachable;
  if (reason == common::kHttpTimeout) return Outcome::kTimeout;
  if (reason == common::kHttpResponseTooLarge ||
      reason == common::kHttpTooManyRedirects) {
    return Outcome::kTooLarge;
  }
  if (reason == common::kUrlNotAllowed) return Outcome::kNotAllowed;
  if (status.code() == absl::StatusCode::kCancelled ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    return Outcome::kCancelled;
  }
  return Outcome::kOther;
}

int64_t HttpClient::connections_opened() const {
  return impl_->connections_opened();
}

void HttpClient::Offload(engine::Closure fn) { impl_->Offload(std::move(fn)); }

}  // namespace weft::handlers
