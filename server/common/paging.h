// Paging for the List methods: one page size rule and one message for every
// list weft serves (AIP-158: 0 asks for the default).
//
// Thread-safe: no state.

#ifndef WEFT_SERVER_COMMON_PAGING_H_
#define WEFT_SERVER_COMMON_PAGING_H_

#include "absl/status/statusor.h"

namespace weft::common {

// A page holds this many items when the request says 0.
inline constexpr int kDefaultPageSize = 100;
// The most a request may ask for.
inline constexpr int kMaxPageSize = 1000;

// The page size a request's `page_size` asks for: kDefaultPageSize for 0,
// else the value itself; INVALID_ARGUMENT with a BadRequest violation on
// `page_size` for a negative value or one above kMaxPageSize.
absl::StatusOr<int> PageSize(int requested);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_PAGING_H_
