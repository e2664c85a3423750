#include "client/timeline.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/json.h"

namespace weft::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using weft::testing::FromJson;
using weft::v1::NodeOutcome;

// Times are seconds after 2026-12-03T10:00:00Z.
std::string At(double seconds) {
  const absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 12, 3, 10, 0, 0),
                                       absl::UTCTimeZone()) +
                       absl::Seconds(seconds);
  return absl::StrCat(
      "\"", absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()), "\"");
}

// A node's JSON with its times; `rest` is the other fields.
std::string Node(const std::string& rest, double start, double end) {
  return absl::StrCat("{", rest, R"(, "startTime": )", At(start),
                      R"(, "endTime": )", At(end), "}");
}

// The README's failover: the primary fails at 50 ms, the backup wins at
// 200 ms, the last resort is cancelled then.
NodeOutcome Failover() {
  return FromJson<NodeOutcome>(Node(
      absl::StrCat(
          R"("kind": "NODE_KIND_RACE", "state": "NODE_STATE_SUCCEEDED", "attempts": 1,
             "winner": "backup", "children": [)",
          Node(
              R"("id": "primary", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_FAILED",
                  "attempts": 1, "error": {"code": "UNAVAILABLE", "message": "primary is down"})",
              0, 0.05),
          ",",
          Node(
              R"("id": "backup", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED",
                  "attempts": 1, "value": {"hits": 3})",
              0, 0.2),
          ",",
          Node(
              R"("id": "fallback", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_CANCELLED",
                  "attempts": 1, "error": {"code": "CANCELLED", "message": "the race was won by backup"})",
              0, 0.2),
          "]"),
      0, 0.2));
}

TEST(TimelineTest, DrawsTheFailoverRaceInPlainText) {
  EXPECT_EQ(
      Timeline(Failover(), {.width = 20}),
      "            0       100ms  200ms\n"
      "race        ====================  succeeded   200ms  winner backup\n"
      "  primary   =====                 failed       50ms  UNAVAILABLE: "
      "primary is down\n"
      "  backup    ====================  succeeded   200ms  winner\n"
      "  fallback  ====================  cancelled   200ms  CANCELLED: the "
      "race was won by backup\n");
}

// The dashboard: three sources at once, each bar where its call ran.
TEST(TimelineTest, DrawsEachBranchOfAParallelOnTheSameAxis) {
  const NodeOutcome dashboard = FromJson<NodeOutcome>(Node(
      absl::StrCat(
          R"("kind": "NODE_KIND_PARALLEL", "state": "NODE_STATE_SUCCEEDED", "attempts": 1,
             "children": [)",
          Node(
              R"("id": "user", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED")",
              0, 0.4),
          ",",
          Node(
              R"("id": "recentPosts", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED")",
              0, 0.2),
          ",",
          Node(
              R"("id": "statistics", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED")",
              0.1, 0.3),
          "]"),
      0, 0.4));
  EXPECT_EQ(Timeline(dashboard, {.width = 8}),
            "               0  400ms\n"
            "parallel       ========  succeeded   400ms\n"
            "  user         ========  succeeded   400ms\n"
            "  recentPosts  ====      succeeded   200ms\n"
            "  statistics     ====    succeeded   200ms\n");
}

// A sequence whose second step failed after two attempts: the third never
// started (no bar), the second shows its retries.
TEST(TimelineTest, ShowsSkippedStepsAndAttempts) {
  const NodeOutcome seq = FromJson<NodeOutcome>(Node(
      absl::StrCat(
          R"("kind": "NODE_KIND_SEQUENCE", "state": "NODE_STATE_FAILED",
             "error": {"code": "INTERNAL", "message": "step 2 failed"}, "children": [)",
          Node(
              R"("kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED", "attempts": 1)",
              0, 1),
          ",",
          Node(
              R"("kind": "NODE_KIND_OFFLOAD", "state": "NODE_STATE_FAILED", "attempts": 2,
                  "error": {"code": "INTERNAL", "message": "boom"})",
              1, 2),
          R"(, {"kind": "NODE_KIND_CALL", "state": "NODE_STATE_SKIPPED"}])"),
      0, 2));
  EXPECT_EQ(Timeline(seq, {.width = 20}),
            "           0       1.00s  2.00s\n"
            "sequence   ====================  failed      2.00s  INTERNAL: "
            "step 2 failed\n"
            "  call     ==========            succeeded   1.00s\n"
            "  offload            ==========  failed      1.00s  2 attempts  "
            "INTERNAL: boom\n"
            "  call                           skipped\n");
}

