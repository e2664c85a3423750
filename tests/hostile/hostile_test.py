"""The hostile suite: weft attacked as a hostile caller and a careless
operator would, against a real weftd started under an address-space cap.

Each case sends what once crashed, hung or bloated weftd (issue 12), or what
always held (deep and wide plans, garbage bytes, slow watchers, connection
floods, SSRF tricks), checks the precise status it gets, and then checks that
weftd is healthy, answers every method, and stays within the memory bound
the docs give for its default limits (docs: "Limits"):

    RSS <= 160 MiB + 2 x --max_inflight_bytes + --max_retained_task_bytes
                   + --max_lazy_bytes                       (1568 MiB)

Clients here are Python's grpcio (Debian's python3-grpcio) with messages
generated from proto/ at test time, the way a user's client is made.
"""

import concurrent.futures
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "smoke"))
import weftd  # noqa: E402
from weftd import ARGS, HttpFixture, WeftdTest, run_tests, wait_for  # noqa: E402

MiB = 1 << 20
# weftd's default budgets (weftd --help) and the bound the docs state.
MAX_INFLIGHT = 512 * MiB
MAX_RETAINED_TASKS = 256 * MiB
MAX_LAZY = 128 * MiB
RSS_BOUND = 160 * MiB + 2 * MAX_INFLIGHT + MAX_RETAINED_TASKS + MAX_LAZY
# The address-space cap weftd runs under: above the bound, with room for
# thread stacks and the allocator's reserved address space.
ADDRESS_SPACE_CAP = 4096 * MiB
# The largest request weftd takes (--max_message_bytes's default).
MAX_REQUEST = 4 * MiB
# What a standard client accepts by default (C++, Python, Node).
DEFAULT_CLIENT_LIMIT = 4 * MiB
# The most a status message may carry (kMaxMessageBytes, server/common/text.h).
MAX_MESSAGE = 1024

pb = None  # The generated modules, set up before the tests run.


def generate_protos(root, googleapis, out):
    """protoc --python_out for weft's API and the google.rpc details."""
    protos = [os.path.join("weft/v1", p)
              for p in sorted(os.listdir(os.path.join(root, "proto/weft/v1")))]
    subprocess.run(["protoc", "--python_out=" + out, "-I", os.path.join(root, "proto"),
                    "-I", googleapis, *protos, "google/rpc/status.proto",
                    "google/rpc/error_details.proto"], check=True)
    sys.path.insert(0, out)

    class Modules:
        pass
    m = Modules()
    for name in ("plan", "outcome", "task", "lazy", "orchestrator"):
        setattr(m, name, importlib.import_module("weft.v1.%s_pb2" % name))
    # google/ is a namespace package: google.rpc comes from `out`, which is
    # on the path, beside the system's google.protobuf.
    m.rpc_status = importlib.import_module("google.rpc.status_pb2")
    m.rpc_details = importlib.import_module("google.rpc.error_details_pb2")
    m.json_format = importlib.import_module("google.protobuf.json_format")
    return m


def value(v):
    return {"call": {"handler": "value", "args": {"value": v}}}


def http(url, **args):
    return {"call": {"handler": "http", "args": dict(url=url, **args)}}


def lazy(name):
    return {"lazy": {"name": name}}


class Weftd(weftd.Weftd):
    """weftd under `prlimit --as` (which execs it: the process is weftd's)."""

    def __init__(self, *flags, cap=ADDRESS_SPACE_CAP):
        super().__init__(ARGS.weftd, *flags, prefix=("prlimit", "--as=%d" % cap, "--"))

    def memory(self, field):
        """VmRSS or VmHWM of the weftd process, in bytes."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no " + field)


class Client:
    """Calls weft.v1.Orchestrator and grpc.health.v1.Health with grpcio."""

    def __init__(self, address, max_receive=-1):
        import grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", max_receive),
            ("grpc.max_send_message_length", 64 * MiB),
            ("grpc.enable_retries", 0)])

    def close(self):
        self.channel.close()

    def raw(self, method, payload, timeout=120, service="weft.v1.Orchestrator"):
        """Sends bytes; returns the response bytes."""
        f = self.channel.unary_unary("/%s/%s" % (service, method))
        return f(payload, timeout=timeout)

    def call(self, method, request, response_type, timeout=120):
        f = self.channel.unary_unary(
            "/weft.v1.Orchestrator/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString)
        return f(request, timeout=timeout)

    def error(self, method, request, response_type, timeout=120):
        """Calls expecting an RPC error; returns it."""
        try:
            self.call(method, request, response_type, timeout)
        except self.grpc.RpcError as e:
            return e
        raise AssertionError(method + " succeeded; an error was expected")

    def run(self, plan, detail=None, timeout=120):
        r = pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(plan, pb.plan.PlanNode()))
        if detail:
            r.detail = pb.orchestrator.OutcomeDetail.Value(detail)
        return self.call("Run", r, pb.orchestrator.RunResponse, timeout).outcome

    def create_task(self, plan, detail=None):
        r = pb.orchestrator.CreateTaskRequest(plan=pb.json_format.ParseDict(plan, pb.plan.PlanNode()))
        if detail:
            r.detail = pb.orchestrator.OutcomeDetail.Value(detail)
        return self.call("CreateTask", r, pb.task.Task)

    def wait_task(self, name, timeout_s=60):
        r = pb.orchestrator.WaitTaskRequest(name=name)
        r.timeout.seconds = timeout_s
        return self.call("WaitTask", r, pb.task.Task, timeout=timeout_s + 30)

    def create_lazy(self, id, plan):
        r = pb.orchestrator.CreateLazyValueRequest(lazy_value_id=id)
        r.lazy_value.plan.CopyFrom(pb.json_format.ParseDict(plan, pb.plan.PlanNode()))
        return self.call("CreateLazyValue", r, pb.lazy.LazyValue)

    def resolve(self, name, timeout=120):
        return self.call("ResolveLazyValue",
                         pb.orchestrator.ResolveLazyValueRequest(name=name),
                         pb.orchestrator.ResolveLazyValueResponse, timeout)

    def health(self):
        """grpc.health.v1.Health/Check's status: 1 is SERVING. (Its module
        would be grpc.health.v1, which grpcio's own package shadows.)"""
        response = self.raw("Check", b"", timeout=30, service="grpc.health.v1.Health")
        return response[1] if response[:1] == b"\x08" else 0


