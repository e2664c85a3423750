// The deepest requests weftd accepts at its default limits, and every
// method's answer to them: each must parse with protobuf's default
// recursion limit (100 nested messages), as C++, Python and other clients
// parse them. The same answers are parsed by Debian's python3-protobuf in
// tests/hostile/hostile_test.py.

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "server/plan/compiler.h"
#include "tests/service/server_fixture.h"
#include "tests/testing/time.h"

namespace weft::testing {
namespace {

using google::protobuf::Message;
using weft::v1::PlanNode;

// Message levels in `m`, itself being 1.
int Nesting(const Message& m) {
  int deepest = 0;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      continue;
    }
    if (f->is_repeated()) {
      for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) {
        deepest = std::max(
            deepest, Nesting(m.GetReflection()->GetRepeatedMessage(m, f, i)));
      }
    } else {
      deepest = std::max(deepest, Nesting(m.GetReflection()->GetMessage(m, f)));
    }
  }
  return deepest + 1;
}

// Parses `m`'s bytes again with protobuf's defaults, as any client would.
template <typename M>
void ExpectParses(const M& m, const std::string& what) {
  M parsed;
  EXPECT_TRUE(parsed.ParseFromString(m.SerializeAsString())) << what;
  EXPECT_LE(Nesting(m), plan::kMaxMessageNesting) << what;
}

// The deepest plan the defaults allow: races down to --max_plan_depth (a race
// passes its winner's value on, taking no room), then a call whose argument
// nests objects --max_value_depth deep.
void DeepestPlan(PlanNode* node) {
  const plan::Limits limits;
  for (int i = 1; i < limits.max_plan_depth; ++i) {
    node = node->mutable_race()->add_children();
  }
  node->mutable_call()->set_handler("value");
  google::protobuf::Value* v =
      &(*node->mutable_call()->mutable_args()->mutable_fields())["value"];
  for (int i = 0; i < limits.max_value_depth; ++i) {
    v = &(*v->mutable_struct_value()->mutable_fields())["k"];
  }
  v->set_string_value("leaf");
}

// The deepest composite value: JOIN_ALL_SETTLED parallels (two levels each),
// one failing child beside each, down to what the room allows.
void DeepestComposite(PlanNode* node) {
  for (int room = plan::Limits().max_value_depth; room >= 5; room -= 2) {
    auto* p = node->mutable_parallel();
    p->set_join(weft::v1::JOIN_ALL_SETTLED);
    auto* fail = p->add_children()->mutable_call();
    fail->set_handler("fail");
    (*fail->mutable_args()->mutable_fields())["code"].set_string_value(
        "UNAVAILABLE");
    node = p->add_children();
  }
  node->mutable_call()->set_handler("value");
  (*node->mutable_call()->mutable_args()->mutable_fields())["value"]
      .mutable_list_value()
      ->add_values()
      ->mutable_list_value()
      ->add_values()
      ->set_number_value(1);
}

class ResponseDepthTest : public ::testing::Test {
 protected:
  ServerFixture f_;
};

