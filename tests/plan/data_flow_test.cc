// Data flow in plans: $ref, $format and $literal in a call's args, checked
// by the compiler and filled in by the interpreter; and a node's deadline
// across its attempts.

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/common/outcome.h"
#include "server/engine/event_loop.h"
#include "server/engine/memory_budget.h"
#include "server/handlers/handler.h"
#include "server/plan/compiler.h"
#include "server/plan/interpreter.h"
#include "server/plan/refs.h"
#include "tests/engine/test_util.h"
#include "tests/testing/json.h"
#include "tests/testing/manual_env.h"
#include "tests/testing/plan_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/sync.h"
#include "tests/testing/time.h"

namespace weft::plan {
namespace {

using ::testing::HasSubstr;
using ::weft::testing::PlanFromJson;
using ::weft::testing::StatusIs;
using ::weft::testing::ToJson;
using weft::v1::NodeOutcome;

class DataFlowTest : public ::testing::Test {
 protected:
  DataFlowTest() {
    EXPECT_TRUE(handlers::RegisterBuiltinHandlers(registry_).ok());
  }

  absl::StatusOr<std::unique_ptr<const CompiledPlan>> TryCompile(
      absl::string_view json) {
    return plan::Compile(PlanFromJson(json), "plan", registry_, Limits(),
                         &pools_);
  }

  // Starts `plan` on the manual clock; its outcome lands in `*outcome`.
  void Start(std::shared_ptr<const CompiledPlan> plan, RunOptions options,
             std::optional<NodeOutcome>* outcome) {
    options.env = &env_;
    Execute(std::move(plan), std::move(options),
            [outcome](NodeOutcome o) { outcome->emplace(std::move(o)); });
  }

  // Starts `plan` under `source`, as a caller that may cancel it does.
  void StartCancellable(std::shared_ptr<const CompiledPlan> plan,
                        engine::CancellationSource* source,
                        std::optional<NodeOutcome>* outcome) {
    RunOptions options;
    options.token = source->token();
    options.source = source;
    Start(std::move(plan), std::move(options), outcome);
  }

  // Runs the plan on the manual clock, advancing it by `advance`.
  NodeOutcome Run(absl::string_view json, bool root_only = false,
                  absl::Duration advance = absl::Seconds(60)) {
    auto plan = TryCompile(json);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return NodeOutcome();
    std::optional<NodeOutcome> outcome;
    RunOptions options;
    options.root_only = root_only;
    Start(*std::move(plan), std::move(options), &outcome);
    for (int i = 0; i < 600 && !outcome.has_value(); ++i) {
      env_.AdvanceBy(advance / 600);
    }
    EXPECT_TRUE(outcome.has_value());
    return outcome.value_or(NodeOutcome());
  }

  // The node at `path` of `outcome` (see common::FindNode).
  static const NodeOutcome& At(const NodeOutcome& outcome,
                               absl::string_view path) {
    auto node = common::FindNode(outcome, path);
    EXPECT_TRUE(node.ok()) << node.status();
    static const NodeOutcome kNone;
    return node.ok() ? **node : kNone;
  }

  engine::ManualEnv env_;
  handlers::HandlerRegistry registry_;
  PoolSet pools_{{{"default", 1, 10}}};
};

// --- The compiler: what it accepts ---------------------------------------

TEST_F(DataFlowTest, EveryValidReferenceShapeCompiles) {
  EXPECT_THAT(TryCompile(R"({"sequence": {"children": [
    {"id": "user", "call": {"handler": "value", "args": {"value": {"id": 7, "tags": ["a"]}}}},
    {"id": "step-2_b", "parallel": {"children": [
      {"id": "inner", "call": {"handler": "value", "args": {"value": 1}}}]}},
    {"call": {"handler": "value", "args": {"value": [
      {"$ref": "user"}, {"$ref": "user.id"}, {"$ref": "user.tags[0]"},
      {"$ref": "step-2_b.inner"}, {"$ref": "inner"},
      {"deep": {"list": [{"$format": "u{user.id}/{inner}{{x}}"}]}},
      {"$literal": {"$ref": "not a reference"}}]}}}
  ]}})"),
              weft::testing::IsOk());
}

TEST_F(DataFlowTest, ReferencesReachEarlierStepsOfEveryEnclosingSequence) {
  // The inner sequence's step reads the outer sequence's first step.
  EXPECT_THAT(TryCompile(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
    {"parallel": {"children": [
      {"sequence": {"children": [
        {"id": "b", "call": {"handler": "value", "args": {"value": 2}}},
        {"call": {"handler": "value", "args": {"value": [{"$ref": "a"}, {"$ref": "b"}]}}}
      ]}},
      {"call": {"handler": "value", "args": {"value": {"$ref": "a"}}}}]}}
  ]}})"),
              weft::testing::IsOk());
}

TEST_F(DataFlowTest, ALiteralOrAFormatWithoutReferencesIsPreparedAtOnce) {
  auto plan = TryCompile(R"({"call": {"handler": "sleep", "args": {
    "duration": {"$format": "{{not a slot}}"},
    "value": {"$literal": {"$format": "kept"}}}}})");
  // The handler checked the duration now: "{not a slot}" is not one.
  EXPECT_THAT(plan, StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("plan.call.args.duration")));
  NodeOutcome out = Run(R"({"call": {"handler": "value", "args": {
    "value": {"$literal": {"$format": "kept", "$ref": "x"}}}}})");
  EXPECT_EQ(ToJson(out.value()), R"({"$format":"kept","$ref":"x"})");
  out = Run(R"({"call": {"handler": "value", "args": {
    "value": {"$format": "{{braces}}"}}}})");
  EXPECT_EQ(ToJson(out.value()), R"("{braces}")");
}