def nesting(message):
    """Message levels in `message`, itself being 1 (a map entry counts)."""
    deepest = 0
    for field, v in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            for item in v.values():
                inner = nesting(item) if hasattr(item, "ListFields") else 0
                deepest = max(deepest, inner + 1)
        elif field.label == field.LABEL_REPEATED:
            for item in v:
                deepest = max(deepest, nesting(item))
        else:
            deepest = max(deepest, nesting(v))
    return deepest + 1


class HostileTest(WeftdTest):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        # Stopped after the tests (weftd first), their exit codes checked.
        cls.fixture = cls.class_process(HttpFixture(ARGS.fixture).start())
        cls.weftd = cls.class_process(Weftd("--http_allow=" + cls.fixture.address))
        cls.client = Client(cls.weftd.address)
        cls.lazy_made = False

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        if cls.weftd.proc.poll() is None:
            print("\nweftd's peak RSS over the suite: %d MiB (the bound: %d MiB)"
                  % (cls.weftd.memory("VmHWM") // MiB, RSS_BOUND // MiB), file=sys.stderr)

    def tearDown(self):
        self.assertHealthy()

    # What every case ends with.
    def assertHealthy(self):
        w, c = self.weftd, self.client
        self.assertIsNone(w.proc.poll(), "weftd exited:\n" + w.tail(20))
        self.assertEqual(c.health(), 1)  # SERVING
        info = c.call("GetServerInfo", pb.orchestrator.GetServerInfoRequest(),
                      pb.orchestrator.ServerInfo)
        self.assertTrue(info.version)
        budgets = {m.name: m for m in info.memory}
        self.assertEqual(budgets["max_inflight_bytes"].limit_bytes, MAX_INFLIGHT)
        for b in budgets.values():
            self.assertLessEqual(b.used_bytes, b.limit_bytes, b)
        handlers = c.call("ListHandlers", pb.orchestrator.ListHandlersRequest(),
                          pb.orchestrator.ListHandlersResponse)
        self.assertIn("http", [h.name for h in handlers.handlers])
        out = c.run(value("still here"))
        self.assertEqual(out.value.string_value, "still here")
        t = c.create_task(value(7))
        self.assertEqual(c.wait_task(t.name).outcome.value.number_value, 7)
        got = c.call("GetTask", pb.orchestrator.GetTaskRequest(name=t.name), pb.task.Task)
        self.assertEqual(got.state, pb.task.TASK_STATE_SUCCEEDED)
        self.assertEqual(c.call("CancelTask", pb.orchestrator.CancelTaskRequest(name=t.name),
                                pb.task.Task).state, pb.task.TASK_STATE_SUCCEEDED)
        watch = c.channel.unary_stream("/weft.v1.Orchestrator/WatchTask",
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=pb.task.TaskEvent.FromString)
        events = list(watch(pb.orchestrator.WatchTaskRequest(name=t.name), timeout=60))
        self.assertEqual(events[-1].task.state, pb.task.TASK_STATE_SUCCEEDED)
        listed = c.call("ListTasks", pb.orchestrator.ListTasksRequest(page_size=5),
                        pb.orchestrator.ListTasksResponse).tasks
        self.assertIn(t.name, [x.name for x in listed])  # The newest first.
        c.call("DeleteTask", pb.orchestrator.DeleteTaskRequest(name=t.name), _empty())
        if not HostileTest.lazy_made:
            c.create_lazy("health_check", value(1))
            HostileTest.lazy_made = True
        self.assertEqual(c.resolve("lazyValues/health_check").value.number_value, 1)
        got = c.call("GetLazyValue", pb.orchestrator.GetLazyValueRequest(name="lazyValues/health_check"),
                     pb.lazy.LazyValue)
        self.assertEqual(got.state, pb.lazy.LAZY_VALUE_STATE_READY)
        c.call("ListLazyValues", pb.orchestrator.ListLazyValuesRequest(), pb.orchestrator.ListLazyValuesResponse)
        c.call("ResetLazyValue", pb.orchestrator.ResetLazyValueRequest(name="lazyValues/health_check"),
               pb.lazy.LazyValue)
        c.create_lazy("health_temporary", value(2))
        c.call("DeleteLazyValue", pb.orchestrator.DeleteLazyValueRequest(name="lazyValues/health_temporary"),
               _empty())
        rss, peak = w.memory("VmRSS"), w.memory("VmHWM")
        self.assertLessEqual(peak, RSS_BOUND, "peak RSS %d MiB" % (peak // MiB))
        self.assertLessEqual(rss, RSS_BOUND)

    def assertCode(self, error, code, *substrings, reason=None, grpc_own=False):
        """`error` has `code` and a message holding `substrings`; it is
        weftd's own (a google.rpc.Status in the trailer, with an ErrorInfo of
        domain weft and `reason` if given), or with grpc_own, one gRPC made
        (no details)."""
        self.assertEqual(error.code(), getattr(self.client.grpc.StatusCode, code), error.details())
        self.assertLessEqual(len(error.details().encode()), MAX_MESSAGE, error.details()[:200])
        for s in substrings:
            self.assertIn(s, error.details())
        if grpc_own:
            self.assertIsNone(dict(error.trailing_metadata() or ()).get("grpc-status-details-bin"),
                              "details on an error gRPC makes: " + error.details())
            return
        info = self.details(error).get("ErrorInfo")
        self.assertIsNotNone(info, "no ErrorInfo: " + error.details())
        self.assertEqual(info.domain, "weft")
        if reason is not None:
            self.assertEqual(info.reason, reason, error.details())

    # Issue 12, defect 1: lazy values resolving each other into 2 GB.
    def test_lazy_values_that_multiply_are_refused_not_fatal(self):
        c = self.client
        c.create_lazy("mb", value("x" * MiB))
        c.create_lazy("hundred_mb", {"parallel": {"children": [lazy("lazyValues/mb")] * 100}})
        c.create_lazy("two_gb", {"parallel": {"children": [lazy("lazyValues/hundred_mb")] * 21}})
        self.assertEqual(len(c.resolve("lazyValues/mb").value.string_value), MiB)
        for name in ("hundred_mb", "two_gb"):
            e = c.error("ResolveLazyValue", pb.orchestrator.ResolveLazyValueRequest(name="lazyValues/" + name),
                        pb.orchestrator.ResolveLazyValueResponse)
            self.assertCode(e, "RESOURCE_EXHAUSTED", "(--max_outcome_bytes)",
                            reason="LAZY_COMPUTATION_FAILED")
            if name == "hundred_mb":
                self.assertEqual(self.details(e)["ErrorInfo"].metadata["node_reason"],
                                 "ANSWER_TOO_LARGE")

    # Defect 2: 9,999 copies of a cached 1 MiB value in one outcome.
    def test_a_small_run_asking_for_ten_gigabytes_is_stopped_early(self):
        c = self.client
        c.create_lazy("one_mb", value("y" * MiB))
        children = [lazy("lazyValues/one_mb")] * 9999
        started = time.monotonic()
        out = c.run({"parallel": {"children": children}}, detail="OUTCOME_DETAIL_ROOT")
        self.assertEqual(out.state, pb.outcome.NODE_STATE_FAILED)
        self.assertEqual((out.error.code, out.error.reason),
                         ("RESOURCE_EXHAUSTED", "ANSWER_TOO_LARGE"))
        self.assertIn("(--max_outcome_bytes)", out.error.message)
        self.assertEqual(len(out.children), 0)
        self.assertLess(time.monotonic() - started, 60)
        # Full detail: stopped the same way, and the answer is small.
        out = c.run({"parallel": {"children": children}})
        self.assertEqual((out.error.code, out.error.reason),
                         ("RESOURCE_EXHAUSTED", "ANSWER_TOO_LARGE"))
        self.assertIn("(--max_outcome_bytes)", out.error.message)
        self.assertLess(out.ByteSize(), 10000)

    # Defect 3: tasks with large outcomes, and many of them.
    def test_tasks_keep_bounded_outcomes_and_answers_every_client_accepts(self):
        nested = "z" * (3900 * 1000)
        for _ in range(16):  # As deep as --max_value_depth lets a value be.
            nested = [nested]
        plan = value(nested)
        small = Client(self.weftd.address, max_receive=DEFAULT_CLIENT_LIMIT)
        try:
            names = []
            for _ in range(5):
                t = small.create_task(plan)  # The answer fits a default client.
                self.assertFalse(t.HasField("outcome"))
                names.append(t.name)
            for name in names:
                done = small.wait_task(name)
                self.assertEqual(done.state, pb.task.TASK_STATE_SUCCEEDED, done.outcome.error)
            # Root only: each outcome holds the 3.9 MB value once; sixty of
            # them pass --max_retained_task_bytes, so the oldest go early.
            root_names = []
            for _ in range(60):
                root_names.append(small.create_task(
                    value("r" * (3900 * 1000)), detail="OUTCOME_DETAIL_ROOT").name)
            self.client.wait_task(root_names[-1])
            e = self.client.error("GetTask", pb.orchestrator.GetTaskRequest(name=root_names[0]), pb.task.Task)
            self.assertCode(e, "NOT_FOUND", "--max_retained_task_bytes", reason="TASK_NOT_FOUND")
            latest = small.call("GetTask", pb.orchestrator.GetTaskRequest(name=root_names[-1]), pb.task.Task)
            self.assertEqual(len(latest.outcome.value.string_value), 3900 * 1000)
            # With its plan the task is too large for one answer: refused,
            # saying how to ask for less, never sent past the client's limit.
            e = small.error("GetTask", pb.orchestrator.GetTaskRequest(
                name=root_names[-1], view=pb.orchestrator.TASK_VIEW_FULL), pb.task.Task)
            self.assertCode(e, "RESOURCE_EXHAUSTED", "--max_outcome_bytes",
                            reason="ANSWER_TOO_LARGE")
            e = small.error("ListTasks", pb.orchestrator.ListTasksRequest(
                view=pb.orchestrator.TASK_VIEW_FULL, page_size=1000),
                pb.orchestrator.ListTasksResponse)
            self.assertCode(e, "RESOURCE_EXHAUSTED", "TASK_VIEW_BASIC", reason="ANSWER_TOO_LARGE")
            # Without plans and outcomes, a list pages within the limit.
            page = small.call("ListTasks", pb.orchestrator.ListTasksRequest(
                states=[pb.task.TASK_STATE_SUCCEEDED], page_size=1000,
                view=pb.orchestrator.TASK_VIEW_BASIC), pb.orchestrator.ListTasksResponse)
            self.assertGreater(len(page.tasks), 5)
        finally:
            small.close()

    def test_a_full_outcome_holds_each_value_once_however_deep(self):
        plan = value("n" * (3900 * 1000))
        for _ in range(15):
            plan = {"sequence": {"children": [plan]}}
        small = Client(self.weftd.address, max_receive=DEFAULT_CLIENT_LIMIT)
        try:
            t = small.create_task(plan)
            done = small.wait_task(t.name)  # Full: the value once, at its leaf.
            self.assertEqual(done.state, pb.task.TASK_STATE_SUCCEEDED, done.outcome.error)
            self.assertLess(done.ByteSize(), DEFAULT_CLIENT_LIMIT)
            # Values that together pass --max_outcome_bytes stop the task.
            two = {"sequence": {"children": [value("a" * 2000000), value("b" * 2000000)]}}
            t = small.create_task(two)
            done = small.wait_task(t.name)
            self.assertEqual(done.state, pb.task.TASK_STATE_FAILED)
            self.assertEqual((done.outcome.error.code, done.outcome.error.reason),
                             ("RESOURCE_EXHAUSTED", "ANSWER_TOO_LARGE"))
            self.assertIn("--max_outcome_bytes", done.outcome.error.message)
        finally:
            small.close()

    # API issue: answers nested deeper than clients parse.
    def test_answers_to_the_deepest_requests_parse_in_python(self):
        """The deepest plans weftd's default limits accept, and every method's
        answer parsed by python3-protobuf at its default recursion limit (the
        C++ side: tests/service/response_depth_test.cc)."""
        c = self.client
        leaf = "leaf"
        for _ in range(16):  # --max_value_depth
            leaf = {"k": leaf}
        plan = value(leaf)
        for _ in range(15):  # --max_plan_depth 16, races taking no room
            plan = {"race": {"children": [plan]}}
        settled = value([[1]])
        for _ in range(6):  # Two levels each, a failing child beside.
            settled = {"parallel": {"join": "JOIN_ALL_SETTLED", "children": [
                {"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}, settled]}}
        deepest = 0
        for p in (plan, settled):
            for detail in ("OUTCOME_DETAIL_FULL", "OUTCOME_DETAIL_ROOT"):
                out = c.run(p, detail)
                self.assertEqual(out.state, pb.outcome.NODE_STATE_SUCCEEDED, out.error)
                t = c.create_task(p)
                r = pb.orchestrator.WaitTaskRequest(
                    name=t.name, detail=pb.orchestrator.OutcomeDetail.Value(detail))
                r.timeout.seconds = 60
                c.call("WaitTask", r, pb.task.Task)
                got = c.call("GetTask", pb.orchestrator.GetTaskRequest(
                    name=t.name, view=pb.orchestrator.TASK_VIEW_FULL,
                    detail=pb.orchestrator.OutcomeDetail.Value(detail)), pb.task.Task)
                deepest = max(deepest, nesting(got))
                watch = c.channel.unary_stream(
                    "/weft.v1.Orchestrator/WatchTask",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=pb.task.TaskEvent.FromString)
                events = list(watch(pb.orchestrator.WatchTaskRequest(
                    name=t.name, detail=pb.orchestrator.OutcomeDetail.Value(detail)), timeout=60))
                self.assertEqual(events[-1].task.state, pb.task.TASK_STATE_SUCCEEDED)
                page = c.call("ListTasks", pb.orchestrator.ListTasksRequest(
                    view=pb.orchestrator.TASK_VIEW_FULL, page_size=1,
                    detail=pb.orchestrator.OutcomeDetail.Value(detail)),
                    pb.orchestrator.ListTasksResponse)
                deepest = max(deepest, nesting(page))
                c.call("DeleteTask", pb.orchestrator.DeleteTaskRequest(name=t.name), _empty())
        made = c.create_lazy("deepest_plan", plan)
        deepest = max(deepest, nesting(made))
        self.assertEqual(c.resolve("lazyValues/deepest_plan").value.struct_value.fields["k"]
                         .struct_value.fields["k"].WhichOneof("kind"), "struct_value")
        c.call("GetLazyValue", pb.orchestrator.GetLazyValueRequest(name="lazyValues/deepest_plan"),
               pb.lazy.LazyValue)
        page = c.call("ListLazyValues", pb.orchestrator.ListLazyValuesRequest(),
                      pb.orchestrator.ListLazyValuesResponse)
        deepest = max(deepest, nesting(page))
        c.call("DeleteLazyValue", pb.orchestrator.DeleteLazyValueRequest(name="lazyValues/deepest_plan"),
               _empty())
        # 2 * 16 + 3 * 16 + 5: the bound was reached, and parsed.
        self.assertEqual(deepest, 85)
        # One level more is refused, naming the limit a caller can use.
        e = c.error("Run", pb.orchestrator.RunRequest(
            plan=pb.json_format.ParseDict(value({"k": leaf}), pb.plan.PlanNode())),
            pb.orchestrator.RunResponse)
        self.assertCode(e, "INVALID_ARGUMENT", "values nest at most 16 levels",
                        reason="VALUE_TOO_DEEP")

    # Defect 4: a body nested 100,000 deep held the IO thread for minutes.
    def test_a_hostile_http_body_fails_at_once_and_other_calls_keep_their_timeouts(self):
        f = self.fixture
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            deep = [pool.submit(self.client.run, http(f.url("/deep?nested=100000")), "OUTCOME_DETAIL_ROOT")
                    for _ in range(3)]
            started = time.monotonic()
            hang = self.client.run(http(f.url("/hang?hang=1"), timeout="2s"), "OUTCOME_DETAIL_ROOT")
            took = time.monotonic() - started
            self.assertEqual((hang.error.code, hang.error.reason),
                             ("DEADLINE_EXCEEDED", "HTTP_TIMEOUT"), hang.error)
            self.assertIn("(args.timeout)", hang.error.message)
            self.assertLess(took, 30)
            for d in deep:
                out = d.result()
                self.assertEqual((out.error.code, out.error.reason),
                                 ("OUT_OF_RANGE", "VALUE_TOO_DEEP"), out.error)
                self.assertIn("nested deeper than 32 levels", out.error.message)
        big = self.client.run(http(f.url("/h?header_bytes=200000")), "OUTCOME_DETAIL_ROOT")
        self.assertEqual((big.error.code, big.error.reason),
                         ("OUT_OF_RANGE", "HTTP_RESPONSE_TOO_LARGE"))
        out = self.client.run({"retry": {"max_attempts": 3, "retryable_codes": ["OUT_OF_RANGE"]},
                               **http(f.url("/h?header_bytes=200000"))}, "OUTCOME_DETAIL_ROOT")
        self.assertEqual((out.error.code, out.error.reason),
                         ("OUT_OF_RANGE", "HTTP_RESPONSE_TOO_LARGE"))
        self.assertEqual(out.attempts, 1)  # Not retried, whatever the plan lists.

    # Defect 5: connections kept opening after the caller's deadline.
    def test_nothing_starts_after_the_callers_deadline(self):
        f = self.fixture
        before = f.stats()["connections"]
        plan = {"parallel": {"children": [http(f.url("/hang?hang=1&n=%d" % i)) for i in range(3000)]}}
        e = self.client.grpc.RpcError
        with self.assertRaises(e) as caught:
            self.client.run(plan, "OUTCOME_DETAIL_ROOT", timeout=1.5)
        # The client's own DEADLINE_EXCEEDED (its deadline passed before any
        # answer), which says nothing of weftd; what weftd did is below: the
        # run ends, and nothing more starts.
        self.assertCode(caught.exception, "DEADLINE_EXCEEDED", grpc_own=True)
        wait_for(lambda: self.client.call(
            "GetServerInfo", pb.orchestrator.GetServerInfoRequest(),
            pb.orchestrator.ServerInfo).active_runs == 0, "weftd to end the run", timeout=30)
        time.sleep(1)
        settled = f.stats()["connections"]
        time.sleep(3)
        self.assertLessEqual(f.stats()["connections"] - settled, 5,
                             "connections opened after the deadline (%d before the run)" % before)
        wait_for(lambda: f.stats()["openConnections"] < 50,
                 "the cancelled calls' connections to close", interval=0.1)

    # Defect 6: input echoed whole into status messages.
    def test_messages_quote_input_briefly(self):
        c = self.client
        huge = "h" * 100000
        cases = [
            ("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
                {"call": {"handler": huge}}, pb.plan.PlanNode())), pb.orchestrator.RunResponse,
             "INVALID_ARGUMENT", "unknown handler", "UNKNOWN_HANDLER"),
            ("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
                {"call": {"handler": "value", "args": {"value": 1, huge: 2}}}, pb.plan.PlanNode())),
             pb.orchestrator.RunResponse, "INVALID_ARGUMENT", "unknown argument", "INVALID_FIELD"),
            ("GetTask", pb.orchestrator.GetTaskRequest(name=huge), pb.task.Task,
             "INVALID_ARGUMENT", "not a task name", "INVALID_FIELD"),
            ("GetTask", pb.orchestrator.GetTaskRequest(name="tasks/" + "0" * 32), pb.task.Task,
             "NOT_FOUND", "no such task", "TASK_NOT_FOUND"),
            ("GetLazyValue", pb.orchestrator.GetLazyValueRequest(name=huge), pb.lazy.LazyValue,
             "INVALID_ARGUMENT", "not a lazy value name", "INVALID_FIELD"),
            ("ResolveLazyValue", pb.orchestrator.ResolveLazyValueRequest(name="lazyValues/" + "q" * 50000),
             pb.orchestrator.ResolveLazyValueResponse, "INVALID_ARGUMENT", "not a lazy value name",
             "INVALID_FIELD"),
            ("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
                {"call": {"handler": "sleep", "args": {"duration": huge}}}, pb.plan.PlanNode())),
             pb.orchestrator.RunResponse, "INVALID_ARGUMENT", "args.duration", "INVALID_FIELD"),
            ("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
                {"call": {"handler": "http", "args": {"url": "ftp://" + huge}}}, pb.plan.PlanNode())),
             pb.orchestrator.RunResponse, "INVALID_ARGUMENT", "args.url", "INVALID_FIELD"),
        ]
        for method, request, response, code, text, reason in cases:
            self.assertCode(c.error(method, request, response), code, text, reason=reason)
        # A failure's own text, through a lazy value's status.
        c.create_lazy("fails_long", {"call": {"handler": "fail", "args": {"code": "INTERNAL", "message": huge}}})
        e = c.error("ResolveLazyValue", pb.orchestrator.ResolveLazyValueRequest(name="lazyValues/fails_long"),
                    pb.orchestrator.ResolveLazyValueResponse)
        self.assertCode(e, "INTERNAL", "bytes in all", reason="LAZY_COMPUTATION_FAILED")
        self.assertEqual(self.details(e)["ErrorInfo"].metadata["node_reason"], "FAILED_BY_PLAN")
        out = c.run({"sequence": {"children": [{"call": {"handler": "fail", "args": {"code": "INTERNAL", "message": huge}}}]}})
        self.assertLessEqual(len(out.error.message), MAX_MESSAGE)

    # Defect 8: a log line per bad request.
    def test_bad_utf8_requests_do_not_flood_the_log(self):
        before = len(self.weftd.lines)
        ok = pb.plan.PlanNode(call=pb.plan.CallNode(handler="value"))
        raw = pb.orchestrator.GetTaskRequest(name="tasks/ok").SerializeToString()
        bad = raw.replace(b"ok", b"\xff\xfe")
        for _ in range(500):
            # gRPC's callback API answers a request it cannot parse itself
            # with UNIMPLEMENTED and no message; weftd never sees it.
            self.assertCode(_raw_error(self.client, "GetTask", bad, timeout=30),
                            "UNIMPLEMENTED", grpc_own=True)
        plan_bytes = pb.orchestrator.RunRequest(plan=ok).SerializeToString().replace(b"value", b"\xffalue")
        for _ in range(500):
            # Run's request weftd parses itself.
            self.assertCode(_raw_error(self.client, "Run", plan_bytes, timeout=30),
                            "INVALID_ARGUMENT", "not a valid weft.v1.RunRequest",
                            reason="MALFORMED_REQUEST")
        self.assertLessEqual(len(self.weftd.lines) - before, 25,
                             "".join(self.weftd.lines[before:before + 5]))

    # Defect 9: messages that said the wrong thing.
    def test_messages_say_what_is_wrong(self):
        r = pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(value(1), pb.plan.PlanNode()))
        r.plan.timeout.seconds = 4611686018427387904
        e = self.client.error("Run", r, pb.orchestrator.RunResponse)
        self.assertCode(e, "INVALID_ARGUMENT", "plan.timeout", "315576000000",
                        reason="INVALID_FIELD")
        self.assertNotIn("4611686018427387904s", e.details())
        # 1.5 MiB: a lazy value's value and its definition (which holds it
        # too) must fit one answer, so 3 MiB could not be computed at all and
        # the run would fail for that (LAZY_COMPUTATION_FAILED) instead.
        self.client.create_lazy("mb_and_a_half", value("v" * (3 * MiB // 2)))
        self.assertEqual(len(self.client.resolve("lazyValues/mb_and_a_half").value.string_value),
                         3 * MiB // 2)
        out = self.client.run({"parallel": {"children": [lazy("lazyValues/mb_and_a_half")] * 30}},
                              detail="OUTCOME_DETAIL_ROOT")
        self.assertEqual((out.error.code, out.error.reason),
                         ("RESOURCE_EXHAUSTED", "ANSWER_TOO_LARGE"))
        self.assertNotIn("OUTCOME_DETAIL_ROOT", out.error.message)

    # Issue 13: errors a Python program can read (AIP-193).
    def details(self, error):
        """The google.rpc details of an RpcError, by type name."""
        trailer = dict(error.trailing_metadata()).get("grpc-status-details-bin")
        self.assertIsNotNone(trailer, error.details())
        status = pb.rpc_status.Status.FromString(trailer)
        self.assertEqual(status.code, error.code().value[0])
        self.assertEqual(status.message, error.details())
        out = {}
        for any_ in status.details:
            name = any_.type_url.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
            msg = getattr(pb.rpc_details, name)()
            self.assertTrue(any_.Unpack(msg), any_.type_url)
            out[name] = msg
        return out

    def test_errors_carry_details_python_reads(self):
        c = self.client
        bad = {"parallel": {"children": [value(1), {"call": {"handler": "nope"}}]}}
        e = c.error("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(bad, pb.plan.PlanNode())),
                    pb.orchestrator.RunResponse)
        d = self.details(e)
        self.assertEqual(d["ErrorInfo"].reason, "UNKNOWN_HANDLER")
        self.assertEqual(d["ErrorInfo"].domain, "weft")
        self.assertEqual(dict(d["ErrorInfo"].metadata), {"handler": "nope"})
        self.assertEqual([v.field for v in d["BadRequest"].field_violations],
                         ["plan.parallel.children[1].call.handler"])
        leaf = pb.plan.PlanNode(call=pb.plan.CallNode(handler="value")).SerializeToString()
        d = self.details(_raw_error(c, "Run", _nested_request(leaf, 150000)))
        self.assertEqual(d["ErrorInfo"].reason, "PLAN_TOO_DEEP")
        self.assertEqual(d["ErrorInfo"].metadata["flag"], "--max_plan_depth")
        name = "tasks/" + "0" * 32
        e = c.error("GetTask", pb.orchestrator.GetTaskRequest(name=name), pb.task.Task)
        d = self.details(e)
        self.assertEqual(d["ErrorInfo"].reason, "TASK_NOT_FOUND")
        self.assertEqual((d["ResourceInfo"].resource_type, d["ResourceInfo"].resource_name),
                         ("weft.v1.Task", name))
        # gRPC's own refusal (over the message limit) has none: weftd's
        # gRPC refused it (its limit, where this client's is 64 MiB).
        too_big = c.error("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
            value("b" * (5 * MiB)), pb.plan.PlanNode())), pb.orchestrator.RunResponse)
        self.assertCode(too_big, "RESOURCE_EXHAUSTED", "vs. %d)" % MAX_REQUEST,
                        grpc_own=True)

    # What already held, kept held.
    def test_plans_deep_wide_and_broken_get_clear_errors(self):
        c = self.client
        leaf = pb.plan.PlanNode(call=pb.plan.CallNode(handler="value")).SerializeToString()
        self.assertCode(_raw_error(c, "Run", _nested_request(leaf, 150000)),
                        "INVALID_ARGUMENT", "--max_plan_depth", reason="PLAN_TOO_DEEP")
        wide = {"parallel": {"children": [value(1)] * 10001}}
        e = c.error("Run", pb.orchestrator.RunRequest(
            plan=pb.json_format.ParseDict(wide, pb.plan.PlanNode())), pb.orchestrator.RunResponse)
        self.assertCode(e, "INVALID_ARGUMENT", "--max_plan_nodes", reason="PLAN_TOO_LARGE")
        for garbage in (b"\xff" * 100, bytes(range(256)) * 20, b"\x0a\xff\xff\xff\xff\x0f", leaf[:3]):
            self.assertCode(_raw_error(c, "Run", garbage), "INVALID_ARGUMENT", "not a valid",
                            reason="MALFORMED_REQUEST")
        too_big = c.error("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
            value("b" * (5 * MiB)), pb.plan.PlanNode())), pb.orchestrator.RunResponse)
        self.assertCode(too_big, "RESOURCE_EXHAUSTED", "vs. %d)" % MAX_REQUEST,
                        grpc_own=True)

    def test_slow_watchers_and_connection_floods(self):
        c = self.client
        t = c.create_task({"call": {"handler": "sleep", "args": {"duration": "1s", "value": "x" * 1000}}})
        watchers = []
        for _ in range(200):
            ch = Client(self.weftd.address)
            f = ch.channel.unary_stream("/weft.v1.Orchestrator/WatchTask",
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=pb.task.TaskEvent.FromString)
            watchers.append((ch, f(pb.orchestrator.WatchTaskRequest(name=t.name), timeout=120)))
        # Watchers that never read hold nothing up.
        self.assertEqual(c.wait_task(t.name).state, pb.task.TASK_STATE_SUCCEEDED)
        socks = []
        for _ in range(300):
            s = socket.create_connection(tuple(_host_port(self.weftd.address)))
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(64))
            socks.append(s)
        for s in socks:
            s.close()
        for ch, stream in watchers:
            stream.cancel()
            ch.close()

    def test_ssrf_tricks_are_refused(self):
        port = self.weftd.address.rsplit(":", 1)[1]
        for url in ("http://0x7f.1:%s/" % port, "http://2130706433:%s/" % port,
                    "http://[::ffff:127.0.0.1]:%s/" % port, "http://169.254.169.254/latest/meta-data/",
                    "http://localhost:%s/" % port):
            out = self.client.run(http(url), "OUTCOME_DETAIL_ROOT")
            self.assertEqual((out.error.code, out.error.reason),
                             ("PERMISSION_DENIED", "URL_NOT_ALLOWED"), (url, out.error))
        e = self.client.error("Run", pb.orchestrator.RunRequest(plan=pb.json_format.ParseDict(
            http("file:///etc/passwd"), pb.plan.PlanNode())), pb.orchestrator.RunResponse)
        self.assertCode(e, "INVALID_ARGUMENT", "only http and https", reason="INVALID_FIELD")


