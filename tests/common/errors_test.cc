// api/errors.h and api/error_details.h: the details a status carries, and
// their trip through google.rpc.Status and back (what weftd sends and the
// C++ client reads).

#include "server/common/errors.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/duration.pb.h"
#include "gtest/gtest.h"
#include "server/common/error_details.h"
#include "server/engine/cancellation.h"

namespace weft::common {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

absl::Status RoundTrip(const absl::Status& s) {
  google::rpc::Status sent;
  EXPECT_TRUE(sent.ParseFromString(ToRpcStatus(s).SerializeAsString()));
  return FromRpcStatus(sent);
}

TEST(ErrorsTest, AFieldErrorNamesTheFieldInItsMessageAndItsDetails) {
  const absl::Status s =
      FieldError("plan.call.handler", "unknown handler", kUnknownHandler);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "plan.call.handler: unknown handler");
  EXPECT_EQ(Reason(s), "UNKNOWN_HANDLER");
  std::optional<google::rpc::BadRequest> bad = GetBadRequest(s);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 1);
  EXPECT_EQ(bad->field_violations(0).field(), "plan.call.handler");
  EXPECT_EQ(bad->field_violations(0).description(), "unknown handler");
  // INVALID_FIELD unless said.
  EXPECT_EQ(Reason(FieldError("name", "empty")), "INVALID_FIELD");
}

TEST(ErrorsTest, EveryDetailSurvivesTheTripThroughTheTrailer) {
  absl::Status s = WithRetryDelay(
      WithResource(WithLimit(absl::ResourceExhaustedError("too many"),
                             kTaskQueueFull, "--max_queued_tasks", 10),
                   "weft.v1.Task", "tasks/00ff"),
      absl::Milliseconds(1500));
  s = WithFieldViolation(std::move(s), "labels", "too many");
  // Always in this order, whatever order they were added in.
  const google::rpc::Status sent = ToRpcStatus(s);
  std::vector<std::string> types;
  for (const auto& any : sent.details()) types.push_back(any.type_url());
  EXPECT_THAT(types, ElementsAre("type.googleapis.com/google.rpc.ErrorInfo",
                                 "type.googleapis.com/google.rpc.BadRequest",
                                 "type.googleapis.com/google.rpc.ResourceInfo",
                                 "type.googleapis.com/google.rpc.RetryInfo"));
  const absl::Status got = RoundTrip(s);
  EXPECT_EQ(got.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(got.message(), "too many");
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(got);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "TASK_QUEUE_FULL");
  EXPECT_EQ(info->domain(), "weft");
  EXPECT_THAT(info->metadata(),
              UnorderedElementsAre(Pair("flag", "--max_queued_tasks"),
                                   Pair("limit", "10")));
  EXPECT_EQ(ReasonMetadata(got, "limit"), "10");
  EXPECT_EQ(ReasonMetadata(got, "nothing"), "");
  EXPECT_EQ(RetryDelay(got), absl::Milliseconds(1500));
  std::optional<google::rpc::ResourceInfo> resource = GetResourceInfo(got);
  ASSERT_TRUE(resource.has_value());
  EXPECT_EQ(resource->resource_type(), "weft.v1.Task");
  EXPECT_EQ(resource->resource_name(), "tasks/00ff");
  ASSERT_TRUE(GetBadRequest(got).has_value());
  EXPECT_EQ(GetBadRequest(got)->field_violations(0).field(), "labels");
}

TEST(ErrorsTest, AnErrorWithoutAReasonIsSentWithItsCodesName) {
  const absl::Status plain = absl::NotFoundError("gone");
  EXPECT_EQ(Reason(plain), "NOT_FOUND");
  EXPECT_EQ(RetryDelay(plain), absl::InfiniteDuration());
  const google::rpc::Status sent = ToRpcStatus(plain);
  ASSERT_EQ(sent.details_size(), 1);
  const absl::Status got = FromRpcStatus(sent);
  ASSERT_TRUE(GetErrorInfo(got).has_value());
  EXPECT_EQ(GetErrorInfo(got)->reason(), "NOT_FOUND");
  EXPECT_EQ(GetErrorInfo(got)->domain(), "weft");
}

