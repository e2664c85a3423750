#include "server/engine/cancellation.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace weft::engine {

absl::Status WithReason(
    absl::Status s, absl::string_view reason,
    std::initializer_list<std::pair<absl::string_view, absl::string_view>>
        metadata) {
  if (s.ok()) return s;
  s.SetPayload("type.weft.dev/reason", absl::Cord(reason));
  for (const auto& [key, value] : metadata) {
    if (value.empty()) continue;
    s.SetPayload(absl::StrCat("type.weft.dev/reason-metadata/", key),
                 absl::Cord(value));
  }
  return s;
}
namespace internal {

CancelState::CancelState() { head_.prev = head_.next = &head_; }

CancelState::CancelState(const CancellationToken& parent) : CancelState() {
  if (!parent.state_) return;
  // The link runs on the parent's cancelling thread. It holds a reference so
  // that one of our callbacks dropping the last outside reference cannot free
  // this state while the link is still cancelling it. If the count already
  // reached zero, this state is being destroyed on another thread, whose
  // destructor waits (in the link's deregistration) for this function to
  // return: then there is nothing left to cancel.
  parent_link_ =
      new CancellationCallback(parent, [this](const absl::Status& r) {
        if (!TryRef()) return;
        RefPtr<CancelState> self = RefPtr<CancelState>::Adopt(this);
        Cancel(r, /*from_parent=*/true);
      });
}

CancelState::~CancelState() { delete parent_link_; }

absl::Status CancelState::reason() const {
  if (!cancelled()) return absl::OkStatus();
  MutexLock lock(&mu_);
  return reason_;
}

bool CancelState::Register(CancellationCallback* cb) {
  MutexLock lock(&mu_);
  if (cancelled_.load(std::memory_order_relaxed)) return false;
  CallbackLink* link = &cb->link_;
  link->prev = head_.prev;
  link->next = &head_;
  head_.prev->next = link;
  head_.prev = link;
  cb->registered_ = true;
  return true;
}

void CancelState::Deregister(CancellationCallback* cb) {
  MutexLock lock(&mu_);
  if (cb->registered_) {
    cb->link_.prev->next = cb->link_.next;
    cb->link_.next->prev = cb->link_.prev;
    cb->registered_ = false;
    return;
  }
  // Already taken off the list by Cancel(): if its function is running on
  // another thread, wait until it returns so it cannot outlive its owner.
  while (running_ == cb && running_thread_ != std::this_thread::get_id()) {
    running_done_.Wait(&mu_);
  }
}

bool CancelState::cancelled_here() const {
  if (!cancelled()) return false;
  MutexLock lock(&mu_);
  return !from_parent_;
}

bool CancelState::Cancel(absl::Status reason, bool from_parent) {
  MutexLock lock(&mu_);
  if (cancelled_.load(std::memory_order_relaxed)) return false;
  reason_ = std::move(reason);
  from_parent_ = from_parent;
  cancelled_.store(true, std::memory_order_release);
  const absl::Status r = reason_;  // reason_ never changes again.
  while (head_.next != &head_) {
    CallbackLink* link = head_.next;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    CancellationCallback* cb = link->owner;
    cb->registered_ = false;
    running_ = cb;
    running_thread_ = std::this_thread::get_id();
    {
      // Move the function out, so the callback may be destroyed by its own
      // function (or by another thread once this one is done with it), and
      // destroy it before locking again: what it holds may use this scope.
      CancellationCallback::Fn fn = std::move(cb->fn_);
      mu_.Unlock();
      std::move(fn)(r);
    }
    mu_.Lock();
    running_ = nullptr;
    running_done_.SignalAll();
  }
  return true;
}

}  // namespace internal

absl::Status CancellationToken::reason() const {
  return state_ ? state_->reason() : absl::OkStatus();
}

CancellationSource::CancellationSource()
    : state_(
          RefPtr<internal::CancelState>::Adopt(new internal::CancelState())) {}

CancellationSource::CancellationSource(const CancellationToken& parent)
    : state_(RefPtr<internal::CancelState>::Adopt(
          new internal::CancelState(parent))) {}

bool CancellationSource::cancelled_here() const {
  return state_->cancelled_here();
}

bool CancellationSource::Cancel(absl::Status reason) const {
  return state_->Cancel(std::move(reason));
}

CancellationCallback::CancellationCallback(const CancellationToken& token,
                                           Fn fn)
    : fn_(std::move(fn)), state_(token.state_) {
  link_.owner = this;
  if (state_ && !state_->Register(this)) {
    Fn f = std::move(fn_);
    std::move(f)(state_->reason());
  }
}

CancellationCallback::~CancellationCallback() {
  if (state_) state_->Deregister(this);
}

}  // namespace weft::engine
