// `weft task ...` and `weft info`: background tasks from the command line.

#ifndef WEFT_CLIENT_TASK_COMMANDS_H_
#define WEFT_CLIENT_TASK_COMMANDS_H_

#include <string>
#include <vector>

#include "client/client.h"

namespace weft::cli {

// Usage of the task commands, for `weft --help`.
extern const char kTaskUsage[];

// Flags given more than once: --label k=v and --state S.
struct RepeatedFlags {
  std::vector<std::string> labels;
  std::vector<std::string> states;
};

// `args` are what follows "task": a subcommand and its operands.
int TaskCommand(const client::Client& client,
                const std::vector<std::string>& args,
                const RepeatedFlags& repeated);

// `weft info`: version, uptime, tasks by state, pools.
int Info(const client::Client& client);

}  // namespace weft::cli

#endif  // WEFT_CLIENT_TASK_COMMANDS_H_