TEST_F(DataFlowTest, ArgsThatHoldReferencesAreStillCheckedForNames) {
  EXPECT_THAT(TryCompile(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": 1}}},
    {"call": {"handler": "value", "args": {"value": 1, "valu": {"$ref": "a"}}}}]}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("plan.sequence.children[1].call.args.valu: "
                                 "unknown argument")));
  // The other args' types too.
  EXPECT_THAT(
      TryCompile(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": "1s"}}},
    {"call": {"handler": "sleep", "args": {"duration": 5, "value": {"$ref": "a"}}}}]}})"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("plan.sequence.children[1].call.args.duration")));
}

// --- The compiler: what it refuses, each with its path and why ------------

struct BadRef {
  const char* name;
  const char* message;
};

// `{"sequence": {"children": [A, B]}}` with a value call `a` first.
std::string Seq(absl::string_view second) {
  return absl::StrCat(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": {"x": [1, 2]}}}},
    )",
                      second, "]}}");
}

// A call of `value` whose value is `arg`.
std::string Val(absl::string_view arg) {
  return absl::StrCat(R"({"call": {"handler": "value", "args": {"value": )",
                      arg, "}}}");
}

const BadRef kBadRefs[] = {
    {"UnknownId",
     "plan.sequence.children[1].call.args.value.$ref: \"b\": "
     "no node has id \"b\"; ids in scope here: \"a\""},
    {"EmptyRef", "args.value.$ref: empty; a reference names a node"},
    {"RefNotAString", "args.value.$ref: must be a string"},
    {"FormatNotAString", "args.value.$format: must be a string"},
    {"MixedKeys",
     "args.value: an object with a \"$ref\" key has no other keys, and this "
     "one has \"other\"; to pass such an object as it is, wrap it"},
    {"IdNotReferenceable",
     "does not start with a node id that references "
     "can name: ids matching [A-Za-z_]"},
    {"BadIndex", "\"a.x[one]\": a list index at offset 3 must be digits"},
    {"EmptyField", "\"a..x\": an empty field name at offset 2"},
    {"UnclosedSlot", "args.value.$format: the '{' at offset 2 is not closed"},
    {"LoneBrace", "args.value.$format: a lone '}' at offset 1"},
    {"ItselfOrALaterStep",
     "is in step 2 of the sequence at plan, which runs "
     "after this call's step 1"},
    {"ParallelSibling",
     "node \"p1\" runs beside this call in the parallel "
     "at plan.sequence.children[1], so it may still be running"},
    {"RaceBranch", "is in another branch of the race"},
    {"EnclosingNode", "encloses this call (it is plan.sequence.children[1])"},
    {"Ambiguous",
     "id \"a\" is ambiguous here: plan.sequence.children[0] "
     "and plan.sequence.children[1].sequence.children[0]"},
};

// Plans for kBadRefs, by name (kept apart so the table reads as messages).
std::string BadRefPlan(absl::string_view name) {
  if (name == "UnknownId") return Seq(Val(R"({"$ref": "b"})"));
  if (name == "EmptyRef") return Seq(Val(R"({"$ref": ""})"));
  if (name == "RefNotAString") return Seq(Val(R"({"$ref": 3})"));
  if (name == "FormatNotAString") return Seq(Val(R"({"$format": ["a"]})"));
  if (name == "MixedKeys") return Seq(Val(R"({"$ref": "a", "other": 1})"));
  if (name == "IdNotReferenceable") return Seq(Val(R"({"$ref": "9a"})"));
  if (name == "BadIndex") return Seq(Val(R"({"$ref": "a.x[one]"})"));
  if (name == "EmptyField") return Seq(Val(R"({"$ref": "a..x"})"));
  if (name == "UnclosedSlot") return Seq(Val(R"({"$format": "x/{a.x"})"));
  if (name == "LoneBrace") return Seq(Val(R"({"$format": "x}"})"));
  if (name == "ItselfOrALaterStep") {
    return Seq(absl::StrCat(Val(R"({"$ref": "later"})"), R"(,
      {"id": "later", "call": {"handler": "value", "args": {"value": 1}}})"));
  }
  if (name == "ParallelSibling") {
    return Seq(absl::StrCat(R"({"parallel": {"children": [
      {"id": "p1", "call": {"handler": "value", "args": {"value": 1}}},)",
                            Val(R"({"$ref": "p1"})"), "]}}"));
  }
  if (name == "RaceBranch") {
    return Seq(absl::StrCat(R"({"race": {"children": [
      {"id": "r1", "call": {"handler": "value", "args": {"value": 1}}},)",
                            Val(R"({"$ref": "r1"})"), "]}}"));
  }
  if (name == "EnclosingNode") {
    return Seq(absl::StrCat(R"({"id": "outer", "parallel": {"children": [)",
                            Val(R"({"$ref": "outer"})"), "]}}"));
  }
  if (name == "Ambiguous") {
    return Seq(absl::StrCat(R"({"sequence": {"children": [
      {"id": "a", "call": {"handler": "value", "args": {"value": 2}}},)",
                            Val(R"({"$ref": "a"})"), "]}}"));
  }
  return "";
}

TEST_F(DataFlowTest, EveryInvalidReferenceShapeIsRefused) {
  for (const BadRef& bad : kBadRefs) {
    SCOPED_TRACE(bad.name);
    auto plan = TryCompile(BadRefPlan(bad.name));
    ASSERT_THAT(plan, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr(bad.message)));
    EXPECT_EQ(common::Reason(plan.status()), common::kBadReference);
  }
}

TEST_F(DataFlowTest, ARefusalSaysWhatWouldMakeItValid) {
  auto plan = TryCompile(BadRefPlan("ParallelSibling"));
  EXPECT_THAT(plan, StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("a call can read the values of the "
                                       "earlier steps of a sequence around "
                                       "it")));
}

TEST_F(DataFlowTest, ANodeWhoseIdCannotBeReferencedIsStillValid) {
  EXPECT_THAT(TryCompile(R"({"sequence": {"children": [
    {"id": "my user", "call": {"handler": "value", "args": {"value": 1}}},
    {"call": {"handler": "value", "args": {"value": 2}}}]}})"),
              weft::testing::IsOk());
}

// --- The interpreter: values flowing ---------------------------------------