TEST(ErrorsTest, TheEnginesPlainReasonsReadAndTravelAsAnErrorInfo) {
  const absl::Status s =
      engine::WithReason(absl::ResourceExhaustedError("pool full"), "POOL_FULL",
                         {{"pool", "default"}, {"empty", ""}});
  EXPECT_EQ(Reason(s), "POOL_FULL");
  EXPECT_EQ(ReasonMetadata(s, "pool"), "default");
  EXPECT_FALSE(GetErrorInfo(s).has_value());
  const absl::Status got = RoundTrip(s);
  std::optional<google::rpc::ErrorInfo> info = GetErrorInfo(got);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "POOL_FULL");
  // Empty values are left out.
  EXPECT_THAT(info->metadata(), ElementsAre(Pair("pool", "default")));
  // A reason set later wins over the engine's.
  EXPECT_EQ(Reason(WithReason(s, kMemoryExhausted)), "MEMORY_EXHAUSTED");
}

TEST(ErrorsTest, OnlyGoogleRpcDetailsTravel) {
  absl::Status s = WithReason(absl::InternalError("x"), kFailedByPlan);
  s.SetPayload("type.example.com/private", absl::Cord("secret"));
  const google::rpc::Status sent = ToRpcStatus(s);
  ASSERT_EQ(sent.details_size(), 1);  // The ErrorInfo.
  for (const auto& any : sent.details()) {
    EXPECT_TRUE(
        absl::StartsWith(any.type_url(), "type.googleapis.com/google.rpc."))
        << any.type_url();
  }
  google::rpc::Status foreign = sent;
  foreign.add_details()->set_type_url("type.example.com/private");
  bool private_payload = false;
  FromRpcStatus(foreign).ForEachPayload(
      [&](absl::string_view url, const absl::Cord&) {
        private_payload |= url == "type.example.com/private";
      });
  EXPECT_FALSE(private_payload);
}

TEST(ErrorsTest, OkStaysOkAndANewMessageKeepsTheDetails) {
  EXPECT_TRUE(WithReason(absl::OkStatus(), kTaskNotFound).ok());
  EXPECT_TRUE(WithRetryDelay(absl::OkStatus(), absl::Seconds(1)).ok());
  EXPECT_EQ(Reason(absl::OkStatus()), "");
  const absl::Status s =
      WithMessage(WithLimit(absl::InvalidArgumentError("long"), kPlanTooDeep,
                            "--max_plan_depth", 16),
                  "short");
  EXPECT_EQ(s.message(), "short");
  EXPECT_EQ(Reason(s), "PLAN_TOO_DEEP");
  EXPECT_EQ(ReasonMetadata(s, "flag"), "--max_plan_depth");
}

TEST(ErrorsTest, AMalformedTrailerIsAStatusWithoutDetails) {
  google::rpc::Status rpc;
  rpc.set_code(static_cast<int>(absl::StatusCode::kUnavailable));
  rpc.set_message("down");
  google::protobuf::Any* any = rpc.add_details();
  any->set_type_url("type.googleapis.com/google.rpc.ErrorInfo");
  any->set_value("\xff\xff");
  const absl::Status got = FromRpcStatus(rpc);
  EXPECT_EQ(got.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(GetErrorInfo(got).has_value());
  EXPECT_EQ(Reason(got), "UNAVAILABLE");
}

// docs/errors.md documents exactly the reasons weft sends.
TEST(ErrorsTest, TheDocsListEveryReasonAndNoOther) {
  std::ifstream in(WEFT_ERRORS_DOC);
  ASSERT_TRUE(in) << WEFT_ERRORS_DOC;
  std::stringstream text;
  text << in.rdbuf();
  // Reasons are the table rows' first cells: "| `UNKNOWN_HANDLER` |".
  std::set<std::string> documented;
  std::string line;
  while (std::getline(text, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const size_t end = line.find('`', 3);
    const std::string cell = line.substr(3, end - 3);
    if (!cell.empty() && std::all_of(cell.begin(), cell.end(), [](char c) {
          return absl::ascii_isupper(c) || c == '_';
        })) {
      documented.insert(cell);
    }
  }
  std::set<std::string> reasons;
  for (absl::string_view r : AllReasons()) {
    EXPECT_TRUE(reasons.insert(std::string(r)).second) << "twice: " << r;
  }
  std::set<std::string> missing, extra;
  for (const auto& r : reasons) {
    if (!documented.contains(r)) missing.insert(r);
  }
  for (const auto& r : documented) {
    if (!reasons.contains(r)) extra.insert(r);
  }
  EXPECT_THAT(missing, IsEmpty()) << "reasons docs/errors.md does not list";
  EXPECT_THAT(extra, IsEmpty()) << "listed in docs/errors.md but not sent";
}

}  // namespace
}  // namespace weft::common
