// Errors a program can read (Google AIP-193).
//
// weft's errors are absl::Status values that carry google.rpc details as
// payloads, keyed by the details' Any type URLs:
//   - ErrorInfo: a stable `reason` (the constants below), domain "weft", and
//     metadata such as the flag and limit that refused a call;
//   - BadRequest: one field violation per problem, the field named by its
//     proto path ("plan.parallel.children[1].id");
//   - RetryInfo: how long to wait before retrying;
//   - ResourceInfo: the resource a NOT_FOUND or ALREADY_EXISTS is about.
// weftd sends them as the google.rpc.Status in the call's
// grpc-status-details-bin trailer, and a node's reason in its outcome's
// Error.reason; the C++ client turns the trailer back into payloads, so the
// accessors below read an error the same on both sides. docs/errors.md
// lists the reasons.
//
// This header has no protobuf includes: api/error_details.h has the
// google.rpc messages and the conversions.
//
// Thread-safety: stateless.

#ifndef WEFT_SERVER_COMMON_ERRORS_H_
#define WEFT_SERVER_COMMON_ERRORS_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace weft::common {

// ErrorInfo.domain of every error weft makes.
inline constexpr absl::string_view kDomain = "weft";

// Reasons (ErrorInfo.reason; Error.reason in outcomes). Stable: programs
// compare them. An error without one of these carries its code's name
// ("INTERNAL").
//
// A request weftd refuses:
inline constexpr absl::string_view kInvalidField = "INVALID_FIELD";
inline constexpr absl::string_view kUnknownHandler = "UNKNOWN_HANDLER";
inline constexpr absl::string_view kUnknownPool = "UNKNOWN_POOL";
inline constexpr absl::string_view kPlanTooDeep = "PLAN_TOO_DEEP";
inline constexpr absl::string_view kPlanTooLarge = "PLAN_TOO_LARGE";
inline constexpr absl::string_view kValueTooDeep = "VALUE_TOO_DEEP";
inline constexpr absl::string_view kMalformedRequest = "MALFORMED_REQUEST";
inline constexpr absl::string_view kUrlNotAllowed = "URL_NOT_ALLOWED";
inline constexpr absl::string_view kBadReference = "BAD_REFERENCE";
inline constexpr absl::string_view kUnknownSecret = "UNKNOWN_SECRET";
// Callers (when --auth_tokens is set):
inline constexpr absl::string_view kCredentialsMissing = "CREDENTIALS_MISSING";
inline constexpr absl::string_view kCredentialsInvalid = "CREDENTIALS_INVALID";
inline constexpr absl::string_view kAdminOnly = "ADMIN_ONLY";
// Limits and load:
inline constexpr absl::string_view kAnswerTooLarge = "ANSWER_TOO_LARGE";
inline constexpr absl::string_view kMemoryExhausted = "MEMORY_EXHAUSTED";
inline constexpr absl::string_view kTooManyRuns = "TOO_MANY_RUNS";
inline constexpr absl::string_view kTaskQueueFull = "TASK_QUEUE_FULL";
inline constexpr absl::string_view kPrincipalQuota = "PRINCIPAL_QUOTA";
inline constexpr absl::string_view kTaskStoreFull = "TASK_STORE_FULL";
inline constexpr absl::string_view kTaskStoreUnavailable =
    "TASK_STORE_UNAVAILABLE";
inline constexpr absl::string_view kLazyStoreFull = "LAZY_STORE_FULL";
inline constexpr absl::string_view kPoolFull = "POOL_FULL";
inline constexpr absl::string_view kShuttingDown = "SHUTTING_DOWN";
// Resources:
inline constexpr absl::string_view kTaskNotFound = "TASK_NOT_FOUND";
inline constexpr absl::string_view kNodeNotFound = "NODE_NOT_FOUND";
inline constexpr absl::string_view kLazyValueNotFound = "LAZY_VALUE_NOT_FOUND";
inline constexpr absl::string_view kRequestIdReused = "REQUEST_ID_REUSED";
inline constexpr absl::string_view kLazyValueExists = "LAZY_VALUE_EXISTS";
inline constexpr absl::string_view kTaskNotFinished = "TASK_NOT_FINISHED";
inline constexpr absl::string_view kSequenceAhead = "SEQUENCE_AHEAD";
inline constexpr absl::string_view kLazyValueDeleted = "LAZY_VALUE_DELETED";
inline constexpr absl::string_view kLazyValueCycle = "LAZY_VALUE_CYCLE";
inline constexpr absl::string_view kLazyComputationFailed =
    "LAZY_COMPUTATION_FAILED";
