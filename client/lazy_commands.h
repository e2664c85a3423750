// `weft lazy ...`: lazy values from the command line.

#ifndef WEFT_CLIENT_LAZY_COMMANDS_H_
#define WEFT_CLIENT_LAZY_COMMANDS_H_

#include <string>
#include <vector>

#include "client/client.h"

namespace weft::cli {

// Usage of the lazy commands, for `weft --help`.
extern const char kLazyUsage[];

// `args` are what follows "lazy": a subcommand and its operands.
int LazyCommand(const client::Client& client,
                const std::vector<std::string>& args);

}  // namespace weft::cli

#endif  // WEFT_CLIENT_LAZY_COMMANDS_H_