constexpr char kUserThenPosts[] = R"({"sequence": {"children": [
  {"id": "user", "call": {"handler": "sleep", "args": {"duration": "0.1s",
    "value": {"id": 42, "name": "Ada", "posts": [{"title": "first"}, {"title": "second"}]}}}},
  {"id": "posts", "call": {"handler": "value", "args": {"value": {
    "url": {"$format": "https://api.example.com/users/{user.id}/posts?n={user.name}"},
    "title": {"$ref": "user.posts[1].title"},
    "whole": {"$ref": "user.posts"}}}}}
]}})";

TEST_F(DataFlowTest, ALaterStepReadsAnEarlierStepsValue) {
  for (bool root_only : {false, true}) {
    SCOPED_TRACE(root_only ? "root only" : "full");
    NodeOutcome out = Run(kUserThenPosts, root_only);
    ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
    EXPECT_EQ(
        ToJson(common::AssembleValue(out).list_value().values(1)),
        R"({"title":"second","url":"https://api.example.com/users/42/posts?n=Ada",)"
        R"("whole":[{"title":"first"},{"title":"second"}]})");
  }
}

TEST_F(DataFlowTest, ReferencesReadCompositesAndNestedSequences) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "both", "parallel": {"children": [
      {"id": "x", "call": {"handler": "value", "args": {"value": 1}}},
      {"id": "y", "sequence": {"children": [
        {"id": "y0", "call": {"handler": "value", "args": {"value": "a"}}},
        {"id": "y1", "call": {"handler": "value", "args": {"value": {"$ref": "y0"}}}}]}}]}},
    {"sequence": {"children": [
      {"id": "mid", "call": {"handler": "value", "args": {"value": {"$ref": "both.y[1]"}}}},
      {"call": {"handler": "value", "args": {"value": [
        {"$ref": "both"}, {"$ref": "mid"}, {"$ref": "x"}]}}}]}}
  ]}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(ToJson(At(out, "children[1]/children[1]").value()),
            R"([{"x":1,"y":["a","a"]},"a",1])");
}

TEST_F(DataFlowTest, AReferenceToARaceReadsItsWinnersValue) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "fastest", "race": {"children": [
      {"id": "slow", "call": {"handler": "sleep", "args": {"duration": "1s", "value": "slow"}}},
      {"id": "quick", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": {"from": "quick"}}}}]}},
    {"call": {"handler": "value", "args": {"value": {"$format": "won by {fastest.from}"}}}}
  ]}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(ToJson(out.children(1).value()), R"("won by quick")");
}

TEST_F(DataFlowTest, ANodeWithoutAValueFailsItsReaderWithRefNoValue) {
  // The race's loser.
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"race": {"children": [
      {"id": "slow", "call": {"handler": "sleep", "args": {"duration": "1s", "value": 1}}},
      {"id": "quick", "call": {"handler": "value", "args": {"value": 2}}}]}},
    {"id": "reader", "retry": {"max_attempts": 3}, "call": {"handler": "value", "args": {"value": {"$ref": "slow"}}}}
  ]}})");
  const NodeOutcome& reader = out.children(1);
  EXPECT_EQ(reader.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(reader.error().code(), "FAILED_PRECONDITION");
  EXPECT_EQ(reader.error().reason(), "REF_NO_VALUE");
  EXPECT_THAT(reader.error().message(),
              HasSubstr("\"slow\" reads node \"slow\", which finished without "
                        "a value: it ended CANCELLED"));
  // Not retried: the same reference would find nothing again.
  EXPECT_EQ(reader.attempts(), 1);

  // A failed child under JOIN_ALL_SETTLED.
  out = Run(R"({"sequence": {"children": [
    {"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
      {"id": "bad", "call": {"handler": "fail", "args": {"code": "NOT_FOUND", "message": "no such user"}}},
      {"id": "good", "call": {"handler": "value", "args": {"value": 2}}}]}},
    {"call": {"handler": "value", "args": {"value": {"$ref": "bad"}}}}
  ]}})");
  EXPECT_EQ(out.children(1).error().reason(), "REF_NO_VALUE");
  EXPECT_THAT(out.children(1).error().message(),
              HasSubstr("it ended FAILED (no such user)"));
}

TEST_F(DataFlowTest, APathNotInTheValueFailsTheReaderNamingTheShape) {
  struct Case {
    const char* ref;
    const char* message;
  };
  const Case cases[] = {
      {"user.nme",
       "\"user.nme\": user has no field \"nme\"; it is an object "
       "with keys \"id\", \"name\", \"posts\""},
      {"user.posts[5].title",
       "user.posts has no item [5]; it is a list of 2 items"},
      {"user.id.value", "user.id has no field \"value\"; it is the number 42"},
      {"user.name[0]", "user.name has no item [0]; it is the string \"Ada\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ref);
    NodeOutcome out = Run(absl::StrCat(R"({"sequence": {"children": [
      {"id": "user", "call": {"handler": "value", "args": {"value":
        {"id": 42, "name": "Ada", "posts": [{"title": "first"}, {"title": "second"}]}}}},
      {"retry": {"max_attempts": 3, "retryable_codes": ["INVALID_ARGUMENT"]},
       "call": {"handler": "value", "args": {"value": {"$ref": ")",
                                       c.ref, R"("}}}}]}})"));
    const NodeOutcome& reader = out.children(1);
    EXPECT_EQ(reader.state(), weft::v1::NODE_STATE_FAILED);
    EXPECT_EQ(reader.error().code(), "INVALID_ARGUMENT");
    EXPECT_EQ(reader.error().reason(), "REF_PATH_NOT_FOUND");
    EXPECT_THAT(reader.error().message(), HasSubstr(c.message));
    EXPECT_THAT(reader.error().message(),
                HasSubstr("plan.sequence.children[1].call.args.value.$ref"));
    EXPECT_EQ(reader.attempts(), 1) << "a missing path is not retried";
  }
}

