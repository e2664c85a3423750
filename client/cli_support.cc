#include "client/cli_support.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "server/common/proto_time.h"
#include "server/common/serialize.h"

namespace weft::cli {
namespace {

using client::IsTerminal;

// Re-indents compact JSON by two spaces per level.
std::string Indent(const std::string& compact) {
  std::string out;
  out.reserve(compact.size() * 2);
  int depth = 0;
  bool in_string = false;
  auto newline = [&] {
    out += '\n';
    out.append(2 * depth, ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < compact.size()) {
        out += compact[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[':
        // Keep empty objects and lists on one line.
        if (i + 1 < compact.size() &&
            (compact[i + 1] == '}' || compact[i + 1] == ']')) {
          out += c;
          out += compact[++i];
          break;
        }
        out += c;
        ++depth;
        newline();
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

namespace {

// Reads `json` as far as it goes, without building anything: whether its
// top-level object has the key `key`, and its deepest nesting of objects
// and lists.
struct JsonShape {
  bool has_key = false;
  int depth = 0;
};
JsonShape ShapeOf(absl::string_view json, absl::string_view key) {
  JsonShape shape;
  int depth = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      const size_t start = ++i;
      while (i < json.size() && json[i] != '"') i += json[i] == '\\' ? 2 : 1;
      // A key of the top-level object: a string at depth 1 followed by ':'.
      size_t next = i + 1;
      while (next < json.size() && absl::ascii_isspace(json[next])) ++next;
      if (depth == 1 && next < json.size() && json[next] == ':' &&
          json.substr(start, i - start) == key) {
        shape.has_key = true;
      }
    } else if (c == '{' || c == '[') {
      shape.depth = std::max(shape.depth, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return shape;
}

// Reads a request that has a "plan" field, or a bare plan node (which never
// has one) as that request's plan.
template <typename Request>
absl::StatusOr<Request> ParseRequestWithPlan(absl::string_view json) {
  const google::protobuf::StringPiece text(json.data(), json.size());
  if (!absl::StartsWith(absl::StripLeadingAsciiWhitespace(json), "{")) {
    return absl::InvalidArgumentError(
        "the input is not a JSON object: a plan or a request is { ... }");
  }
  const JsonShape shape = ShapeOf(json, "plan");
  Request request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  google::protobuf::util::Status s;
  if (shape.has_key) {
    s = google::protobuf::util::JsonStringToMessage(text, &request, options);
  } else {
    s = google::protobuf::util::JsonStringToMessage(
        text, request.mutable_plan(), options);
  }
  if (!s.ok()) {
    const std::string why = s.message().ToString();
    if (absl::StrContains(why, "transcoder produced invalid protobuf") ||
        absl::StrContains(why, "Max recursion depth")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the input nests ", shape.depth,
          " levels of objects and lists, more than protobuf's JSON reader "
          "takes, and more than weftd takes at any setting: plans nest at "
          "most --max_plan_depth (16 by default) and values --max_value_depth "
          "(16 by default)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the input is not a ", Request::descriptor()->full_name(),
                     " or weft.v1.PlanNode: ", why.substr(0, why.find('\n'))));
  }
  return request;
}

}  // namespace

absl::StatusOr<weft::v1::RunRequest> ParseRunRequestJson(
    absl::string_view json) {
  return ParseRequestWithPlan<weft::v1::RunRequest>(json);
}

absl::StatusOr<weft::v1::CreateTaskRequest> ParseCreateTaskRequestJson(
    absl::string_view json) {
  return ParseRequestWithPlan<weft::v1::CreateTaskRequest>(json);
}

absl::StatusOr<weft::v1::LazyValue> ParseLazyValueJson(absl::string_view json) {
  return ParseRequestWithPlan<weft::v1::LazyValue>(json);
}

absl::Duration Elapsed(const weft::v1::Task& task) {
  auto to_time = [](const google::protobuf::Timestamp& t) {
    return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  };
  if (!task.has_start_time()) return absl::ZeroDuration();
  const absl::Time end =
      task.has_end_time() ? to_time(task.end_time()) : absl::Now();
  return std::max(end - to_time(task.start_time()), absl::ZeroDuration());
}

std::string ProgressLine(const weft::v1::Task& task, int width) {
  const weft::v1::TaskProgress& p = task.progress();
  const int total = std::max(p.leaves_total(), 0);
  const int done = std::clamp(p.leaves_done(), 0, total);
  width = std::max(width, 1);
  const int filled =
      total == 0 ? (IsTerminal(task.state()) ? width : 0)
                 : static_cast<int>(static_cast<int64_t>(done) * width / total);
  std::string state = weft::v1::TaskState_Name(task.state());
  if (absl::StartsWith(state, "TASK_STATE_")) {
    state = state.substr(sizeof("TASK_STATE_") - 1);
  }
  const int digits = static_cast<int>(absl::StrCat(total).size());
  return absl::StrFormat("[%s%s] %*d/%d leaves  %d failed  %d running  %s",
                         std::string(filled, '#'),
                         std::string(width - filled, '.'), digits, done, total,
                         p.leaves_failed(), p.leaves_running(), state);
}

std::string ToJson(const google::protobuf::Message& message) {
  return Indent(common::ToCompactJson(message));
}

}  // namespace weft::cli
