// How large a google.protobuf.Value is: its exact serialized size (what an
// outcome or a response carries), and an estimate of the memory it holds in
// this process (what budgets count). Composite values can be sized from
// their parts before they are built, so that a value too large for its
// budget is refused instead of being copied first.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_HANDLERS_VALUE_SIZE_H_
#define WEFT_SERVER_HANDLERS_VALUE_SIZE_H_

#include <cstddef>
#include <cstdint>

#include "google/protobuf/struct.pb.h"

namespace weft::handlers {

struct ValueSize {
  // Bytes of the Value serialized (what ByteSizeLong() returns).
  int64_t wire = 0;
  // Bytes it holds in memory, estimated: its wire bytes plus the objects
  // protobuf allocates per value and per object field. At least `wire`.
  int64_t memory = 0;
  // Levels of lists and objects: 0 for a scalar, 1 for [1] or {"a": 1},
  // 1 + the deepest element for a list or an object. Sums (+=) keep the
  // deeper of the two.
  int depth = 0;

  ValueSize& operator+=(const ValueSize& o) {
    wire += o.wire;
    memory += o.memory;
    if (o.depth > depth) depth = o.depth;
    return *this;
  }
};

// Walks `value` once.
ValueSize Measure(const google::protobuf::Value& value);

// Levels of lists and objects in `value` (ValueSize::depth), without sizing
// it.
int Depth(const google::protobuf::Value& value);

// A string Value of `length` bytes.
ValueSize StringSize(size_t length);

// A list Value or an object (Struct) Value, sized from its elements.
class CompositeSize {
 public:
  // A list element.
  void AddItem(const ValueSize& item);
  // An object field named by `key_length` bytes.
  void AddField(size_t key_length, const ValueSize& value);
  ValueSize AsList() const;
  ValueSize AsObject() const;

 private:
  int64_t payload_ = 0;
  int64_t memory_ = 0;
  int depth_ = 0;  // The deepest element's.
};

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_VALUE_SIZE_H_