TEST_F(DataFlowTest, FormatInsertsStringsAndNumbersAndRefusesTheRest) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "v", "call": {"handler": "value", "args": {"value":
      {"s": "text", "i": 42, "f": 2.5, "big": 100000001, "neg": -3, "b": true,
       "n": null, "o": {"k": 1}, "l": [1]}}}},
    {"call": {"handler": "value", "args": {"value": {"$format":
      "{v.s}|{v.i}|{v.f}|{v.big}|{v.neg}|{{v.s}}"}}}}
  ]}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(ToJson(out.children(1).value()),
            R"("text|42|2.5|100000001|-3|{v.s}")");
  for (const char* slot : {"v.b", "v.n", "v.o", "v.l"}) {
    SCOPED_TRACE(slot);
    out = Run(absl::StrCat(R"({"sequence": {"children": [
      {"id": "v", "call": {"handler": "value", "args": {"value":
        {"b": true, "n": null, "o": {"k": 1}, "l": [1]}}}},
      {"call": {"handler": "value", "args": {"value": {"$format": "x{)",
                           slot, R"(}"}}}}]}})"));
    EXPECT_EQ(out.children(1).error().reason(), "REF_BAD_VALUE");
    EXPECT_THAT(out.children(1).error().message(),
                HasSubstr("a $format slot takes a string or a number"));
  }
}

TEST_F(DataFlowTest, FilledArgsTheHandlerRefusesFailTheNode) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "d", "call": {"handler": "value", "args": {"value": "not a duration"}}},
    {"call": {"handler": "sleep", "args": {"duration": {"$ref": "d"}}}}
  ]}})");
  EXPECT_EQ(out.children(1).state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.children(1).error().code(), "INVALID_ARGUMENT");
  EXPECT_EQ(out.children(1).error().reason(), "REF_BAD_VALUE");
  EXPECT_THAT(out.children(1).error().message(), HasSubstr("args.duration: "));
  // And a good one runs: the duration came from the earlier step.
  out = Run(R"({"sequence": {"children": [
    {"id": "d", "call": {"handler": "value", "args": {"value": "0.5s"}}},
    {"call": {"handler": "sleep", "args": {"duration": {"$ref": "d"}, "value": "slept"}}}
  ]}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(weft::testing::ToTime(out.children(1).end_time()) -
                weft::testing::ToTime(out.children(1).start_time()),
            absl::Milliseconds(500));
}

TEST_F(DataFlowTest, ARetriedSequenceReadsTheValuesOfItsNewAttempt) {
  // The whole sequence is retried when its reader fails; the reader then
  // reads what its step made in that attempt (here the same value).
  NodeOutcome out =
      Run(R"({"retry": {"max_attempts": 2, "retryable_codes": ["UNAVAILABLE"]},
    "sequence": {"children": [
      {"id": "a", "call": {"handler": "value", "args": {"value": "x"}}},
      {"call": {"handler": "value", "args": {"value": {"$ref": "a"}}}}]}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(ToJson(common::AssembleValue(out)), R"(["x","x"])");
}

TEST_F(DataFlowTest, AReferenceOffloadedToAPoolRunsThere) {
  auto plan = TryCompile(R"({"sequence": {"children": [
    {"id": "a", "call": {"handler": "value", "args": {"value": "data"}}},
    {"offload": {"child": {"call": {"handler": "hash", "args": {"data": {"$ref": "a"}}}}}}]}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::optional<NodeOutcome> outcome;
  engine::EventLoop loop(1);
  RunOptions options;
  options.env = &loop;
  weft::testing::Notification done;
  Execute(*std::move(plan), std::move(options), [&](NodeOutcome o) {
    outcome.emplace(std::move(o));
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(weft::testing::kWait));
  ASSERT_EQ(outcome->state(), weft::v1::NODE_STATE_SUCCEEDED)
      << outcome->DebugString();
  EXPECT_TRUE(outcome->children(1).children(0).value().has_string_value());
}

TEST_F(DataFlowTest, CancellingARunStopsAReaderThatWaits) {
  auto plan = TryCompile(R"({"sequence": {"children": [
    {"id": "d", "call": {"handler": "value", "args": {"value": "10s"}}},
    {"call": {"handler": "sleep", "args": {"duration": {"$ref": "d"}}}}]}})");
  ASSERT_TRUE(plan.ok());
  engine::CancellationSource source;
  std::optional<NodeOutcome> outcome;
  StartCancellable(*std::move(plan), &source, &outcome);
  env_.AdvanceBy(absl::Seconds(1));
  EXPECT_FALSE(outcome.has_value());
  source.Cancel(absl::CancelledError("caller left"));
  env_.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->children(1).state(), weft::v1::NODE_STATE_CANCELLED);
}

TEST_F(DataFlowTest, CopiesForReferencesAreChargedAndGivenBackAtTheEnd) {
  // A 200 KB value read by ten calls, each copying it into its args: the
  // copies are charged while they are held, and given back when the readers
  // end; a budget that cannot hold them stops the run saying so.
  const std::string big(200'000, 'b');
  std::string readers;
  for (int i = 0; i < 10; ++i) {
    absl::StrAppend(
        &readers,
        R"(, {"call": {"handler": "sleep", "args": {"duration": "1s", "value": {"$ref": "big"}}}})");
  }
  const std::string plan = absl::StrCat(
      R"({"sequence": {"children": [
    {"id": "big", "call": {"handler": "value", "args": {"value": ")",
      big, R"("}}}, {"parallel": {"children": [)", readers.substr(2), "]}}]}}");
  auto compiled = TryCompile(plan);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  engine::MemoryBudget budget(10 << 20);
  {
    engine::MemoryCharge charge(&budget);
    std::optional<NodeOutcome> outcome;
    RunOptions options;
    options.env = &env_;
    options.memory = &charge;
    options.root_only = true;
    Execute(*std::move(compiled), std::move(options),
            [&](NodeOutcome o) { outcome.emplace(std::move(o)); });
    // The ten readers wait, each holding its args: 10 copies, the kept
    // reference and the value itself.
    EXPECT_GE(charge.bytes(), 12 * 200'000);
    env_.AdvanceBy(absl::Seconds(2));
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_SUCCEEDED);
    // What stays is the outcome: the value and its ten copies as values.
    EXPECT_LT(charge.bytes(), 12 * 200'000 + 100'000);
  }
  EXPECT_EQ(budget.used(), 0);

  engine::MemoryBudget small(1'000'000, "the runs in flight",
                             "--max_inflight_bytes");
  engine::MemoryCharge charge(&small);
  std::optional<NodeOutcome> outcome;
  RunOptions options;
  options.env = &env_;
  options.memory = &charge;
  Execute(*TryCompile(plan), std::move(options),
          [&](NodeOutcome o) { outcome.emplace(std::move(o)); });
  env_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_THAT(outcome->error().message(), HasSubstr("--max_inflight_bytes"));
}

