#include "server/service/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/handlers/duration.h"
#include "server/plan/proto_time.h"

namespace weft::service {

absl::StatusOr<weft::v1::ServerConfig> ParseConfig(absl::string_view json) {
  weft::v1::ServerConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config,
      options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a weft.v1.ServerConfig: ", s.message().ToString()));
  }
  return config;
}

absl::StatusOr<weft::v1::ServerConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<weft::v1::ServerConfig> config = ParseConfig(text.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::vector<std::pair<std::string, std::string>> ConfigFlags(
    const weft::v1::ServerConfig& config) {
  using google::protobuf::FieldDescriptor;
  std::vector<std::pair<std::string, std::string>> out;
  const google::protobuf::Reflection* r = config.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(config, &fields);  // Present fields, in field-number order.
  for (const FieldDescriptor* f : fields) {
    if (f->name() == "lazy_values") continue;
    std::string value;
    if (f->name() == "pools") {
      std::vector<std::string> pools;
      for (const weft::v1::PoolConfig& p : config.pools()) {
        pools.push_back(
            absl::StrCat(p.name(), "=", p.threads(), ":", p.queue()));
      }
      value = absl::StrJoin(pools, ",");
    } else if (f->is_repeated()) {
      // Only lists of strings are left: http_allow.
      std::vector<std::string> items;
      for (int i = 0; i < r->FieldSize(config, f); ++i) {
        items.push_back(r->GetRepeatedString(config, f, i));
      }
      value = absl::StrJoin(items, ",");
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // Only google.protobuf.Duration fields are messages here.
      const auto& d = static_cast<const google::protobuf::Duration&>(
          r->GetMessage(config, f));
      value = handlers::FormatJsonDuration(plan::FromProto(d));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
      value = absl::StrCat(r->GetInt32(config, f));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      value = r->GetBool(config, f) ? "true" : "false";
    } else {
      value = r->GetString(config, f);
    }
    out.emplace_back(f->name(), std::move(value));
  }
  return out;
}

}  // namespace weft::service