TEST_F(ResponseDepthTest, EveryMethodsAnswerToTheDeepestRequestsParses) {
  int deepest = 0;
  for (auto build : {&DeepestPlan, &DeepestComposite}) {
    for (auto detail :
         {weft::v1::OUTCOME_DETAIL_FULL, weft::v1::OUTCOME_DETAIL_ROOT}) {
      const std::string what = absl::StrCat(
          build == &DeepestPlan ? "plan" : "composite", " detail ", detail);
      weft::v1::RunRequest run;
      build(run.mutable_plan());
      run.set_detail(detail);
      weft::v1::RunResponse ran;
      {
        grpc::ClientContext context;
        grpc::Status s = f_.orchestrator().Run(&context, run, &ran);
        ASSERT_TRUE(s.ok()) << what << ": " << s.error_message();
      }
      EXPECT_EQ(ran.outcome().state(), weft::v1::NODE_STATE_SUCCEEDED) << what;
      ExpectParses(ran, "Run " + what);
      deepest = std::max(deepest, Nesting(ran));

      weft::v1::CreateTaskRequest create;
      *create.mutable_plan() = run.plan();
      weft::v1::Task task;
      {
        grpc::ClientContext context;
        ASSERT_TRUE(f_.orchestrator().CreateTask(&context, create, &task).ok());
      }
      ExpectParses(task, "CreateTask " + what);
      {
        grpc::ClientContext context;
        weft::v1::WaitTaskRequest wait;
        wait.set_name(task.name());
        wait.set_detail(detail);
        ASSERT_TRUE(f_.orchestrator().WaitTask(&context, wait, &task).ok());
        ExpectParses(task, "WaitTask " + what);
      }
      {
        grpc::ClientContext context;
        weft::v1::GetTaskRequest get;
        get.set_name(task.name());
        get.set_view(weft::v1::TASK_VIEW_FULL);
        get.set_detail(detail);
        ASSERT_TRUE(f_.orchestrator().GetTask(&context, get, &task).ok());
        ExpectParses(task, "GetTask " + what);
        deepest = std::max(deepest, Nesting(task));
      }
      {
        grpc::ClientContext context;
        weft::v1::WatchTaskRequest watch;
        watch.set_name(task.name());
        watch.set_detail(detail);
        auto reader = f_.orchestrator().WatchTask(&context, watch);
        weft::v1::TaskEvent event;
        while (reader->Read(&event)) ExpectParses(event, "WatchTask " + what);
        ASSERT_TRUE(reader->Finish().ok());
      }
      {
        grpc::ClientContext context;
        weft::v1::ListTasksRequest list;
        list.set_view(weft::v1::TASK_VIEW_FULL);
        list.set_detail(detail);
        weft::v1::ListTasksResponse page;
        ASSERT_TRUE(f_.orchestrator().ListTasks(&context, list, &page).ok());
        ExpectParses(page, "ListTasks " + what);
        deepest = std::max(deepest, Nesting(page));
      }
    }
  }

  // Lazy values echo their plans too.
  weft::v1::CreateLazyValueRequest create;
  create.set_lazy_value_id("deep");
  DeepestPlan(create.mutable_lazy_value()->mutable_plan());
  weft::v1::LazyValue lazy;
  {
    grpc::ClientContext context;
    grpc::Status s = f_.orchestrator().CreateLazyValue(&context, create, &lazy);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ExpectParses(lazy, "CreateLazyValue");
  {
    grpc::ClientContext context;
    weft::v1::ResolveLazyValueRequest resolve;
    resolve.set_name("lazyValues/deep");
    weft::v1::ResolveLazyValueResponse resolved;
    ASSERT_TRUE(
        f_.orchestrator().ResolveLazyValue(&context, resolve, &resolved).ok());
    ExpectParses(resolved, "ResolveLazyValue");
  }
  {
    grpc::ClientContext context;
    weft::v1::GetLazyValueRequest get;
    get.set_name("lazyValues/deep");
    ASSERT_TRUE(f_.orchestrator().GetLazyValue(&context, get, &lazy).ok());
    ExpectParses(lazy, "GetLazyValue");
  }
  {
    grpc::ClientContext context;
    weft::v1::ListLazyValuesResponse page;
    ASSERT_TRUE(
        f_.orchestrator()
            .ListLazyValues(&context, weft::v1::ListLazyValuesRequest(), &page)
            .ok());
    ExpectParses(page, "ListLazyValues");
    deepest = std::max(deepest, Nesting(page));
  }
  // The requests did reach the bound: a page echoing the deepest plan.
  EXPECT_EQ(deepest, plan::MessageNesting(plan::Limits()));
}

TEST_F(ResponseDepthTest, OneLevelMoreIsRefusedNamingTheLimit) {
  weft::v1::RunRequest run;
  DeepestPlan(run.mutable_plan());
  PlanNode* leaf = run.mutable_plan();
  while (leaf->has_race()) leaf = leaf->mutable_race()->mutable_children(0);
  google::protobuf::Value* v =
      &(*leaf->mutable_call()->mutable_args()->mutable_fields())["value"];
  while (v->has_struct_value()) {
    v = &v->mutable_struct_value()->mutable_fields()->begin()->second;
  }
  v->mutable_list_value();  // A 17th level.
  grpc::ClientContext context;
  weft::v1::RunResponse response;
  grpc::Status s = f_.orchestrator().Run(&context, run, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("--max_value_depth"));
}

}  // namespace
}  // namespace weft::testing