// --- Deadlines across attempts ----------------------------------------------

TEST_F(DataFlowTest, ADeadlineBoundsAllAttemptsAndBackoffsTogether) {
  // Each attempt fails at 0.3s and waits 0.4s: 0.3 + 0.4 + 0.3 = 1.0 and the
  // deadline of 0.9s passes during the second attempt.
  NodeOutcome out = Run(R"({"deadline": "0.9s", "timeout": "1s",
    "retry": {"max_attempts": 10, "initial_backoff": "0.4s", "max_backoff": "0.4s"},
    "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "after": "0.3s"}}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(out.error().code(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(out.error().reason(), "NODE_DEADLINE");
  EXPECT_EQ(out.error().message(),
            "the node's deadline of 0.900s passed (2 attempts)");
  EXPECT_EQ(out.attempts(), 2);
  EXPECT_EQ(weft::testing::ToTime(out.end_time()) -
                weft::testing::ToTime(out.start_time()),
            absl::Milliseconds(900));
}

TEST_F(DataFlowTest, ADeadlinePassingDuringABackoffEndsTheNodeThen) {
  NodeOutcome out = Run(R"({"deadline": "0.5s",
    "retry": {"max_attempts": 10, "initial_backoff": "1s", "max_backoff": "1s"},
    "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "after": "0.1s"}}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(out.error().reason(), "NODE_DEADLINE");
  EXPECT_EQ(out.attempts(), 1);
  EXPECT_EQ(weft::testing::ToTime(out.end_time()) -
                weft::testing::ToTime(out.start_time()),
            absl::Milliseconds(500));
}

TEST_F(DataFlowTest, ANodeThatEndsBeforeItsDeadlineIsUntouched) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"deadline": "5s", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": 1}}},
    {"call": {"handler": "sleep", "args": {"duration": "6s", "value": 2}}}]}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
}

TEST_F(DataFlowTest, AnEnclosingDeadlineCancelsWhatRunsInside) {
  NodeOutcome out =
      Run(R"({"id": "outer", "deadline": "1s", "sequence": {"children": [
    {"call": {"handler": "sleep", "args": {"duration": "5s"}}}]}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(out.children(0).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(out.children(0).error().reason(), "NODE_DEADLINE");
}

TEST_F(DataFlowTest, ADeadlineMustBePositive) {
  EXPECT_THAT(
      TryCompile(
          R"({"deadline": "0s", "call": {"handler": "value", "args": {"value": 1}}})"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plan.deadline")));
}

// --- map -------------------------------------------------------------------

TEST_F(DataFlowTest, AMapRunsItsChildOncePerItemAndKeepsTheirOrder) {
  constexpr char kPlan[] = R"({"id": "m", "map": {"items": ["a", "b", "c"],
    "child": {"call": {"handler": "sleep", "args": {
      "duration": {"$format": "0.{$index}s"},
      "value": {"item": {"$ref": "$item"}, "at": {"$ref": "$index"}}}}}}})";
  for (bool root_only : {false, true}) {
    SCOPED_TRACE(root_only ? "root only" : "full");
    NodeOutcome out = Run(kPlan, root_only);
    ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
    EXPECT_EQ(out.kind(), weft::v1::NODE_KIND_MAP);
    EXPECT_EQ(
        ToJson(common::AssembleValue(out)),
        R"([{"at":0,"item":"a"},{"at":1,"item":"b"},{"at":2,"item":"c"}])");
    if (root_only) {
      EXPECT_EQ(out.children_size(), 0);
      continue;
    }
    // One child per item, each with its own times: the third slept 0.2s.
    ASSERT_EQ(out.children_size(), 3);
    EXPECT_EQ(weft::testing::ToTime(out.children(2).end_time()) -
                  weft::testing::ToTime(out.children(2).start_time()),
              absl::Milliseconds(200));
    EXPECT_EQ(out.join(), weft::v1::JOIN_ALL);
  }
}

TEST_F(DataFlowTest, TheNewsletterIsOnePlan) {
  // List the subscribers, then send each one a letter, two at a time, every
  // failure kept.
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "subscribers", "call": {"handler": "value", "args": {"value": [
      {"email": "ada@example.com"}, {"email": "grace@example.com"},
      {"email": "bounce@example.com"}, {"email": "alan@example.com"}]}}},
    {"id": "send", "map": {"items": {"$ref": "subscribers"}, "max_concurrency": 2,
      "join": "JOIN_ALL_SETTLED",
      "child": {"sequence": {"children": [
        {"id": "letter", "call": {"handler": "sleep", "args": {"duration": "1s",
          "value": {"$format": "Dear {$item.email}"}}}},
        {"call": {"handler": "value", "args": {"value": {"$ref": "letter"}}}}]}}}}
  ]}})",
                        /*root_only=*/true);
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  const google::protobuf::Value sent = out.value().list_value().values(1);
  ASSERT_EQ(sent.list_value().values_size(), 4);
  EXPECT_EQ(
      ToJson(sent.list_value().values(1)),
      R"({"state":"NODE_STATE_SUCCEEDED","value":["Dear grace@example.com","Dear grace@example.com"]})");
  // Two at a time, a second each: two seconds for four.
  EXPECT_EQ(weft::testing::ToTime(out.end_time()) -
                weft::testing::ToTime(out.start_time()),
            absl::Seconds(2));
}