class OperatorTest(WeftdTest):
    """A careless operator: every bad flag or config stops weftd at once with
    exit 2 and a message naming it (WeftdTest.start_refused)."""

    def test_bad_flags_and_config_files_are_named(self):
        port = "the port must be a number from 0 to 65535"
        self.assertIn(port, self.start_refused("--listen=127.0.0.1:99999"))
        self.assertIn(port, self.start_refused("--listen=127.0.0.1:65536"))
        self.assertIn("no port", self.start_refused("--listen=127.0.0.1"))
        err = self.start_refused(config=b'{"eventLoopThreads": 100000}')
        self.assertIn("eventLoopThreads in", err)
        self.assertIn("must be a whole number from 1 to 64", err)
        self.assertIn("maxPlanNodes: given more than once",
                      self.start_refused(config=b'{"maxPlanNodes": 5, "max_plan_nodes": 6}'))
        self.assertIn("line 1, column 2", self.start_refused(config=b"{garbage" + b"g" * 100000))
        self.assertIn("--max_inflight_bytes", self.start_refused("--max_inflight_bytes=5"))
        lazies = {"lazyValues": [{"lazyValueId": "v%d" % i, "lazyValue": {"plan": value(i)}} for i in range(3)]}
        err = self.start_refused("--max_lazy_values=2", config=json.dumps(lazies).encode())
        self.assertIn("lazy_values[2]: there are 2 lazy values", err)

    def test_a_byte_order_mark_is_accepted(self):
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
            f.write(b'\xef\xbb\xbf{"maxPlanNodes": 5}')
        try:
            with Weftd("--config=" + f.name) as w:
                pass
        finally:
            os.unlink(f.name)
        self.assertIn(" max_plan_nodes=5 ", w.log())


