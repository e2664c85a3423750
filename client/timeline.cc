#include "client/timeline.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace weft::cli {
namespace {

using weft::v1::NodeOutcome;

// A node as a row: where its label goes and when it ran.
struct Row {
  const NodeOutcome* node;
  int depth;
  std::string label;
  bool started;
  absl::Time start;
  absl::Time end;  // `now` while it runs.
  bool winner;     // It won its parent race.
};

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string KindName(weft::v1::NodeKind kind) {
  std::string name = weft::v1::NodeKind_Name(kind);
  constexpr absl::string_view kPrefix = "NODE_KIND_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

std::string StateName(weft::v1::NodeState state) {
  switch (state) {
    case weft::v1::NODE_STATE_SUCCEEDED:
      return "succeeded";
    case weft::v1::NODE_STATE_FAILED:
      return "failed";
    case weft::v1::NODE_STATE_CANCELLED:
      return "cancelled";
    case weft::v1::NODE_STATE_TIMED_OUT:
      return "timed out";
    case weft::v1::NODE_STATE_SKIPPED:
      return "skipped";
    default:
      return "running";
  }
}

// The ANSI colour of a state's bar and name.
const char* StateColor(weft::v1::NodeState state) {
  switch (state) {
    case weft::v1::NODE_STATE_SUCCEEDED:
      return "\033[32m";
    case weft::v1::NODE_STATE_FAILED:
      return "\033[31m";
    case weft::v1::NODE_STATE_CANCELLED:
    case weft::v1::NODE_STATE_TIMED_OUT:
      return "\033[33m";
    case weft::v1::NODE_STATE_SKIPPED:
      return "\033[90m";
    default:
      return "\033[36m";
  }
}
constexpr char kReset[] = "\033[0m";
constexpr char kBold[] = "\033[1m";

// `item` is the node's item when its parent is a map (-1 otherwise): a map's
// children share their id, so each row says which item it ran for.
void Collect(const NodeOutcome& node, int depth, bool winner, int item,
             absl::Time now, std::vector<Row>& rows) {
  Row row{&node, depth, "", node.has_start_time(), {}, {}, winner};
  // A node without an id is named by its kind and its place.
  row.label =
      absl::StrCat(std::string(2 * depth, ' '),
                   node.id().empty() ? KindName(node.kind()) : node.id());
  if (item >= 0) absl::StrAppend(&row.label, "[", item, "]");
  if (row.started) {
    row.start = ToTime(node.start_time());
    row.end = node.has_end_time() ? ToTime(node.end_time())
                                  : std::max(now, row.start);
  }
  rows.push_back(std::move(row));
  const bool map = node.kind() == weft::v1::NODE_KIND_MAP;
  for (int i = 0; i < node.children_size(); ++i) {
    const NodeOutcome& child = node.children(i);
    const bool won = node.kind() == weft::v1::NODE_KIND_RACE &&
                     !node.winner().empty() && child.id() == node.winner();
    Collect(child, depth + 1, won, map ? i : -1, now, rows);
  }
}

// The column of `t` on a bar `width` wide spanning [origin, origin + span].
int Column(absl::Time t, absl::Time origin, absl::Duration span, int width) {
  if (span <= absl::ZeroDuration()) return 0;
  const double at = absl::FDivDuration(t - origin, span) * width;
  return std::clamp(static_cast<int>(std::lround(at)), 0, width);
}

std::string Bar(const Row& row, absl::Time origin, absl::Duration span,
                const TimelineOptions& options) {
  const int width = options.width;
  if (!row.started) return std::string(width, ' ');
  const int from = std::min(Column(row.start, origin, span, width), width - 1);
  // Every node that ran shows at least one column.
  const int to = std::max(Column(row.end, origin, span, width), from + 1);
  std::string out(from, ' ');
  if (options.color) {
    absl::StrAppend(&out, StateColor(row.node->state()));
    for (int i = from; i < to; ++i) out += "\u2588";
    absl::StrAppend(&out, kReset);
  } else {
    out.append(to - from, '=');
  }
  out.append(width - to, ' ');
  return out;
}

// What the row says after its duration.
std::string Notes(const Row& row) {
  const NodeOutcome& node = *row.node;
  std::vector<std::string> notes;
  if (row.winner) notes.push_back("winner");
  if (!node.winner().empty()) notes.push_back("winner " + node.winner());
  if (node.attempts() > 1) {
    notes.push_back(absl::StrCat(node.attempts(), " attempts"));
  }
  if (node.state() != weft::v1::NODE_STATE_SUCCEEDED && node.has_error() &&
      (node.children_size() == 0 ||
       node.state() == weft::v1::NODE_STATE_FAILED)) {
    std::string message = node.error().message();
    constexpr size_t kMax = 80;
    if (message.size() > kMax) message = message.substr(0, kMax - 3) + "...";
    notes.push_back(absl::StrCat(node.error().code(), ": ", message));
  }
  return absl::StrJoin(notes, "  ");
}

// The axis line: "0" above the bars' first column, the span's end
// right-aligned above their last, and its middle centred between where
// there is room.
std::string Axis(int label_width, absl::Duration span, int width) {
  const int zero = label_width;
  std::string line = std::string(zero, ' ') + "0";
  if (span <= absl::ZeroDuration()) return line;
  const std::string end = ShortDuration(span);
  const int end_at =
      std::max(zero + width - static_cast<int>(end.size()), zero + 2);
  const std::string mid = ShortDuration(span / 2);
  const int mid_at = zero + width / 2 - static_cast<int>(mid.size()) / 2;
  if (mid_at >= zero + 2 && mid_at + static_cast<int>(mid.size()) < end_at) {
    line.append(mid_at - line.size(), ' ');
    line += mid;
  }
  line.append(end_at - line.size(), ' ');
  line += end;
  return line;
}

}  // namespace

std::string ShortDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  if (d < absl::Milliseconds(1)) {
    return absl::StrCat(absl::ToInt64Microseconds(d), "us");
  }
  if (d < absl::Seconds(1)) {
    return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  }
  if (d < absl::Minutes(1)) {
    return absl::StrFormat("%.2fs", absl::ToDoubleSeconds(d));
  }
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string Timeline(const NodeOutcome& root, const TimelineOptions& options) {
  std::vector<Row> rows;
  Collect(root, 0, false, -1, options.now, rows);

  // The axis spans the first start to the last end.
  absl::Time origin = absl::InfiniteFuture();
  absl::Time last = absl::InfinitePast();
  for (const Row& r : rows) {
    if (!r.started) continue;
    origin = std::min(origin, r.start);
    last = std::max(last, r.end);
  }
  const bool any = origin != absl::InfiniteFuture();
  const absl::Duration span = any ? last - origin : absl::ZeroDuration();

  size_t label_width = 0;
  for (const Row& r : rows) label_width = std::max(label_width, r.label.size());
  label_width += 2;

  std::string out = Axis(static_cast<int>(label_width), span, options.width);
  out += '\n';
  for (const Row& r : rows) {
    std::string state = StateName(r.node->state());
    std::string label = r.label;
    if (options.color) {
      state = absl::StrCat(StateColor(r.node->state()), state, kReset);
      if (r.winner) label = absl::StrCat(kBold, label, kReset);
    }
    // Padding is counted on the visible text, not the escape codes.
    const size_t state_pad = 10 - StateName(r.node->state()).size();
    const size_t label_pad = label_width - r.label.size();
    std::string line = absl::StrCat(
        label, std::string(label_pad, ' '), Bar(r, origin, span, options), "  ",
        state, std::string(state_pad, ' '), " ",
        absl::StrFormat("%6s", r.started ? ShortDuration(r.end - r.start) : ""),
        "  ", Notes(r));
    absl::StripTrailingAsciiWhitespace(&line);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string TimelineForStdout(const NodeOutcome& root) {
  return Timeline(root, {.color = StdoutWantsColor(), .now = absl::Now()});
}

bool StdoutWantsColor() {
  if (isatty(STDOUT_FILENO) != 1) return false;
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color != nullptr && *no_color != '\0') return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || absl::string_view(term) != "dumb";
}

}  // namespace weft::cli
