#include "server/common/paging.h"

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace weft::common {

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0 || requested > kMaxPageSize) {
    return FieldError(
        "page_size",
        absl::StrCat("must be from 1 to ", kMaxPageSize, " (0 for ",
                     kDefaultPageSize, "), got ", requested));
  }
  return requested == 0 ? kDefaultPageSize : requested;
}

}  // namespace weft::common
