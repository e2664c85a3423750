// What a plan's `lazy` nodes call: resolves a lazy value by name. The lazy
// registry implements it; the compiler binds each lazy node to one.

#ifndef WEFT_SERVER_PLAN_LAZY_RESOLVER_H_
#define WEFT_SERVER_PLAN_LAZY_RESOLVER_H_

#include <string>

#include "server/engine/cancellation.h"
#include "server/handlers/handler.h"

namespace weft::plan {

class LazyResolver {
 public:
  virtual ~LazyResolver() = default;
  // Resolves "lazyValues/{id}": `done` gets the value or why not, exactly
  // once, possibly inline. Cancelling `token` makes this caller leave.
  //
  // Thread-safety: called from any thread, concurrently.
  virtual void Resolve(const std::string& name,
                       const engine::CancellationToken& token,
                       handlers::CallDone done) = 0;
};

}  // namespace weft::plan

#endif  // WEFT_SERVER_PLAN_LAZY_RESOLVER_H_
