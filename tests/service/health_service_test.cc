#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service/server_fixture.h"

namespace weft::testing {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse::ServingStatus Check(ServerFixture& f,
                                         const std::string& service,
                                         grpc::Status* status = nullptr) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status s = f.health().Check(&context, request, &response);
  if (status != nullptr) *status = s;
  return response.status();
}

TEST(HealthServiceTest, ServerAndOrchestratorAreServing) {
  ServerFixture f;
  EXPECT_EQ(Check(f, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(f, "weft.v1.Orchestrator"), HealthCheckResponse::SERVING);
}

TEST(HealthServiceTest, UnknownServiceIsNotFound) {
  ServerFixture f;
  grpc::Status s;
  Check(f, "nope.Service", &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(),
              ::testing::HasSubstr("unknown service \"nope.Service\""));
}

TEST(HealthServiceTest, WatchSeesEachChangeAndEndsAtShutdown) {
  ServerFixture f;
  grpc::ClientContext context;
  HealthCheckRequest request;
  auto reader = f.health().Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  f.server().health().SetServing(false);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  f.server().health().SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  f.server().health().Shutdown();
  EXPECT_FALSE(reader->Read(&response));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(HealthServiceTest, WatchOfAnUnknownServiceSaysSoAndStaysOpen) {
  ServerFixture f;
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("nope.Service");
  auto reader = f.health().Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  context.TryCancel();
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

}  // namespace
}  // namespace weft::testing
