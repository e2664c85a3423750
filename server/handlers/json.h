// A JSON parser for values that come from outside (HTTP response bodies,
// files): linear in the input, with a limit on nesting, into
// google.protobuf.Value.
//
// protobuf's own JSON parser takes time that grows with the square of the
// nesting depth and has no limit of its own, so one hostile body can hold a
// thread for minutes; this one reads each byte once and refuses a document
// nested deeper than its limit as soon as it gets there.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_HANDLERS_JSON_H_
#define WEFT_SERVER_HANDLERS_JSON_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace weft::handlers {

// How deep a value from outside may nest (objects and lists): deep enough
// for real documents, shallow enough that an outcome holding it stays within
// what protobuf parsers accept (an object level costs three message levels).
inline constexpr int kMaxJsonDepth = 32;

// Parses one JSON document (RFC 8259). Errors:
//   INVALID_ARGUMENT  not JSON, or a string that is not UTF-8: the message
//                     says what and where ("line 3, column 7: ...")
//   OUT_OF_RANGE      nested deeper than `max_depth` (message says where)
// Numbers beyond a double's range are refused; duplicate keys keep the last.
absl::StatusOr<google::protobuf::Value> ParseJson(
    absl::string_view text, int max_depth = kMaxJsonDepth);

// The deepest nesting of objects and lists in `text`, read as JSON as far
// as it goes (for messages about documents other parsers refuse).
int JsonDepth(absl::string_view text);

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_JSON_H_
