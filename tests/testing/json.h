// Messages for tests, written as the JSON clients send.

#ifndef WEFT_TESTS_TESTING_JSON_H_
#define WEFT_TESTS_TESTING_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/common/serialize.h"

namespace weft::testing {

template <typename Message>
Message FromJson(absl::string_view json) {
  Message m;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &m);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << json;
  return m;
}

// Compact JSON with object keys sorted, so tests can compare strings.
inline std::string ToJson(const google::protobuf::Message& m) {
  return weft::common::ToCompactJson(m);
}

}  // namespace weft::testing

#endif  // WEFT_TESTS_TESTING_JSON_H_
