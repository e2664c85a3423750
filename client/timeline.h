// The outcome as a timeline: what `weft run --timeline` and `weft task get
// --timeline` print. One row per node, indented by its depth, with a bar from
// its start to its end on one time axis shared by every row, then its state,
// how long it ran, and what else it says: a race's winner, attempts when it
// was retried, a failure's code and message.
//
//                    0                 0.10s                0.20s
//   race             ========================================  succeeded  201ms
//   winner backup
//     primary        ==========                                failed      50ms
//     UNAVAILABLE: primary is down backup
//     ========================================  succeeded  200ms  winner
//     fallback       ========================================  cancelled  201ms
//
// A map's children are labelled with their item's index (`send[3]`).
// A node that never started (a skipped step) has no bar; one still running
// (a task's outcome while it runs) ends at `now`. With colour, bars are blocks
// coloured by state (green succeeded, red failed, yellow cancelled or timed
// out, grey skipped) and the winner is bold; without, they are ASCII and the
// state column says it all.
//
// Thread-safe: no state.

#ifndef WEFT_CLIENT_TIMELINE_H_
#define WEFT_CLIENT_TIMELINE_H_

#include <string>

#include "absl/time/time.h"
#include "weft/v1/outcome.pb.h"

namespace weft::cli {

struct TimelineOptions {
  // Columns of the bars.
  int width = 40;
  // ANSI colours and Unicode blocks (for a terminal), else plain ASCII.
  bool color = false;
  // Where the bars of nodes still running end.
  absl::Time now = absl::InfinitePast();
};

// The drawing, one line per node under an axis line, each ending in '\n'.
std::string Timeline(const weft::v1::NodeOutcome& root,
                     const TimelineOptions& options);

// The timeline as `weft` prints it: coloured where stdout wants colour,
// running nodes drawn to now.
std::string TimelineForStdout(const weft::v1::NodeOutcome& root);

// Whether standard output wants colour: a terminal, TERM not "dumb", and
// NO_COLOR (no-color.org) unset.
bool StdoutWantsColor();

// How the timeline writes a duration: "850us", "201ms", "1.50s", "2m05s".
std::string ShortDuration(absl::Duration d);

}  // namespace weft::cli

#endif  // WEFT_CLIENT_TIMELINE_H_
