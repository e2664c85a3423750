#include "server/handlers/value_size.h"

#include <algorithm>

namespace weft::handlers {
namespace {

using google::protobuf::Value;

// What protobuf allocates besides the bytes themselves (from SpaceUsedLong
// with protobuf 3.21 on x86-64, rounded up; the tests hold the estimate
// above it): a Value (with room for the string object a string value
// allocates), the Struct or ListValue of a composite, and an object field
// (a map node holding its key and Value).
constexpr int64_t kValueMemory = 64;
constexpr int64_t kObjectMemory = 160;
constexpr int64_t kListMemory = 64;
constexpr int64_t kFieldMemory = 128;
// A string longer than std::string's inline buffer has its bytes on the heap.
constexpr int64_t kHeapStringMemory = 16;

int64_t VarintSize(uint64_t n) {
  int64_t size = 1;
  while (n >= 0x80) {
    n >>= 7;
    ++size;
  }
  return size;
}

// A length-delimited field with a one-byte tag, holding `n` bytes.
int64_t Delimited(int64_t n) {
  return 1 + VarintSize(static_cast<uint64_t>(n)) + n;
}

}  // namespace

ValueSize StringSize(size_t length) {
  const auto n = static_cast<int64_t>(length);
  return {Delimited(n), kValueMemory + (n > 15 ? n + kHeapStringMemory : 0)};
}

void CompositeSize::AddItem(const ValueSize& item) {
  payload_ += Delimited(item.wire);
  memory_ += item.memory + 8;  // The element's pointer.
  if (item.depth > depth_) depth_ = item.depth;
}

void CompositeSize::AddField(size_t key_length, const ValueSize& value) {
  const auto k = static_cast<int64_t>(key_length);
  payload_ += Delimited(Delimited(k) + Delimited(value.wire));
  memory_ += value.memory + kFieldMemory + k;
  if (value.depth > depth_) depth_ = value.depth;
}

ValueSize CompositeSize::AsList() const {
  return {Delimited(payload_), kValueMemory + kListMemory + memory_,
          depth_ + 1};
}

ValueSize CompositeSize::AsObject() const {
  return {Delimited(payload_), kValueMemory + kObjectMemory + memory_,
          depth_ + 1};
}

ValueSize Measure(const Value& value) {
  switch (value.kind_case()) {
    case Value::kNullValue:
    case Value::kBoolValue:
      return {2, kValueMemory};
    case Value::kNumberValue:
      return {9, kValueMemory};
    case Value::kStringValue:
      return StringSize(value.string_value().size());
    case Value::kStructValue: {
      CompositeSize s;
      for (const auto& [key, v] : value.struct_value().fields()) {
        s.AddField(key.size(), Measure(v));
      }
      return s.AsObject();
    }
    case Value::kListValue: {
      CompositeSize s;
      for (const Value& v : value.list_value().values()) s.AddItem(Measure(v));
      return s.AsList();
    }
    case Value::KIND_NOT_SET:
      break;
  }
  return {0, kValueMemory};
}

int Depth(const Value& value) {
  int deepest = 0;
  if (value.has_struct_value()) {
    for (const auto& [key, v] : value.struct_value().fields()) {
      deepest = std::max(deepest, Depth(v));
    }
  } else if (value.has_list_value()) {
    for (const Value& v : value.list_value().values()) {
      deepest = std::max(deepest, Depth(v));
    }
  } else {
    return 0;
  }
  return deepest + 1;
}

}  // namespace weft::handlers
