// Intrusive reference counting for engine objects shared between threads.
//
// Thread-safety: Ref() and Unref() may be called from any thread; the object
// is deleted by whichever call drops the last reference.

#ifndef WEFT_SERVER_ENGINE_INTERNAL_REF_COUNTED_H_
#define WEFT_SERVER_ENGINE_INTERNAL_REF_COUNTED_H_

#include <atomic>
#include <cstdint>
#include <utility>

namespace weft::engine {

// Derive as `class Foo : public RefCounted<Foo>`; a new object holds one
// reference, which its creator adopts with RefPtr<Foo>::Adopt().
template <typename T>
class RefCounted {
 public:
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Takes a reference unless the object is already being destroyed (its
  // count reached zero); for callbacks that may race with the destructor
  // and must never bring the object back.
  bool TryRef() const {
    int32_t n = refs_.load(std::memory_order_relaxed);
    while (n != 0) {
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
        return true;
      }
    }
    return false;
  }
  void Unref() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete static_cast<const T*>(this);
    }
  }

 protected:
  RefCounted() = default;
  ~RefCounted() = default;

 private:
  mutable std::atomic<int32_t> refs_{1};
};

// A smart pointer holding one reference.
template <typename T>
class RefPtr {
 public:
  RefPtr() = default;
  // Takes a new reference.
  explicit RefPtr(T* p) : p_(p) {
    if (p_ != nullptr) p_->Ref();
  }
  // Takes over the reference the caller holds (e.g. from `new`).
  static RefPtr Adopt(T* p) {
    RefPtr r;
    r.p_ = p;
    return r;
  }
  RefPtr(const RefPtr& o) : RefPtr(o.p_) {}
  RefPtr(RefPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  RefPtr& operator=(RefPtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~RefPtr() {
    if (p_ != nullptr) p_->Unref();
  }

  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

template <typename T, typename... Args>
RefPtr<T> MakeRef(Args&&... args) {
  return RefPtr<T>::Adopt(new T(std::forward<Args>(args)...));
}

}  // namespace weft::engine

#endif  // WEFT_SERVER_ENGINE_INTERNAL_REF_COUNTED_H_
