// Timestamps from outcomes, as absl::Time, for tests.

#ifndef WEFT_TESTS_TESTING_TIME_H_
#define WEFT_TESTS_TESTING_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace weft::testing {

inline absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_TIME_H_