class ShutdownTest(unittest.TestCase):
    def test_sigterm_ends_within_the_grace_period_with_calls_in_flight(self):
        with HttpFixture(ARGS.fixture) as fixture, \
                Weftd("--http_allow=" + fixture.address, "--shutdown_grace=2s") as w:
            c = Client(w.address)
            try:
                plan = {"parallel": {"join": "JOIN_ALL_SETTLED", "children":
                                     [http(fixture.url("/hang?hang=1&i=%d" % i)) for i in range(2000)]
                                     + [http(fixture.url("/deep?nested=100000"))]}}
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    running = pool.submit(lambda: c.run(plan, "OUTCOME_DETAIL_ROOT", timeout=120))
                    wait_for(lambda: c.call("GetServerInfo", pb.orchestrator.GetServerInfoRequest(),
                                            pb.orchestrator.ServerInfo).active_runs == 1,
                             "the run to start", interval=0.1)
                    time.sleep(0.5)
                    started = time.monotonic()
                    _, log = w.stop(timeout=60)
                    self.assertLess(time.monotonic() - started, 2 + 10)
                    # weftd's answer, not a dropped connection: the run's
                    # outcome, cut off by the shutdown.
                    out = running.result(timeout=30)
                    self.assertEqual(out.state, pb.outcome.NODE_STATE_CANCELLED, out.error)
                    self.assertEqual((out.error.code, out.error.reason),
                                     ("CANCELLED", "SHUTTING_DOWN"))
                self.assertIn("1 run(s) were in flight and 0 task(s) running; 1 run(s) and "
                              "0 task(s) were cancelled when the 2s grace period ended", log)
            finally:
                c.close()


def _empty():
    return importlib.import_module("google.protobuf.empty_pb2").Empty


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _nested_request(leaf, levels):
    """A RunRequest whose plan is `levels` sequences deep around `leaf`,
    built by hand: protobuf's own serializer would recurse."""
    prefixes = []
    length = len(leaf)
    for _ in range(levels):
        children = b"\x0a" + _varint(length)           # SequenceNode.children
        length += len(children)
        sequence = b"\x72" + _varint(length)           # PlanNode.sequence
        length += len(sequence)
        prefixes.append(sequence + children)
    return b"\x0a" + _varint(length) + b"".join(reversed(prefixes)) + leaf


def _raw_error(client, method, payload, timeout=60):
    try:
        client.raw(method, payload, timeout=timeout)
    except client.grpc.RpcError as e:
        return e
    raise AssertionError(method + " succeeded")


def _host_port(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def main():
    with tempfile.TemporaryDirectory() as out:
        def setup():
            global pb
            pb = generate_protos(ARGS.root, ARGS.googleapis, out)
        run_tests("weftd", "fixture", "root", "googleapis", setup=setup)


if __name__ == "__main__":
    main()
