// HttpClient: outbound HTTP on libcurl's multi interface, driven by one IO
// thread however many transfers are in flight, behind the --http_allow guard
// (allow_list.h). The http handler (http.h) is its user; the client knows
// nothing of plans or values (it marks refusals that a retry cannot mend
// with handlers::Permanent).
//
// HttpClient owns the IO thread and one libcurl multi handle, so connections
// and DNS answers are reused across calls. A transfer ends when the server
// answers, when its timeout passes, or at once when its cancellation token is
// cancelled (the connection is closed, so the server sees it go). Redirects
// are followed by the client itself, one hop at a time, so every hop goes
// through the same checks as the first URL.
//
// The guard: every socket libcurl opens goes through an open-socket callback
// that asks the AllowList about the address it is about to connect to, so
// DNS answers, numeric host forms and redirects cannot reach an address that
// was not allowed. Proxy variables in the environment are ignored; with
// --http_proxy every connection goes to the proxy, and the URL's host (name or
// canonical address) is checked against the list before the transfer starts.
//
// Thread-safety: HttpClient's methods are safe to call from any thread.
// Completion functions run on the IO thread.

#ifndef WEFT_SERVER_HANDLERS_HTTP_CLIENT_H_
#define WEFT_SERVER_HANDLERS_HTTP_CLIENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/cancellation.h"
#include "server/engine/memory_budget.h"
#include "server/engine/thread_pool.h"
#include "server/handlers/allow_list.h"

namespace weft::handlers {

struct UrlParts {
  std::string scheme;
  std::string host;  // Without brackets or a zone id.
  int port = 0;
};

// INVALID_ARGUMENT unless `url` is an absolute http or https URL with a
// host; the message quotes the URL and says what is wrong.
absl::StatusOr<UrlParts> ParseUrl(const std::string& url);

struct HttpOptions {
  // --http_allow. Empty: every call is refused.
  AllowList allow;
  // --http_proxy, like "http://proxy.internal:3128". Empty: no proxy, and
  // the http_proxy/https_proxy/all_proxy/no_proxy environment is ignored.
  std::string proxy;
  // Idle connections kept for reuse.
  int max_idle_connections = 1024;
  // Connections open at once to one host and port (--http_max_connections_
  // per_host); transfers beyond wait for one to be free. 0: no limit.
  int max_connections_per_host = 0;
  // Optional: what response bodies being received are charged to
  // (weftd's --max_inflight_bytes); a body it cannot take fails its call
  // with RESOURCE_EXHAUSTED.
  engine::MemoryBudget* memory = nullptr;
  // The most bytes of response headers accepted; beyond, the call fails
  // with OUT_OF_RANGE (and is not retried).
  int64_t max_header_bytes = 64 << 10;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;
  // Zero: no limit of its own (the plan's timeouts still apply).
  absl::Duration timeout = absl::ZeroDuration();
  int64_t max_response_bytes = 1 << 20;
  // Redirects followed (0 = none).
  int max_redirects = 0;
};

struct HttpResponse {
  int status = 0;
  // The status line's reason phrase, "Service Unavailable"; may be empty.
  std::string reason;
  // Lowercase names, in order; repeated names repeated.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The URL that answered (after redirects).
  std::string url;
  // The body's memory, charged to HttpOptions::memory while it is held.
  engine::MemoryCharge memory;
};

// Why transfers fail, as statuses:
//   PERMISSION_DENIED  the destination is not allowed (message names the
//                      address and --http_allow); marked permanent, so
//                      retries never repeat it
//   UNAVAILABLE        cannot resolve, connect, or the connection broke
//   DEADLINE_EXCEEDED  the request's own timeout passed
//   OUT_OF_RANGE       the body is larger than max_response_bytes, the
//                      headers larger than max_header_bytes (permanent), or
//                      too many redirects
//   RESOURCE_EXHAUSTED the body does not fit in HttpOptions::memory
//   INVALID_ARGUMENT   a URL that is not http(s), also in a redirect
//   the token's reason when cancelled
class HttpClient {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&>;

  // Starts the IO thread. INTERNAL if libcurl cannot be set up.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(
      HttpOptions options);
  // Ends every transfer in flight (CANCELLED, "weftd is shutting down"),
  // then stops the IO thread.
  ~HttpClient();

  // Starts a transfer; `done` runs once, on the IO thread (inline when the
  // request is refused before it starts).
  void Fetch(HttpRequest request, const engine::CancellationToken& token,
             Done done);

  // Transfers in flight, for tests and GetServerInfo.
  int active() const;
  // Connections opened so far (sockets the guard let through).
  int64_t connections_opened() const;

  // How http calls ended, counted by the handler (one per attempt).
  enum class Outcome {
    kOk,           // An answer the call accepted.
    kHttpStatus,   // An answer with a status the call did not accept.
    kUnreachable,  // No connection, or it broke (HTTP_UNREACHABLE).
    kTimeout,      // Its own timeout (HTTP_TIMEOUT).
    kTooLarge,     // Body, headers or redirects over their limits.
    kNotAllowed,   // Refused by --http_allow (URL_NOT_ALLOWED).
    kCancelled,    // The plan stopped it (a race lost, a deadline, ...).
    kOther,
  };
  static constexpr int kOutcomes = 8;
  static absl::string_view OutcomeName(Outcome outcome);
  // The outcome a call's result stands for.
  static Outcome OutcomeOf(const absl::Status& status);
  // The counts outlive the client: an attempt ended by ~HttpClient answers
  // (and counts) on the event loop after the client is gone.
  class Counts {
   public:
    void Count(Outcome outcome) {
      calls_[static_cast<int>(outcome)].fetch_add(1, std::memory_order_relaxed);
    }
    int64_t calls(Outcome outcome) const {
      return calls_[static_cast<int>(outcome)].load(std::memory_order_relaxed);
    }

   private:
    std::array<std::atomic<int64_t>, kOutcomes> calls_{};
  };
  const std::shared_ptr<Counts>& counts() const { return counts_; }
  int64_t calls(Outcome outcome) const { return counts_->calls(outcome); }
  const HttpOptions& options() const;

  // Runs `fn` on the client's parse thread, which reads large response
  // bodies so that neither the IO thread nor the event loop waits on them.
  void Offload(engine::Closure fn);

  class Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  const std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
};

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_HTTP_CLIENT_H_
