// Cooperative cancellation with a reason, in the shape of C++20's stop_token.
//
// A CancellationSource cancels; a CancellationToken observes; a
// CancellationCallback runs a function once when its token is cancelled. A
// source may be linked to a parent token, so cancelling a scope reaches every
// scope nested in it: a run cancels its plan, a plan node cancels its
// children, a timed-out node cancels what runs under it.
//
// Every cancellation carries a reason (a non-OK absl::Status, normally
// CANCELLED with a message saying why), which the cancelled work reports.
//
// Thread-safety: all classes here are safe to use from any thread. A callback
// runs on the thread that calls Cancel(), or inline in the callback's
// constructor when the token is already cancelled. Destroying a callback
// while its function runs on another thread waits for the function to return
// (as std::stop_callback does), so a callback's function must not wait for a
// lock held by a thread that destroys the callback.

#ifndef WEFT_SERVER_ENGINE_CANCELLATION_H_
#define WEFT_SERVER_ENGINE_CANCELLATION_H_

#include <atomic>
#include <initializer_list>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/internal/ref_counted.h"
#include "server/engine/sync.h"

namespace weft::engine {

class CancellationCallback;

// `s` marked with a short, stable name for its cause, like "SIBLING_FAILED",
// and metadata (key, value) pairs such as the flag of a limit. The engine
// has no protobuf: the reason travels as a plain-text payload (under
// "type.weft.dev/reason", each metadata value under
// "type.weft.dev/reason-metadata/<key>"), which weft's API layer
// (api/errors.h) reads as it reads an ErrorInfo.
absl::Status WithReason(
    absl::Status s, absl::string_view reason,
    std::initializer_list<std::pair<absl::string_view, absl::string_view>>
        metadata = {});

namespace internal {

class CancelState;

// Intrusive list links for registered callbacks.
struct CallbackLink {
  CallbackLink* prev = nullptr;
  CallbackLink* next = nullptr;
  CancellationCallback* owner = nullptr;
};

}  // namespace internal

// Observes a cancellation scope. Cheap to copy. A default-constructed token
// is never cancelled.
class CancellationToken {
 public:
  CancellationToken() = default;

  bool cancelled() const;
  // The reason given to Cancel(); OK while not cancelled.
  absl::Status reason() const;

 private:
  friend class CancellationSource;
  friend class CancellationCallback;
  friend class internal::CancelState;
  explicit CancellationToken(RefPtr<internal::CancelState> state)
      : state_(std::move(state)) {}

  RefPtr<internal::CancelState> state_;
};

// Owns a cancellation scope. Copies share the scope.
class CancellationSource {
 public:
  // A root scope.
  CancellationSource();
  // A scope that is cancelled, with the parent's reason, when `parent` is.
  explicit CancellationSource(const CancellationToken& parent);

  // Cancels the scope and every scope linked to it, running their callbacks
  // on this thread. Returns false (and does nothing) if already cancelled.
  // `reason` must not be OK.
  bool Cancel(absl::Status reason) const;

  bool cancelled() const { return token().cancelled(); }
  // True if this scope was cancelled by its own Cancel(), false if not
  // cancelled or cancelled through its parent.
  bool cancelled_here() const;
  CancellationToken token() const { return CancellationToken(state_); }

 private:
  RefPtr<internal::CancelState> state_;
};

// Runs `fn(reason)` once when `token` is cancelled: at once, on this thread,
// if it already is. The destructor deregisters; see the header comment for
// how it interacts with a function running on another thread.
class CancellationCallback {
 public:
  using Fn = absl::AnyInvocable<void(const absl::Status& reason) &&>;

  CancellationCallback(const CancellationToken& token, Fn fn);
  ~CancellationCallback();
  CancellationCallback(const CancellationCallback&) = delete;
  CancellationCallback& operator=(const CancellationCallback&) = delete;

 private:
  friend class internal::CancelState;

  internal::CallbackLink link_;  // Guarded by state_->mu_.
  Fn fn_;
  RefPtr<internal::CancelState> state_;
  bool registered_ = false;  // Guarded by state_->mu_.
};

namespace internal {

class CancelState : public RefCounted<CancelState> {
 public:
  CancelState();
  explicit CancelState(const CancellationToken& parent);
  ~CancelState();

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  absl::Status reason() const;
  bool Cancel(absl::Status reason, bool from_parent = false);
  bool cancelled_here() const;

  // Returns false if the scope is already cancelled (nothing registered).
  bool Register(CancellationCallback* cb);
  void Deregister(CancellationCallback* cb);

 private:
  std::atomic<bool> cancelled_{false};
  mutable Mutex mu_;
  absl::Status reason_ ABSL_GUARDED_BY(mu_);
  bool from_parent_ ABSL_GUARDED_BY(mu_) = false;
  CallbackLink head_ ABSL_GUARDED_BY(mu_);  // Sentinel of a circular list.
  // The callback whose function is running, and the thread running it.
  const CancellationCallback* running_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread::id running_thread_ ABSL_GUARDED_BY(mu_);
  CondVar running_done_;
  // Links this scope to its parent's; empty for a root scope.
  CancellationCallback* parent_link_ = nullptr;
};

}  // namespace internal

inline bool CancellationToken::cancelled() const {
  return state_ && state_->cancelled();
}

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_CANCELLATION_H_