TEST_F(DataFlowTest, AMapOverAnEmptyListSucceedsWithAnEmptyList) {
  for (const char* join : {"JOIN_ALL", "JOIN_ALL_SETTLED"}) {
    NodeOutcome out = Run(absl::StrCat(
        R"({"map": {"items": [], "join": ")", join,
        R"(", "child": {"call": {"handler": "value", "args": {"value": 1}}}}})"));
    EXPECT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << join;
    EXPECT_EQ(ToJson(common::AssembleValue(out)), "[]");
    EXPECT_EQ(out.children_size(), 0);
  }
}

TEST_F(DataFlowTest, AMapWhoseChildFailsEndsAsItsJoinSays) {
  constexpr char kChild[] = R"("child": {"call": {"handler": "fail", "args": {
      "code": "NOT_FOUND", "message": {"$format": "no {$item}"},
      "after": {"$format": "0.{$index}5s"}}}})";
  // JOIN_ALL: the first failure fails the map and cancels the rest.
  NodeOutcome out =
      Run(absl::StrCat(R"({"map": {"items": [1, 2, 3], )", kChild, "}}"));
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.error().code(), "NOT_FOUND");
  EXPECT_EQ(out.error().message(), "children[0]: no 1");
  ASSERT_EQ(out.children_size(), 3);
  EXPECT_EQ(out.children(1).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(out.children(1).error().reason(), "SIBLING_FAILED");
  // JOIN_ALL_SETTLED: every child ends; the map succeeds with their states.
  out = Run(
      absl::StrCat(R"({"map": {"items": [1, 2], "join": "JOIN_ALL_SETTLED", )",
                   kChild, "}}"));
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(
      ToJson(common::AssembleValue(out)),
      R"([{"error":{"code":"NOT_FOUND","message":"no 1"},"state":"NODE_STATE_FAILED"},)"
      R"({"error":{"code":"NOT_FOUND","message":"no 2"},"state":"NODE_STATE_FAILED"}])");
  // Root-only, the items' runs hand back no more than that: the same value,
  // and the same error for JOIN_ALL.
  out = Run(
      absl::StrCat(R"({"map": {"items": [1, 2], "join": "JOIN_ALL_SETTLED", )",
                   kChild, "}}"),
      /*root_only=*/true);
  EXPECT_EQ(out.children_size(), 0);
  EXPECT_EQ(
      ToJson(out.value()),
      R"([{"error":{"code":"NOT_FOUND","message":"no 1"},"state":"NODE_STATE_FAILED"},)"
      R"({"error":{"code":"NOT_FOUND","message":"no 2"},"state":"NODE_STATE_FAILED"}])");
  out = Run(absl::StrCat(R"({"map": {"items": [1, 2, 3], )", kChild, "}}"),
            /*root_only=*/true);
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.error().message(), "children[0]: no 1");
  EXPECT_FALSE(out.has_value());
  // JOIN_QUORUM: fails once the quorum cannot be reached.
  out = Run(absl::StrCat(
      R"({"map": {"items": [1, 2, 3], "join": "JOIN_QUORUM", "quorum": 2, )",
      kChild, "}}"));
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.error().reason(), "QUORUM_UNREACHABLE");
  // A quorum larger than the items: refused when the map starts (or by the
  // compiler, for items written in the plan).
  out = Run(R"({"sequence": {"children": [
    {"id": "one", "call": {"handler": "value", "args": {"value": [1]}}},
    {"map": {"items": {"$ref": "one"}, "join": "JOIN_QUORUM", "quorum": 2,
      "child": {"call": {"handler": "value", "args": {"value": 1}}}}}]}})");
  EXPECT_EQ(out.children(1).state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(out.children(1).error().message(),
            "the quorum is 2 but the map has 1 item");
}

TEST_F(DataFlowTest, AMapInsideAMapReachesTheOuterItemByItsName) {
  NodeOutcome out = Run(
      R"({"map": {"items": [{"name": "a", "parts": [1, 2]}, {"name": "b", "parts": [3]}],
    "as": "group",
    "child": {"map": {"items": {"$ref": "group.parts"},
      "child": {"call": {"handler": "value", "args": {"value":
        {"$format": "{group.name}{$item}@{$index}"}}}}}}}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(ToJson(common::AssembleValue(out)),
            R"([["a1@0","a2@1"],["b3@0"]])");
}

TEST_F(DataFlowTest, ALaterStepReadsAMapsValue) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "doubled", "map": {"items": [1, 2], "child": {"call": {"handler": "value", "args": {"value": {"$ref": "$item"}}}}}},
    {"call": {"handler": "value", "args": {"value": {"$ref": "doubled[1]"}}}}]}})");
  ASSERT_EQ(out.state(), weft::v1::NODE_STATE_SUCCEEDED) << out.DebugString();
  EXPECT_EQ(ToJson(out.children(1).value()), "2");
}

