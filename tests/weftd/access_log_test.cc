// The access log (--access_log): one JSON line per RPC, through a real
// server and its interceptor: method, principal, peer, code, reason,
// duration, the task or lazy value named or made, the caller's trace id;
// and the file opened again after a rotation.

#include "server/weftd/access_log.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "server/auth/principals.h"
#include "server/common/text.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/json.h"
#include "tests/testing/scratch_dir.h"

namespace weft::weftd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using weft::testing::FromJson;

constexpr char kTrace[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::vector<google::protobuf::Struct> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<google::protobuf::Struct> out;
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(FromJson<google::protobuf::Struct>(line));
  }
  return out;
}

std::string Field(const google::protobuf::Struct& line,
                  const std::string& key) {
  auto it = line.fields().find(key);
  return it == line.fields().end() ? "(absent)" : it->second.string_value();
}

TEST(TraceIdTest, OnlyWellFormedTraceparentsHaveOne) {
  EXPECT_EQ(common::TraceId(kTrace), "4bf92f3577b34da6a3ce929d0e0e4736");
  // A later version may add fields after a dash: read as version 00.
  EXPECT_EQ(common::Traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"),
            kTrace);
  // Version 00 is exactly 55 bytes; every part is lowercase hex.
  EXPECT_EQ(common::Traceparent(absl::StrCat(kTrace, "-extra")), "");
  EXPECT_EQ(common::Traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bX-01"),
            "");
  EXPECT_EQ(common::Traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            "");  // Parent id all zeros.
  EXPECT_EQ(common::Traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\n"),
            "");
  EXPECT_EQ(common::TraceId(""), "");
  EXPECT_EQ(common::TraceId(
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            "");  // Uppercase.
  EXPECT_EQ(common::TraceId(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            "");  // All zeros.
  EXPECT_EQ(common::TraceId(
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "");  // Version ff is invalid.
  EXPECT_EQ(common::TraceId(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            "");
}

TEST(AccessRecordTest, FieldsWithoutAValueAreLeftOutAndStringsEscaped) {
  AccessRecord r;
  r.time = absl::FromUnixMicros(1'764'849'600'123'456);
  r.method = "/weft.v1.Orchestrator/Run";
  r.code = "OK";
  r.peer = "ipv4:127.0.0.1:5\"\n";
  r.duration = absl::Microseconds(1500);
  EXPECT_EQ(FormatAccessRecord(r),
            "{\"time\": \"2025-12-04T12:00:00.123456Z\", \"method\": "
            "\"/weft.v1.Orchestrator/Run\", \"peer\": "
            "\"ipv4:127.0.0.1:5\\\"\\u000a\", \"code\": \"OK\", "
            "\"duration_ms\": 1.500}");
}

class AccessLogTest : public ::testing::Test {
 protected:
  AccessLogTest() {
    auto log = AccessLog::Open(path_);
    EXPECT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    ServerOptions options;
    options.access_log = log_.get();
    auto table = auth::PrincipalTable::Create(FromJson<weft::v1::AuthTokens>(
        R"({"principals": [{"name": "alice", "role": "user", "tokenSha256": ")" +
        auth::TokenSha256("alice-token") + R"("}]})"));
    EXPECT_TRUE(table.ok()) << table.status();
    options.callers = std::make_shared<auth::Callers>(*table);
    fixture_ =
        std::make_unique<weft::testing::ServerFixture>(std::move(options));
  }

  std::unique_ptr<grpc::ClientContext> AsAlice() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", "Bearer alice-token");
    context->AddMetadata("traceparent", kTrace);
    return context;
  }

  // The lines once there are `n` (the line is written as the status goes
  // out, which may be after the client has it).
  std::vector<google::protobuf::Struct> AwaitLines(size_t n) {
    std::vector<google::protobuf::Struct> lines;
    EXPECT_TRUE(weft::testing::ServerFixture::WaitFor([&] {
      lines = Lines(path_);
      return lines.size() >= n;
    }));
    return lines;
  }

  weft::testing::ScratchDir dir_;
  const std::string path_ = dir_.File("access.log");
  std::unique_ptr<AccessLog> log_;
  std::unique_ptr<weft::testing::ServerFixture> fixture_;
};

TEST_F(AccessLogTest, EachRpcIsOneLineSayingWhoWhatAndHowItEnded) {
  auto& stub = fixture_->orchestrator();
  weft::v1::Task task;
  auto create = AsAlice();
  ASSERT_TRUE(stub.CreateTask(create.get(),
                              FromJson<weft::v1::CreateTaskRequest>(
                                  R"({"plan": {"call": {"handler": "value",
                                      "args": {"value": 1}}}})"),
                              &task)
                  .ok());
  const std::string missing = "tasks/" + std::string(32, 'a');
  weft::v1::GetTaskRequest get;
  get.set_name(missing);
  weft::v1::Task ignored;
  EXPECT_EQ(stub.GetTask(AsAlice().get(), get, &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext anonymous;
  EXPECT_EQ(stub.GetTask(&anonymous, get, &ignored).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  std::vector<google::protobuf::Struct> lines = AwaitLines(3);
  ASSERT_EQ(lines.size(), 3u);
  const auto& created = lines[0];
  EXPECT_EQ(Field(created, "method"), "/weft.v1.Orchestrator/CreateTask");
  EXPECT_EQ(Field(created, "principal"), "alice");
  EXPECT_THAT(Field(created, "peer"), StartsWith("ipv4:127.0.0.1:"));
  EXPECT_EQ(Field(created, "code"), "OK");
  EXPECT_EQ(Field(created, "reason"), "(absent)");
  EXPECT_EQ(Field(created, "resource"), task.name());
  EXPECT_EQ(Field(created, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_GE(created.fields().at("duration_ms").number_value(), 0);
  EXPECT_THAT(Field(created, "time"), HasSubstr("T"));

  EXPECT_EQ(Field(lines[1], "code"), "NOT_FOUND");
  EXPECT_EQ(Field(lines[1], "reason"), "TASK_NOT_FOUND");
  EXPECT_EQ(Field(lines[1], "resource"), missing);
  EXPECT_EQ(Field(lines[2], "code"), "UNAUTHENTICATED");
  EXPECT_EQ(Field(lines[2], "reason"), "CREDENTIALS_MISSING");
  EXPECT_EQ(Field(lines[2], "principal"), "(absent)");
  EXPECT_EQ(Field(lines[2], "trace_id"), "(absent)");
}

TEST_F(AccessLogTest, ReopenStartsTheFileAgainAfterARotation) {
  weft::v1::ServerInfo info;
  ASSERT_TRUE(
      fixture_->orchestrator().GetServerInfo(AsAlice().get(), {}, &info).ok());
  AwaitLines(1);
  const std::string rotated = path_ + ".1";
  ASSERT_EQ(std::rename(path_.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE(log_->Reopen().ok());
  ASSERT_TRUE(
      fixture_->orchestrator().GetServerInfo(AsAlice().get(), {}, &info).ok());
  ASSERT_EQ(AwaitLines(1).size(), 1u);
  EXPECT_EQ(Lines(rotated).size(), 1u);
}

TEST(AccessLogOpenTest, AnUnwritablePathIsNamed) {
  auto log = AccessLog::Open("/nonexistent-dir/access.log");
  EXPECT_FALSE(log.ok());
  EXPECT_THAT(std::string(log.status().message()),
              HasSubstr("/nonexistent-dir/access.log: cannot open"));
}

}  // namespace
}  // namespace weft::weftd
