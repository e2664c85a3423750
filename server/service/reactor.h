// Reactor bases that tell ThreadSanitizer what gRPC's core guarantees.
//
// Debian's gRPC is not built with ThreadSanitizer, so TSan cannot see how
// its core orders the calls it makes into a reactor: that OnDone runs after
// Finish, OnWriteDone after StartWrite, and each after whatever the thread
// that made the call had done before. Without that, every reactor's state
// looks raced. These bases mark exactly those orderings on the reactor's
// address: each call a reactor makes into gRPC releases it, and each
// callback starts by acquiring it (CalledByGrpc). Built without TSan they
// add nothing. Every weft reactor derives from one of them, starts each
// On* callback with CalledByGrpc(this), and is returned from its handler
// through Handed (which releases it too). What gRPC does with a message
// after it is handed over (serializing, freeing) is gRPC's own code, named
// in tests/tsan.supp.

#ifndef WEFT_SERVER_SERVICE_REACTOR_H_
#define WEFT_SERVER_SERVICE_REACTOR_H_

#include <atomic>
#include <utility>

#include "grpcpp/support/server_callback.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_SERVICE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_SERVICE_TSAN 1
#endif

#ifdef WEFT_SERVICE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::service {

// The reactor is handed to gRPC: what this thread did so far happens
// before gRPC's next callback into it.
inline void HandedToGrpc(const void* reactor) {
#ifdef WEFT_SERVICE_TSAN
  __tsan_release(const_cast<void*>(reactor));
#else
  (void)reactor;
#endif
}

// gRPC calls into the reactor: after everything handed to it before.
inline void CalledByGrpc(const void* reactor) {
#ifdef WEFT_SERVICE_TSAN
  __tsan_acquire(const_cast<void*>(reactor));
#else
  (void)reactor;
#endif
}

// For a handler's return: the reactor goes to gRPC, which may call it on
// any thread from then on.
template <typename Reactor>
Reactor* Handed(Reactor* reactor) {
  HandedToGrpc(reactor);
  return reactor;
}

// gRPC posts a reactor's OnDone to its executor threads unless the reactor
// says it is inlineable, as gRPC's own DefaultReactor does: one thread
// wake-up per call, and the call's memory freed on another thread than
// the one that made it. A reactor whose OnDone, and whose OnCancel once
// Finish has been called, are short and never block passes kShortOnDone:
// after its Finish gRPC runs them on the thread that completed the call.
// Before Finish its OnCancel is still posted (it may have work to stop).
// (InternalInlineable is marked "not API" in gRPC's header; it is how the
// DefaultReactor avoids the hop, and the same in every gRPC release since
// the callback API was introduced.)
class UnaryReactor : public grpc::ServerUnaryReactor {
 public:
  enum OnDoneKind { kPostedOnDone, kShortOnDone };
  explicit UnaryReactor(OnDoneKind kind = kPostedOnDone)
      : short_on_done_(kind == kShortOnDone) {}

  void Finish(grpc::Status status) {
    if (short_on_done_) finished_.store(true, std::memory_order_relaxed);
    HandedToGrpc(this);
    grpc::ServerUnaryReactor::Finish(std::move(status));
  }

 private:
  // gRPC asks as it schedules OnDone or OnCancel. A call's end comes after
  // its Finish; should this thread not see the store yet, the reaction is
  // posted as before.
  bool InternalInlineable() override {
    CalledByGrpc(this);  // gRPC calls into the reactor here too.
    return finished_.load(std::memory_order_relaxed);
  }

  const bool short_on_done_;
  std::atomic<bool> finished_{false};
};

template <typename Response>
class WriteReactor : public grpc::ServerWriteReactor<Response> {
  using Base = grpc::ServerWriteReactor<Response>;

 public:
  void StartSendInitialMetadata() {
    HandedToGrpc(this);
    Base::StartSendInitialMetadata();
  }
  void StartWrite(const Response* response) {
    HandedToGrpc(this);
    Base::StartWrite(response);
  }
  void StartWrite(const Response* response, grpc::WriteOptions options) {
    HandedToGrpc(this);
    Base::StartWrite(response, options);
  }
  void StartWriteAndFinish(const Response* response, grpc::WriteOptions options,
                           grpc::Status status) {
    HandedToGrpc(this);
    Base::StartWriteAndFinish(response, options, std::move(status));
  }
  void Finish(grpc::Status status) {
    HandedToGrpc(this);
    Base::Finish(std::move(status));
  }
};

template <typename Request, typename Response>
class BidiReactor : public grpc::ServerBidiReactor<Request, Response> {
  using Base = grpc::ServerBidiReactor<Request, Response>;

 public:
  void StartRead(Request* request) {
    HandedToGrpc(this);
    Base::StartRead(request);
  }
  void StartWrite(const Response* response) {
    HandedToGrpc(this);
    Base::StartWrite(response);
  }
  void Finish(grpc::Status status) {
    HandedToGrpc(this);
    Base::Finish(std::move(status));
  }
};

}  // namespace weft::service

#endif  // WEFT_SERVER_SERVICE_REACTOR_H_