TEST_F(DataFlowTest, MapReferencesAreCheckedBeforeAnythingRuns) {
  struct Case {
    const char* plan;
    const char* message;
  };
  const Case cases[] = {
      {R"({"call": {"handler": "value", "args": {"value": {"$ref": "$item"}}}})",
       "plan.call.args.value.$ref: \"$item\": $item names the item a map's "
       "child runs for, and this is not inside a map's child"},
      {R"({"map": {"items": [1], "child": {"call": {"handler": "value", "args": {"value": {"$ref": "$index.x"}}}}}})",
       "$index is a number, with no path into it"},
      {R"({"sequence": {"children": [
          {"map": {"items": [1], "child": {"id": "inner", "call": {"handler": "value", "args": {"value": 1}}}}},
          {"call": {"handler": "value", "args": {"value": {"$ref": "inner"}}}}]}})",
       "node \"inner\" is inside the child of the map "
       "plan.sequence.children[0], "
       "which runs once per item; read the map's value"},
      {R"({"sequence": {"children": [
          {"id": "x", "call": {"handler": "value", "args": {"value": 1}}},
          {"map": {"items": [1], "as": "x", "child": {"call": {"handler": "value", "args": {"value": {"$ref": "x"}}}}}}]}})",
       "\"x\" is ambiguous here: the map plan.sequence.children[1] names its "
       "item so, and plan.sequence.children[0] has it as its id"},
      {R"({"map": {"items": "abc", "child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
       "plan.map.items: is the string \"abc\"; a map needs a list"},
      {R"({"map": {"items": [1]}})", "plan.map.child: missing"},
      {R"({"map": {"items": {"$ref": "kid"}, "child": {"id": "kid", "call": {"handler": "value", "args": {"value": [1]}}}}})",
       "plan.map.items.$ref: \"kid\": node \"kid\" is inside this map's own "
       "child (plan.map.child)"},
      {R"({"map": {"child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
       "plan.map.items: missing"},
      {R"({"map": {"items": [1], "as": "9x", "child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
       "plan.map.as: \"9x\" is not a name references can use"},
      {R"({"map": {"items": [1], "join": "JOIN_QUORUM", "quorum": 2, "child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
       "plan.map.quorum: must be from 1 to the number of children (1)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.plan);
    EXPECT_THAT(TryCompile(c.plan), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr(c.message)));
  }
}

TEST_F(DataFlowTest, ItemsThatAreNotAListOrTooManyFailTheMapNamingTheFlag) {
  NodeOutcome out = Run(R"({"sequence": {"children": [
    {"id": "s", "call": {"handler": "value", "args": {"value": {"n": 1}}}},
    {"map": {"items": {"$ref": "s"}, "child": {"call": {"handler": "value", "args": {"value": 1}}}}}]}})");
  EXPECT_EQ(out.children(1).error().reason(), "REF_BAD_VALUE");
  EXPECT_THAT(
      out.children(1).error().message(),
      HasSubstr("items: an object with keys \"n\"; a map needs a list"));

  Limits limits;
  limits.max_map_items = 2;
  auto plan = plan::Compile(PlanFromJson(R"({"map": {"items": [1, 2, 3],
    "child": {"call": {"handler": "value", "args": {"value": 1}}}}})"),
                            "plan", registry_, limits, &pools_);
  ASSERT_TRUE(plan.ok());
  std::optional<NodeOutcome> outcome;
  RunOptions options;
  options.env = &env_;
  Execute(*std::move(plan), options,
          [&](NodeOutcome o) { outcome.emplace(std::move(o)); });
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->error().code(), "INVALID_ARGUMENT");
  EXPECT_THAT(outcome->error().message(), HasSubstr("--max_map_items"));

  limits = Limits();
  limits.max_plan_nodes = 10;
  plan = plan::Compile(PlanFromJson(R"({"map": {"items": [1, 2, 3, 4, 5],
    "child": {"sequence": {"children": [{"call": {"handler": "value", "args": {"value": 1}}}]}}}})"),
                       "plan", registry_, limits, &pools_);
  ASSERT_TRUE(plan.ok());
  outcome.reset();
  Execute(*std::move(plan), options,
          [&](NodeOutcome o) { outcome.emplace(std::move(o)); });
  ASSERT_TRUE(outcome.has_value());
  EXPECT_THAT(outcome->error().message(),
              HasSubstr("the map's 5 items would make the run 11 nodes, more "
                        "than 10, the limit (--max_plan_nodes)"));
}

TEST_F(DataFlowTest, CancellingAMapCancelsEveryRunningChild) {
  auto plan = TryCompile(R"({"map": {"items": [1, 2, 3], "max_concurrency": 2,
    "child": {"call": {"handler": "sleep", "args": {"duration": "10s"}}}}})");
  ASSERT_TRUE(plan.ok());
  engine::CancellationSource source;
  std::optional<NodeOutcome> outcome;
  StartCancellable(*std::move(plan), &source, &outcome);
  env_.AdvanceBy(absl::Seconds(1));
  source.Cancel(absl::CancelledError("caller left"));
  env_.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_CANCELLED);
  ASSERT_EQ(outcome->children_size(), 3);
  EXPECT_EQ(outcome->children(0).state(), weft::v1::NODE_STATE_CANCELLED);
  EXPECT_EQ(outcome->children(1).state(), weft::v1::NODE_STATE_CANCELLED);
  // The third never started.
  EXPECT_EQ(outcome->children(2).state(), weft::v1::NODE_STATE_SKIPPED);
  EXPECT_EQ(outcome->children(2).error().reason(), "NOT_STARTED");
  EXPECT_EQ(outcome->children(2).attempts(), 0);
}

TEST_F(DataFlowTest, AMapsDeadlineBoundsAllItsChildren) {
  NodeOutcome out = Run(
      R"({"deadline": "1.5s", "map": {"items": [1, 2, 3], "max_concurrency": 1,
    "child": {"call": {"handler": "sleep", "args": {"duration": "1s"}}}}})");
  EXPECT_EQ(out.state(), weft::v1::NODE_STATE_TIMED_OUT);
  EXPECT_EQ(out.error().reason(), "NODE_DEADLINE");
  EXPECT_EQ(out.children(0).state(), weft::v1::NODE_STATE_SUCCEEDED);
  EXPECT_EQ(out.children(1).state(), weft::v1::NODE_STATE_CANCELLED);
}

