// Engine and interpreter costs, measured without gRPC.
//
//   build/bench/engine_bench
//
// BM_ValueCallNode: one plan of one value call, compiled once and run many
// times: the per-node cost of the interpreter and engine.
// BM_ParallelOfValues/N: a parallel of N value calls (root-only outcome);
// the counter node_ns is the cost per node.
// BM_MapOfValues/N: a map over N items whose child is a value call; node_ns
// per item (compare with BM_ParallelOfValues/N). BM_MapOfItems/N: the same
// child reading its item ({"$ref": "$item"}), prepared as each item starts.
// BM_RaceOfValues/N: a race of N value calls; node_ns per node.
// BM_OffloadRoundTrip: one offloaded value call, loop -> pool -> loop.
// BM_SleepingLeaves/N: a parallel of N sleeps of 1 ms on a 2-thread event
// loop; wall time per run, most of it waiting.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/util/json_util.h"
#include "server/engine/cancellation.h"
#include "server/engine/event_loop.h"
#include "server/engine/sync.h"
#include "server/engine/task_group.h"
#include "server/handlers/registry.h"
#include "server/plan/interpreter.h"
#include "server/plan/pools.h"
#include "tests/testing/manual_env.h"

namespace weft {
namespace {

std::shared_ptr<const plan::CompiledPlan> CompileJson(const std::string& json,
                                                      int max_nodes) {
  static handlers::HandlerRegistry* registry = [] {
    auto* r = new handlers::HandlerRegistry();
    if (!handlers::RegisterBuiltinHandlers(*r).ok()) std::abort();
    return r;
  }();
  auto node = std::make_unique<weft::v1::PlanNode>();
  if (!google::protobuf::util::JsonStringToMessage(json, node.get()).ok())
    std::abort();
  auto plan = plan::Compile(std::move(node), "plan", *registry,
                            plan::Limits{.max_plan_nodes = max_nodes});
  if (!plan.ok()) std::abort();
  return *std::move(plan);
}

// Runs `plan` (root-only outcome) on `loop` and waits for it to end.
void RunAndWait(engine::Env& loop,
                const std::shared_ptr<const plan::CompiledPlan>& plan) {
  engine::Mutex mu;
  engine::CondVar cv;
  bool done = false;
  plan::RunOptions options;
  options.env = &loop;
  options.root_only = true;
  plan::Execute(plan, options, [&](weft::v1::NodeOutcome) {
    engine::MutexLock lock(&mu);
    done = true;
    cv.SignalAll();
  });
  engine::MutexLock lock(&mu);
  while (!done) cv.Wait(&mu);
}

std::string ParallelJson(int n, const std::string& leaf) {
  std::string children;
  for (int i = 0; i < n; ++i) absl::StrAppend(&children, i ? "," : "", leaf);
  return absl::StrCat(R"({"parallel": {"children": [)", children, "]}}");
}

void BM_ValueCallNode(benchmark::State& state) {
  engine::ManualEnv env;
  auto plan = CompileJson(
      R"({"call": {"handler": "value", "args": {"value": 1}}})", 10);
  for (auto _ : state) {
    plan::RunOptions options;
    options.env = &env;
    options.root_only = true;
    bool done = false;
    plan::Execute(plan, options, [&](weft::v1::NodeOutcome o) {
      done = true;
      benchmark::DoNotOptimize(o);
    });
    if (!done) std::abort();
  }
}
BENCHMARK(BM_ValueCallNode);

// Runs `plan` with a root-only outcome on `env` once per iteration; the
// counter node_ns is the cost per node of its `nodes`.
void RunRootOnly(benchmark::State& state, engine::ManualEnv& env,
                 const std::shared_ptr<const plan::CompiledPlan>& plan,
                 int nodes) {
  for (auto _ : state) {
    plan::RunOptions options;
    options.env = &env;
    options.root_only = true;
    plan::Execute(plan, options, [&](weft::v1::NodeOutcome o) {
      benchmark::DoNotOptimize(o);
    });
  }
  state.counters["node_ns"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * nodes,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ParallelOfValues(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  engine::ManualEnv env;
  RunRootOnly(state, env,
              CompileJson(ParallelJson(n, R"({"call": {"handler": "value",
                                          "args": {"value": 1}}})"),
                          n + 1),
              n + 1);
}
BENCHMARK(BM_ParallelOfValues)->Arg(100)->Arg(10'000);

// What a Run does with its request before the run starts: parse the
// plan's bytes into an arena and compile it; node_ns per node.
void BM_ParseAndCompileParallel(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  static handlers::HandlerRegistry* registry = [] {
    auto* r = new handlers::HandlerRegistry();
    if (!handlers::RegisterBuiltinHandlers(*r).ok()) std::abort();
    return r;
  }();
  weft::v1::PlanNode source;
  if (!google::protobuf::util::JsonStringToMessage(
           ParallelJson(n, R"({"call": {"handler": "value",
                              "args": {"value": 1}}})"),
           &source)
           .ok()) {
    std::abort();
  }
  const std::string bytes = source.SerializeAsString();
  for (auto _ : state) {
    auto arena = std::make_shared<google::protobuf::Arena>();
    auto* node =
        google::protobuf::Arena::CreateMessage<weft::v1::PlanNode>(arena.get());
    if (!node->ParseFromString(bytes)) std::abort();
    auto plan = plan::Compile(node, arena, "plan", *registry,
                              plan::Limits{.max_plan_nodes = n + 1});
    if (!plan.ok()) std::abort();
    benchmark::DoNotOptimize(plan);
  }
  state.counters["node_ns"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * (n + 1),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ParseAndCompileParallel)->Arg(100);

// A map over `n` items whose child is `child`; node_ns per item.
void RunMap(benchmark::State& state, const std::string& child) {
  const int n = static_cast<int>(state.range(0));
  engine::ManualEnv env;
  std::string items;
  for (int i = 0; i < n; ++i) absl::StrAppend(&items, i ? "," : "", i);
  RunRootOnly(state, env,
              CompileJson(absl::StrCat(R"({"map": {"items": [)", items,
                                       R"(], "child": )", child, "}}"),
                          n + 1),
              n + 1);
}

void BM_MapOfValues(benchmark::State& state) {
  RunMap(state, R"({"call": {"handler": "value", "args": {"value": 1}}})");
}
BENCHMARK(BM_MapOfValues)->Arg(100)->Arg(10'000);

void BM_MapOfItems(benchmark::State& state) {
  RunMap(
      state,
      R"({"call": {"handler": "value", "args": {"value": {"$ref": "$item"}}}})");
}
BENCHMARK(BM_MapOfItems)->Arg(100)->Arg(10'000);

void BM_TaskGroupSpawnJoin(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    engine::TaskGroup group;
    for (int i = 0; i < n; ++i) {
      group.Spawn([](const engine::CancellationToken&, engine::Done done) {
        std::move(done)(absl::OkStatus());
      });
    }
    std::move(group).Join([](absl::Status s) { benchmark::DoNotOptimize(s); });
  }
  state.counters["task_ns"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TaskGroupSpawnJoin)->Arg(100);

void BM_RaceOfValues(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  engine::ManualEnv env;
  std::string children;
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&children, i ? "," : "",
                    R"({"call": {"handler": "value", "args": {"value": 1}}})");
  }
  RunRootOnly(
      state, env,
      CompileJson(absl::StrCat(R"({"race": {"children": [)", children, "]}}"),
                  n + 1),
      n + 1);
}
BENCHMARK(BM_RaceOfValues)->Arg(3)->Arg(100);

// A value call offloaded to a pool: submit, run on a pool thread, post the
// completion back to the loop.
void BM_OffloadRoundTrip(benchmark::State& state) {
  engine::EventLoop loop(1);
  plan::PoolSet pools({{"default", 1, 1000}});
  static handlers::HandlerRegistry* registry = [] {
    auto* r = new handlers::HandlerRegistry();
    if (!handlers::RegisterBuiltinHandlers(*r).ok()) std::abort();
    return r;
  }();
  auto node = std::make_unique<weft::v1::PlanNode>();
  if (!google::protobuf::util::JsonStringToMessage(
           R"({"offload": {"child": {"call": {"handler": "value", "args": {"value": 1}}}}})",
           node.get())
           .ok()) {
    std::abort();
  }
  auto compiled =
      plan::Compile(std::move(node), "plan", *registry, plan::Limits(), &pools);
  if (!compiled.ok()) std::abort();
  std::shared_ptr<const plan::CompiledPlan> plan = *std::move(compiled);
  for (auto _ : state) {
    RunAndWait(loop, plan);
  }
}
BENCHMARK(BM_OffloadRoundTrip)->UseRealTime();

void BM_SleepingLeaves(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  engine::EventLoop loop(2);
  auto plan = CompileJson(
      ParallelJson(
          n,
          R"({"call": {"handler": "sleep", "args": {"duration": "0.001s"}}})"),
      n + 1);
  for (auto _ : state) {
    RunAndWait(loop, plan);
  }
}
BENCHMARK(BM_SleepingLeaves)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace weft

BENCHMARK_MAIN();
