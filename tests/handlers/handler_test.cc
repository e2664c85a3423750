#include "server/handlers/handler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"

namespace weft::handlers {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::FromJson;
using ::weft::testing::IsOk;
using ::weft::testing::StatusIs;
using Struct = google::protobuf::Struct;

const HandlerInfo& Info() {
  static const HandlerInfo* info = new HandlerInfo{
      .name = "demo",
      .args = {{.name = "any", .type = ArgType::kAny},
               {.name = "str", .type = ArgType::kString},
               {.name = "num", .type = ArgType::kNumber},
               {.name = "int", .type = ArgType::kInteger},
               {.name = "flag", .type = ArgType::kBool},
               {.name = "wait", .type = ArgType::kDuration},
               {.name = "code", .type = ArgType::kCode},
               {.name = "obj", .type = ArgType::kObject},
               {.name = "list", .type = ArgType::kList},
               {.name = "must", .type = ArgType::kString, .required = true}},
  };
  return *info;
}

absl::Status Check(absl::string_view json) {
  return CheckArgs(Info(), FromJson<Struct>(json));
}

TEST(CheckArgsTest, AcceptsEveryTypeWhenRight) {
  EXPECT_THAT(Check(R"({"must": "x", "any": null, "str": "s", "num": 1.5,
                       "int": 3, "flag": true, "wait": "0.5s",
                       "code": "NOT_FOUND", "obj": {}, "list": []})"),
              IsOk());
}

TEST(CheckArgsTest, MissingRequiredArgumentIsNamed) {
  EXPECT_THAT(Check(R"({})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "args.must: required by handler \"demo\" but missing"));
}

TEST(CheckArgsTest, UnknownArgumentIsNamedWithTheKnownOnes) {
  EXPECT_THAT(Check(R"({"must": "x", "mustt": 1})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("args.mustt: unknown argument of handler "
                                 "\"demo\"; it takes any, str")));
}

TEST(CheckArgsTest, MistypedArgumentsSayWhatWasExpectedAndGot) {
  struct Case {
    const char* json;
    const char* message;
  } cases[] = {
      {R"({"must": 1})", "args.must: expected string, got number"},
      {R"({"must": "x", "num": "1"})", "args.num: expected number, got string"},
      {R"({"must": "x", "int": 1.5})", "args.int: expected a whole number"},
      {R"({"must": "x", "int": -1})", "args.int: must not be negative"},
      {R"({"must": "x", "flag": "yes"})",
       "args.flag: expected bool, got string"},
      {R"({"must": "x", "wait": 5})",
       "args.wait: expected a duration string like \"1.5s\", got number"},
      {R"({"must": "x", "wait": "5"})", "args.wait: \"5\" is not a duration"},
      {R"({"must": "x", "wait": "-1s"})",
       "args.wait: must not be negative, got \"-1s\""},
      {R"({"must": "x", "code": "BROKEN"})",
       "args.code: \"BROKEN\" is not a status code name"},
      {R"({"must": "x", "code": "OK"})",
       "args.code: must be an error code, not OK"},
      {R"({"must": "x", "obj": []})", "args.obj: expected object, got list"},
      {R"({"must": "x", "list": {}})", "args.list: expected list, got object"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Check(c.json), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr(c.message)))
        << c.json;
  }
}

}  // namespace
}  // namespace weft::handlers