// A map's children share their id: each row names the item it ran for, and
// an item that never got its turn (the map failed first) has no bar.
TEST(TimelineTest, LabelsAMapsChildrenWithTheirItems) {
  const NodeOutcome map = FromJson<NodeOutcome>(Node(
      absl::StrCat(
          R"("id": "send", "kind": "NODE_KIND_MAP", "state": "NODE_STATE_FAILED",
             "error": {"code": "UNAVAILABLE", "message": "smtp is down"}, "children": [)",
          Node(
              R"("id": "mail", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SUCCEEDED")",
              0, 1),
          ",",
          Node(
              R"("id": "mail", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_FAILED",
                  "error": {"code": "UNAVAILABLE", "message": "smtp is down"})",
              0, 2),
          R"(, {"id": "mail", "kind": "NODE_KIND_CALL", "state": "NODE_STATE_SKIPPED"}])"),
      0, 2));
  EXPECT_EQ(Timeline(map, {.width = 20}),
            "           0       1.00s  2.00s\n"
            "send       ====================  failed      2.00s  UNAVAILABLE: "
            "smtp is down\n"
            "  mail[0]  ==========            succeeded   1.00s\n"
            "  mail[1]  ====================  failed      2.00s  UNAVAILABLE: "
            "smtp is down\n"
            "  mail[2]                        skipped\n");
}

// A running task's outcome: nodes without an end run to `now`.
TEST(TimelineTest, NodesStillRunningEndAtNow) {
  NodeOutcome running = FromJson<NodeOutcome>(
      absl::StrCat(R"({"kind": "NODE_KIND_CALL", "startTime": )", At(0), "}"));
  const absl::Time now = absl::FromCivil(
      absl::CivilSecond(2026, 12, 3, 10, 0, 3), absl::UTCTimeZone());
  EXPECT_EQ(Timeline(running, {.width = 12, .now = now}),
            "      0      3.00s\n"
            "call  ============  running     3.00s\n");
}

TEST(TimelineTest, ColourMarksStatesAndTheWinner) {
  const std::string drawn = Timeline(Failover(), {.width = 20, .color = true});
  EXPECT_THAT(drawn, HasSubstr("\033[31m\u2588"));  // failed: red blocks
  EXPECT_THAT(drawn, HasSubstr("\033[33mcancelled\033[0m"));
  EXPECT_THAT(drawn, HasSubstr("\033[1m  backup\033[0m"));  // the winner, bold
  EXPECT_THAT(drawn, Not(HasSubstr("=")));
  // Colour does not move the columns: without escapes it is the plain
  // drawing's layout with blocks for '='.
  std::string stripped;
  for (size_t i = 0; i < drawn.size(); ++i) {
    if (drawn[i] == '\033') {
      i = drawn.find('m', i);
      continue;
    }
    stripped += drawn[i];
  }
  std::string plain = Timeline(Failover(), {.width = 20});
  std::string blocks;
  for (char c : plain)
    blocks += c == '=' ? std::string("\u2588") : std::string(1, c);
  EXPECT_EQ(stripped, blocks);
}

TEST(TimelineTest, AnOutcomeThatNeverRanHasNoAxis) {
  const NodeOutcome skipped =
      FromJson<NodeOutcome>(R"({"id": "x", "state": "NODE_STATE_SKIPPED"})");
  EXPECT_EQ(Timeline(skipped, {.width = 4}),
            "   0\n"
            "x        skipped\n");
}

TEST(TimelineTest, ShortDurations) {
  EXPECT_EQ(ShortDuration(absl::Microseconds(850)), "850us");
  EXPECT_EQ(ShortDuration(absl::Milliseconds(201)), "201ms");
  EXPECT_EQ(ShortDuration(absl::Milliseconds(1500)), "1.50s");
  EXPECT_EQ(ShortDuration(absl::Seconds(125)), "2m05s");
  EXPECT_EQ(ShortDuration(absl::Hours(3) + absl::Minutes(7)), "3h07m");
  EXPECT_EQ(ShortDuration(-absl::Seconds(1)), "0us");
}

}  // namespace
}  // namespace weft::cli
