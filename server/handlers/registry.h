// HandlerRegistry: the handlers `call` nodes can name.
//
// Thread-safety: register everything at start-up, before the registry is
// shared; after that it is read-only and safe to read from any thread.

#ifndef WEFT_SERVER_HANDLERS_REGISTRY_H_
#define WEFT_SERVER_HANDLERS_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/handlers/handler.h"

namespace weft::handlers {

class HandlerRegistry {
 public:
  // ALREADY_EXISTS if the name is taken.
  absl::Status Register(std::unique_ptr<Handler> handler);

  // nullptr if no handler has that name.
  const Handler* Find(absl::string_view name) const;

  // Every handler, by name.
  std::vector<const Handler*> List() const;

  // "fail, sleep, value", for error messages.
  std::string Names() const;

 private:
  std::map<std::string, std::unique_ptr<Handler>, std::less<>> handlers_;
};

// Registers the built-in handlers: value, sleep, fail and hash (the http
// handler needs a client: http.h). ALREADY_EXISTS if one of their names is
// taken.
absl::Status RegisterBuiltinHandlers(HandlerRegistry& registry);

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_REGISTRY_H_