// 10,000 items sleeping at once hold no thread each: every sleep is a timer
// of the run's clock, and the map's value comes when the last one fires.
TEST_F(DataFlowTest, AMapOfTenThousandSleepingItemsHoldsNoThreadPerItem) {
  std::string items;
  for (int i = 0; i < 10'000; ++i) absl::StrAppend(&items, i ? "," : "", i);
  Limits limits;
  limits.max_plan_nodes = 10'001;  // The map, and one child per item.
  auto plan =
      plan::Compile(PlanFromJson(absl::StrCat(
                        R"({"map": {"items": [)", items,
                        R"(], "child": {"call": {"handler": "sleep", "args": {
            "duration": "1s", "value": {"$ref": "$index"}}}}}})")),
                    "plan", registry_, limits, &pools_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int threads = engine::testing::ThreadCount();
  std::optional<NodeOutcome> outcome;
  RunOptions options;
  options.root_only = true;
  Start(*std::move(plan), std::move(options), &outcome);
  env_.AdvanceBy(absl::Milliseconds(999));
  EXPECT_FALSE(outcome.has_value());  // All 10,000 sleep at once...
  EXPECT_EQ(engine::testing::ThreadCount(), threads);  // ...on no thread.
  env_.AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_SUCCEEDED);
  ASSERT_EQ(outcome->value().list_value().values_size(), 10'000);
  EXPECT_EQ(outcome->value().list_value().values(9'999).number_value(), 9'999);
  // One more item is over --max_plan_nodes, and the map fails naming it.
  limits.max_plan_nodes = 10'000;
  auto over = plan::Compile(
      PlanFromJson(absl::StrCat(
          R"({"sequence": {"children": [{"id": "list", "call": {"handler": "value", "args": {"value": [)",
          items,
          R"(]}}}, {"map": {"items": {"$ref": "list"}, "child": {"call": {"handler": "value", "args": {"value": 1}}}}}]}})")),
      "plan", registry_, limits, &pools_);
  ASSERT_TRUE(over.ok()) << over.status();
  outcome.reset();
  Start(*std::move(over), RunOptions(), &outcome);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->children(1).state(), weft::v1::NODE_STATE_FAILED);
  EXPECT_EQ(outcome->children(1).error().reason(), "PLAN_TOO_LARGE");
  EXPECT_THAT(outcome->children(1).error().message(),
              ::testing::HasSubstr("(--max_plan_nodes)"));
}

// The items' values count against the run's outcome budget together: past
// --max_outcome_bytes the run stops and its root alone fails, naming the flag.
TEST_F(DataFlowTest, AMapWhoseValuesPassTheOutcomeBudgetFailsNamingTheFlag) {
  std::string items;
  for (int i = 0; i < 20; ++i) {
    absl::StrAppend(&items, i ? "," : "", "\"", std::string(10'000, 'x'), "\"");
  }
  for (bool root_only : {false, true}) {
    SCOPED_TRACE(root_only ? "root only" : "full");
    auto plan = TryCompile(
        absl::StrCat(R"({"map": {"items": [)", items,
                     R"(], "child": {"call": {"handler": "value", "args": {
          "value": {"$ref": "$item"}}}}}})"));
    ASSERT_TRUE(plan.ok()) << plan.status();
    std::optional<NodeOutcome> outcome;
    RunOptions options;
    options.root_only = root_only;
    options.max_outcome_bytes = 150'000;  // 15 of the 20 values.
    Start(*std::move(plan), std::move(options), &outcome);
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->state(), weft::v1::NODE_STATE_FAILED);
    EXPECT_EQ(outcome->error().code(), "RESOURCE_EXHAUSTED");
    EXPECT_THAT(outcome->error().message(),
                ::testing::HasSubstr("(--max_outcome_bytes)"));
    EXPECT_EQ(outcome->children_size(), 0);
    EXPECT_FALSE(outcome->has_value());
  }
}

// Counts leaves as a task's progress does.
class LeafCounter : public NodeObserver {
 public:
  explicit LeafCounter(const CompiledPlan& plan) : plan_(plan) {}
  void OnNodeStarted(int32_t node) override {
    if (IsLeaf(plan_.nodes()[node].kind)) ++started;
  }
  void OnNodeFinished(int32_t, weft::v1::NodeState) override {}
  void OnItemNodeStarted(int32_t node) override {
    if (IsLeaf(plan_.nodes()[node].kind)) ++item_started;
  }
  void OnLeavesAdded(int64_t leaves) override { added += leaves; }
  const CompiledPlan& plan_;
  int started = 0, item_started = 0;
  int64_t added = 0;
};

TEST_F(DataFlowTest, AMapAddsItsChildrensLeavesWhenItStarts) {
  auto plan = TryCompile(R"({"sequence": {"children": [
    {"id": "list", "call": {"handler": "value", "args": {"value": [1, 2, 3]}}},
    {"map": {"items": {"$ref": "list"}, "child": {"sequence": {"children": [
      {"call": {"handler": "value", "args": {"value": 1}}},
      {"call": {"handler": "value", "args": {"value": 2}}}]}}}}]}})");
  ASSERT_TRUE(plan.ok());
  // Known up front: the list's call; each item adds two.
  EXPECT_EQ((*plan)->leaves(), 1);
  std::shared_ptr<const CompiledPlan> compiled = *std::move(plan);
  LeafCounter counter(*compiled);
  std::optional<NodeOutcome> outcome;
  RunOptions options;
  options.env = &env_;
  options.observer = &counter;
  Execute(compiled, options,
          [&](NodeOutcome o) { outcome.emplace(std::move(o)); });
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(counter.added, 6);
  EXPECT_EQ(counter.started, 1);
  EXPECT_EQ(counter.item_started, 6);
}

// --- DescribeShape ---------------------------------------------------------

TEST(DescribeShapeTest, NamesEachKindBriefly) {
  google::protobuf::Value v;
  EXPECT_EQ(DescribeShape(v), "null");
  v.set_bool_value(true);
  EXPECT_EQ(DescribeShape(v), "true");
  v.mutable_list_value();
  EXPECT_EQ(DescribeShape(v), "an empty list");
  v.mutable_struct_value();
  EXPECT_EQ(DescribeShape(v), "an empty object");
  for (int i = 0; i < 10; ++i) {
    (*v.mutable_struct_value()->mutable_fields())[absl::StrCat("k", i)]
        .set_number_value(i);
  }
  EXPECT_EQ(DescribeShape(v),
            "an object with keys \"k0\", \"k1\", \"k2\", \"k3\", \"k4\", "
            "\"k5\", \"k6\", \"k7\" and 2 more");
}

}  // namespace
}  // namespace weft::plan