// A node's failure (in outcomes, and in a lazy value's computation):
inline constexpr absl::string_view kNodeTimeout = "NODE_TIMEOUT";
inline constexpr absl::string_view kRunDeadline = "RUN_DEADLINE";
inline constexpr absl::string_view kNodeDeadline = "NODE_DEADLINE";
inline constexpr absl::string_view kRefNoValue = "REF_NO_VALUE";
inline constexpr absl::string_view kRefPathNotFound = "REF_PATH_NOT_FOUND";
inline constexpr absl::string_view kRefBadValue = "REF_BAD_VALUE";
inline constexpr absl::string_view kSiblingFailed = "SIBLING_FAILED";
inline constexpr absl::string_view kQuorumReached = "QUORUM_REACHED";
inline constexpr absl::string_view kQuorumUnreachable = "QUORUM_UNREACHABLE";
inline constexpr absl::string_view kNotStarted = "NOT_STARTED";
inline constexpr absl::string_view kRaceLost = "RACE_LOST";
inline constexpr absl::string_view kRunCancelled = "RUN_CANCELLED";
inline constexpr absl::string_view kFailedByPlan = "FAILED_BY_PLAN";
inline constexpr absl::string_view kHttpStatus = "HTTP_STATUS";
inline constexpr absl::string_view kHttpUnreachable = "HTTP_UNREACHABLE";
inline constexpr absl::string_view kHttpTimeout = "HTTP_TIMEOUT";
inline constexpr absl::string_view kHttpResponseTooLarge =
    "HTTP_RESPONSE_TOO_LARGE";
inline constexpr absl::string_view kHttpTooManyRedirects =
    "HTTP_TOO_MANY_REDIRECTS";

// The payloads under which layers without protobuf (the engine) put a
// reason and its metadata as plain text (engine::WithReason); Reason(),
// ReasonMetadata() and ToRpcStatus read them like an ErrorInfo.
inline constexpr absl::string_view kPlainReasonUrl = "type.weft.dev/reason";
inline constexpr absl::string_view kPlainMetadataUrl =
    "type.weft.dev/reason-metadata/";

// Every reason above, in the order docs/errors.md lists them.
std::initializer_list<absl::string_view> AllReasons();

using Metadata =
    std::initializer_list<std::pair<absl::string_view, absl::string_view>>;

// `s` with ErrorInfo{reason, "weft", metadata}, replacing any it had.
// Returns OK unchanged.
absl::Status WithReason(absl::Status s, absl::string_view reason,
                        Metadata metadata = {});

// WithReason for a limit: metadata {"flag": flag, "limit": limit}.
absl::Status WithLimit(absl::Status s, absl::string_view reason,
                       absl::string_view flag, int64_t limit);

// `s` with one more BadRequest field violation (`field` in proto form).
absl::Status WithFieldViolation(absl::Status s, absl::string_view field,
                                absl::string_view description);

// INVALID_ARGUMENT "<field>: <description>" with a field violation and
// `reason` (INVALID_FIELD unless said).
absl::Status FieldError(absl::string_view field, absl::string_view description,
                        absl::string_view reason = kInvalidField);

// `s` with RetryInfo{retry_delay = delay}.
absl::Status WithRetryDelay(absl::Status s, absl::Duration delay);

// `s` with ResourceInfo{resource_type, resource_name}, e.g. ("weft.v1.Task",
// "tasks/3f...").
absl::Status WithResource(absl::Status s, absl::string_view resource_type,
                          absl::string_view resource_name);

// A status with `s`'s code and details and `message` instead of its message.
absl::Status WithMessage(const absl::Status& s, absl::string_view message);

// The reason `s` carries, or its code's name when it carries none; "" for OK.
std::string Reason(const absl::Status& s);

// The metadata value `key` of `s`'s ErrorInfo, or "".
std::string ReasonMetadata(const absl::Status& s, absl::string_view key);

// The retry delay `s` carries, or absl::InfiniteDuration() for none.
absl::Duration RetryDelay(const absl::Status& s);

}  // namespace weft::common

#endif  // WEFT_SERVER_COMMON_ERRORS_H_
