#include "server/tasks/task_names.h"

#include <sys/random.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/errors.h"
#include "server/common/text.h"

namespace weft::tasks {
namespace {

constexpr char kPrefix[] = "tasks/";
constexpr char kTaskType[] = "weft.v1.Task";  // ResourceInfo.resource_type
constexpr int kIdHexDigits = 32;

}  // namespace

std::string NewTaskName() {
  unsigned char bytes[kIdHexDigits / 2];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return absl::StrCat(
      kPrefix, absl::BytesToHexString(absl::string_view(
                   reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

absl::StatusOr<std::string> ParseTaskName(absl::string_view name) {
  absl::string_view id = name;
  if (!absl::ConsumePrefix(&id, kPrefix) || id.size() != kIdHexDigits ||
      !std::all_of(id.begin(), id.end(), [](char c) {
        return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
      })) {
    return common::FieldError(
        "name",
        absl::StrCat(common::Quote(name),
                     " is not a task name; task names look like tasks/",
                     std::string(kIdHexDigits, 'f').replace(0, 8, "0123abcd"),
                     " (", kIdHexDigits, " hex digits)"));
  }
  return std::string(id);
}

void ForgottenNames::Remember(const std::string& name, const char* why,
                              const std::string& creator) {
  auto [it, inserted] = why_.emplace(name, Why{why, creator});
  if (!inserted) {
    it->second = Why{why, creator};
    return;
  }
  order_.push_back(name);
  while (static_cast<int>(order_.size()) > capacity_) {
    why_.erase(order_.front());
    order_.pop_front();
  }
}

absl::Status ForgottenNames::NotFound(absl::string_view name,
                                      const Reach& reach) const {
  auto it = why_.find(name);
  const bool told = it != why_.end() && reach.Covers(it->second.creator);
  const absl::Status s = absl::NotFoundError(
      absl::StrCat(name, ": ", told ? it->second.why : "no such task"));
  return common::WithResource(common::WithReason(s, common::kTaskNotFound),
                              kTaskType, name);
}

}  // namespace weft::tasks
