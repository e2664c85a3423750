// The handler interface: what a `call` node runs.
//
// A handler is registered once under its name. For each call node of a plan,
// the plan compiler checks the node's args against the handler's declared
// arguments and then asks the handler to Prepare() a Call; that happens
// before anything runs, so every bad argument is reported up front with its
// path. The interpreter then Start()s the Call, once per attempt.
//
// Args and values are protobuf's Struct and Value (JSON-like); handlers never
// see plan protos.
//
// Thread-safety: Handler and Call are immutable once built; Start() may run
// concurrently from any thread.

#ifndef WEFT_SERVER_HANDLERS_HANDLER_H_
#define WEFT_SERVER_HANDLERS_HANDLER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "server/engine/cancellation.h"
#include "server/engine/env.h"

namespace weft::handlers {

// The JSON type an argument must have.
enum class ArgType {
  kAny,
  kString,
  kNumber,
  kInteger,
  kBool,
  kDuration,  // A string in google.protobuf.Duration's JSON form, "1.5s".
  kCode,      // A canonical status code name other than OK.
  kObject,
  kList,
};

// One declared argument.
struct ArgSpec {
  std::string name;
  ArgType type = ArgType::kAny;
  bool required = false;
  std::string description;
  // For kInteger: the accepted range.
  int64_t min = 0;
  int64_t max = int64_t{1} << 53;
};

// What ListHandlers shows, and what the compiler checks args against.
struct HandlerInfo {
  std::string name;
  std::string description;
  std::vector<ArgSpec> args;
  // True if the handler holds a thread while it runs (CPU work, blocking
  // IO). Such handlers run on a thread pool, never on the event loop.
  bool blocking = false;
  // The argument whose value a successful call returns as its own, if any
  // ("value" for the value handler): the compiler checks that it fits where
  // the call stands in the plan.
  std::string result_arg;
};

// What a running call may use.
struct CallContext {
  engine::Env& env;
  // Cancelled when the call should stop: a sibling failed, a timeout passed,
  // the caller went away. A call that stops for this reason reports the
  // token's reason.
  engine::CancellationToken token;
  // The caller's W3C traceparent header, passed on to HTTP upstreams; empty
  // if it sent none. Valid while the call runs.
  absl::string_view traceparent = {};
};

// The result of a call: its value, or why it failed.
using CallResult = absl::StatusOr<google::protobuf::Value>;
using CallDone = absl::AnyInvocable<void(CallResult) &&>;

// A prepared invocation: a handler bound to checked arguments.
class Call {
 public:
  virtual ~Call() = default;
  // Runs the call; `done` is called exactly once, possibly inline. May be
  // called again for another attempt. Once `done` is called (here, or on
  // another thread) the Call may be destroyed: the run it belongs to may
  // end, and the plan that owns the Call with it. Start touches neither
  // `this` nor `ctx` after handing `done` on.
  virtual void Start(const CallContext& ctx, CallDone done) const = 0;
};

// Reads arguments that CheckArgs() has accepted.
class Args {
 public:
  explicit Args(const google::protobuf::Struct& args) : args_(args) {}

  // nullptr when absent.
  const google::protobuf::Value* Find(absl::string_view name) const;
  std::string String(absl::string_view name,
                     absl::string_view fallback = "") const;
  absl::Duration Duration(absl::string_view name,
                          absl::Duration fallback = absl::ZeroDuration()) const;
  absl::StatusCode Code(absl::string_view name) const;
  int64_t Integer(absl::string_view name, int64_t fallback = 0) const;

 private:
  const google::protobuf::Struct& args_;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual const HandlerInfo& info() const = 0;
  // Binds checked arguments. `args` outlives the returned Call. Errors are
  // INVALID_ARGUMENT whose message starts with the argument's path,
  // "args.<name>: ...".
  virtual absl::StatusOr<std::unique_ptr<Call>> Prepare(
      const google::protobuf::Struct& args) const = 0;
};

// Checks `args` against `info.args`: no unknown names, every required one
// present, each of its declared type; durations parse and are not negative;
// code names are canonical. Errors are INVALID_ARGUMENT with messages
// starting "args" or "args.<name>".
absl::Status CheckArgs(const HandlerInfo& info,
                       const google::protobuf::Struct& args);

// INVALID_ARGUMENT "args.<name>: <what>", the form every argument error
// takes; for handlers' own checks in Prepare(). A name that is long or not
// plain (a key a caller chose) is quoted briefly: args["a b"...].
absl::Status ArgError(absl::string_view name, absl::string_view what);
std::string ArgPath(absl::string_view name);

// Marks an error that trying again cannot mend, such as a destination the
// operator has not allowed: retry policies skip it whatever codes they list.
absl::Status Permanent(absl::Status error);
bool IsPermanent(const absl::Status& error);

// "string", "duration", ... as the error messages and the CLI print them.
absl::string_view ArgTypeName(ArgType type);

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_HANDLER_H_
