// The google.rpc details of weft's errors, as messages, and the conversion
// between an absl::Status carrying them (api/errors.h) and the
// google.rpc.Status that travels in a call's grpc-status-details-bin trailer.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_ERROR_DETAILS_H_
#define WEFT_SERVER_COMMON_ERROR_DETAILS_H_

#include <optional>

#include "absl/status/status.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace weft::common {

std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& s);
std::optional<google::rpc::BadRequest> GetBadRequest(const absl::Status& s);
std::optional<google::rpc::RetryInfo> GetRetryInfo(const absl::Status& s);
std::optional<google::rpc::ResourceInfo> GetResourceInfo(const absl::Status& s);

// `s` with `detail` (a google.rpc detail message) as its payload, replacing
// one of the same type.
absl::Status WithDetail(absl::Status s,
                        const google::protobuf::Message& detail);

// `s` as google.rpc.Status: its code and message, and its details, an
// ErrorInfo always (with the code's name as reason when `s` has none).
// Payloads other than google.rpc details stay behind.
google::rpc::Status ToRpcStatus(const absl::Status& s);

// The status `rpc` describes, its google.rpc details as payloads (details
// of other types are dropped).
absl::Status FromRpcStatus(const google::rpc::Status& rpc);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_ERROR_DETAILS_H_
