#include "server/handlers/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weft::handlers {

absl::Status HandlerRegistry::Register(std::unique_ptr<Handler> handler) {
  const std::string name = handler->info().name;
  auto [it, inserted] = handlers_.emplace(name, std::move(handler));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("a handler named \"", name, "\" is already registered"));
  }
  return absl::OkStatus();
}

const Handler* HandlerRegistry::Find(absl::string_view name) const {
  auto it = handlers_.find(name);
  return it == handlers_.end() ? nullptr : it->second.get();
}

std::vector<const Handler*> HandlerRegistry::List() const {
  std::vector<const Handler*> out;
  out.reserve(handlers_.size());
  for (const auto& [name, h] : handlers_) out.push_back(h.get());
  return out;
}

std::string HandlerRegistry::Names() const {
  std::vector<absl::string_view> names;
  for (const auto& [name, h] : handlers_) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

}  // namespace weft::handlers
