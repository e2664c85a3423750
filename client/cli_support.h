// What only the `weft` CLI uses: the JSON forms it reads (a request or a
// bare plan) and prints (indented like grpcurl), the names it accepts, and
// its progress line. Programs use client.h and plan_builders.h.

#ifndef WEFT_CLIENT_CLI_SUPPORT_H_
#define WEFT_CLIENT_CLI_SUPPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "weft/v1/lazy.pb.h"
#include "weft/v1/orchestrator.pb.h"
#include "weft/v1/task.pb.h"

namespace weft::cli {

// How long the task has run: from its start to its end, or to now while it
// runs; zero while it is queued.
absl::Duration Elapsed(const weft::v1::Task& task);

// One line for a terminal: a bar `width` characters wide, then counts, e.g.
//   [##########..........]  50/100 leaves  2 failed  3 running  RUNNING
std::string ProgressLine(const weft::v1::Task& task, int width);

// Reads what `weft task create` accepts: a CreateTaskRequest ({"plan": ...})
// or a bare plan node.
absl::StatusOr<weft::v1::CreateTaskRequest> ParseCreateTaskRequestJson(
    absl::string_view json);

// Reads what `weft lazy create` accepts: a LazyValue ({"plan": ...,
// "ttl": ...}) or a bare plan node.
absl::StatusOr<weft::v1::LazyValue> ParseLazyValueJson(absl::string_view json);

// Reads what `weft run` accepts: a RunRequest ({"plan": ...}) or a bare plan
// node ({"parallel": ...}), in the proto3 JSON mapping.
absl::StatusOr<weft::v1::RunRequest> ParseRunRequestJson(
    absl::string_view json);

// Proto3 JSON, camelCase field names, indented by two spaces like grpcurl.
// Object keys of Struct values come out sorted, so output is stable.
// (common::ToCompactJson gives the same on one line.)
std::string ToJson(const google::protobuf::Message& message);

}  // namespace weft::cli

#endif  // WEFT_CLIENT_CLI_SUPPORT_H_
