"""Client: weft's Orchestrator and Health services over one gRPC channel."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

import grpc
from google.protobuf import message

from ._enums import EnumLike, enum_value
from ._pb import (health_pb2, health_pb2_grpc, lazy_pb2, orchestrator_pb2,
                  orchestrator_pb2_grpc, task_pb2)
from .errors import WeftError
from .outcomes import Outcome
from .plans import PlanLike, as_plan, lazy_value_name, task_name
from .values import DurationLike, to_datetime, to_duration, to_python, to_seconds

Task = task_pb2.Task
LazyValue = lazy_pb2.LazyValue

#: The states a task ends in.
TERMINAL_TASK_STATES = frozenset({task_pb2.TASK_STATE_SUCCEEDED, task_pb2.TASK_STATE_FAILED,
                                  task_pb2.TASK_STATE_CANCELLED, task_pb2.TASK_STATE_TIMED_OUT})

# watch_task: reconnections in a row without an event between, and the waits
# before them (doubling from the first to the last).
WATCH_RECONNECTS = 5
_WATCH_BACKOFF = (0.1, 2.0)

_Response = TypeVar("_Response", bound=message.Message)


def is_terminal(task: Union[Task, int]) -> bool:
    """Whether a task (or a TaskState) has ended."""
    return (task.state if isinstance(task, Task) else task) in TERMINAL_TASK_STATES


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What ResolveLazyValue answered."""

    #: The value, native (see values.to_python).
    value: Any
    #: The cache held it already; False when this call waited for its
    #: computation.
    cache_hit: bool
    #: The lazy value's generation it was computed for (resets move it on).
    generation: int
    #: When it was computed.
    compute_time: datetime.datetime


def _detail(detail: Optional[EnumLike]) -> int:
    """An OutcomeDetail: "full", "root", a weft.v1.OutcomeDetail, or None for
    the method's default."""
    return 0 if detail is None else enum_value(orchestrator_pb2.OutcomeDetail,
                                               "OUTCOME_DETAIL_", detail)


def _view(view: Optional[EnumLike]) -> int:
    """A TaskView: "basic", "full", a weft.v1.TaskView, or None."""
    return 0 if view is None else enum_value(orchestrator_pb2.TaskView, "TASK_VIEW_", view)


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("%s %s: %s" % (what, path, e.strerror)) from e


class _CallDetails(
        collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to every call (also over
    plaintext, e.g. on loopback, where call credentials are not sent)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", "Bearer " + token)

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(details.method, details.timeout,
                            [*(details.metadata or ()), self._header], details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class Client:
    """A connection to weftd at `address` (host:port), made when first used:
    plaintext, or TLS when `tls_ca` is given (with `tls_cert` and `tls_key`
    as well under mutual TLS); `token` is sent on every call as
    ``authorization: Bearer TOKEN`` (weftd's --auth_tokens).

    Every method raises WeftError when the call fails, with the details weftd
    sent decoded. `timeout` (seconds, a timedelta or "30s") is the deadline
    of each call unless the call is given its own (a watch, which lasts as
    long as its task, has only its own); None sets none, and weftd bounds a
    Run by its --max_run_duration. Names are "tasks/{id}" and
    "lazyValues/{id}", or the bare id. Use it from any number of threads; as
    a context manager it closes its channel at the end::

        with Client("127.0.0.1:50051", timeout=30) as weft:
            print(weft.run(call("value", value=42)).value)
    """

    def __init__(self, address: str, *, timeout: Optional[DurationLike] = None,
                 options: Sequence[tuple[str, Any]] = (),
                 interceptors: Sequence[Any] = (),
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, token: Optional[str] = None) -> None:
        """`options`: more gRPC channel arguments (answers of any size are
        taken: a full outcome of a large plan can pass gRPC's 4 MiB);
        `interceptors`: grpc client interceptors every call goes through
        (to add metadata, to log). `tls_ca`, `tls_cert`, `tls_key`: PEM
        files (the CA that signed weftd's certificate; this client's
        certificate and key, both or neither); ValueError when the files
        cannot be read or do not go together."""
        self._timeout = to_seconds(timeout)
        channel_options = [("grpc.max_receive_message_length", -1), *options]
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if tls_ca is None and tls_cert is not None:
            raise ValueError("a client certificate (tls_cert) needs TLS: give tls_ca too")
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_pem(tls_ca, "tls_ca"),
                private_key=_read_pem(tls_key, "tls_key") if tls_key else None,
                certificate_chain=_read_pem(tls_cert, "tls_cert") if tls_cert else None)
            channel = grpc.secure_channel(address, credentials, options=channel_options)
        else:
            channel = grpc.insecure_channel(address, options=channel_options)
        if token is not None:
            interceptors = [_BearerToken(token), *interceptors]
        self._channel = grpc.intercept_channel(channel, *interceptors)
        self._orchestrator = orchestrator_pb2_grpc.OrchestratorStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _deadline(self, timeout: Optional[DurationLike]) -> Optional[float]:
        return self._timeout if timeout is None else to_seconds(timeout)

    def _call(self, method: Callable[..., _Response], request: message.Message,
              timeout: Optional[DurationLike]) -> _Response:
        try:
            return method(request, timeout=self._deadline(timeout))
        except grpc.RpcError as e:
            raise WeftError.from_rpc_error(e) from e

    def _pages(self, method: Callable[..., message.Message], request: message.Message,
               field: str, timeout: Optional[DurationLike]) -> Iterator[Any]:
        """The items in `field` of every page a List method answers, asking
        for the next page (with the last one's next_page_token, on the same
        `request`) only when the items so far have been taken."""
        while True:
            page = self._call(method, request, timeout)
            yield from getattr(page, field)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    # --- plans -----------------------------------------------------------------

    def run(self, plan: PlanLike, *, detail: Optional[EnumLike] = None,
            timeout: Optional[DurationLike] = None) -> Outcome:
        """Runs `plan` and returns its outcome. A plan that ran and failed is
        an outcome (its ``state`` and ``error``; ``result()`` raises it), not
        a WeftError. `detail`: "full" (every node's outcome, the default) or
        "root" (the root alone); ``Outcome.value`` is the same either way."""
        request = orchestrator_pb2.RunRequest(plan=as_plan(plan), detail=_detail(detail))
        return Outcome(self._call(self._orchestrator.Run, request, timeout).outcome)

    def list_handlers(self, *, timeout: Optional[DurationLike] = None
                      ) -> list[orchestrator_pb2.Handler]:
        """The handlers a call node can name, with their arguments."""
        request = orchestrator_pb2.ListHandlersRequest()
        return list(self._call(self._orchestrator.ListHandlers, request, timeout).handlers)

    # --- tasks -----------------------------------------------------------------

    def create_task(self, plan: PlanLike, *, labels: Optional[Mapping[str, str]] = None,
                    request_id: Optional[str] = None, detail: Optional[EnumLike] = None,
                    timeout: Optional[DurationLike] = None) -> Task:
        """Starts `plan` as a background task and returns it at once.
        `labels` find it again (list_tasks); the same `request_id` with the
        same plan returns the same task. `detail`: how much of the outcome
        the task keeps ("full" by default, or "root")."""
        request = orchestrator_pb2.CreateTaskRequest(
            plan=as_plan(plan), labels=labels or {}, request_id=request_id or "",
            detail=_detail(detail))
        return self._call(self._orchestrator.CreateTask, request, timeout)

    def get_task(self, name: str, *, view: Optional[EnumLike] = None,
                 detail: Optional[EnumLike] = None, node: Optional[str] = None,
                 timeout: Optional[DurationLike] = None) -> Task:
        """The task as it stands. `view` "full" adds its plan; `node` (a path
        like "fetch/children[2]") asks for that node's outcome instead of the
        root's, once the task has ended."""
        request = orchestrator_pb2.GetTaskRequest(
            name=task_name(name), view=_view(view), detail=_detail(detail), node=node or "")
        return self._call(self._orchestrator.GetTask, request, timeout)

    def wait_task(self, name: str, *, wait: Optional[DurationLike] = None,
                  detail: Optional[EnumLike] = None,
                  timeout: Optional[DurationLike] = None) -> Task:
        """The task once it has ended, or as it stands when `wait` (weftd's
        30 s by default) or the call's deadline passes, whichever is first:
        check is_terminal() on the answer."""
        request = orchestrator_pb2.WaitTaskRequest(name=task_name(name), detail=_detail(detail))
        if wait is not None:
            request.timeout.CopyFrom(to_duration(wait))
        return self._call(self._orchestrator.WaitTask, request, timeout)

    def cancel_task(self, name: str, *, timeout: Optional[DurationLike] = None) -> Task:
        """Cancels a queued or running task; an ended one comes back as it is."""
        request = orchestrator_pb2.CancelTaskRequest(name=task_name(name))
        return self._call(self._orchestrator.CancelTask, request, timeout)

    def delete_task(self, name: str, *, timeout: Optional[DurationLike] = None) -> None:
        """Forgets an ended task (FAILED_PRECONDITION while it runs)."""
        request = orchestrator_pb2.DeleteTaskRequest(name=task_name(name))
        self._call(self._orchestrator.DeleteTask, request, timeout)

    def list_tasks(self, *, labels: Optional[Mapping[str, str]] = None,
                   states: Sequence[EnumLike] = (), page_size: Optional[int] = None,
                   view: Optional[EnumLike] = None, detail: Optional[EnumLike] = None,
                   timeout: Optional[DurationLike] = None) -> Iterator[Task]:
        """The tasks carrying every one of `labels` and in one of `states`
        ("RUNNING", "SUCCEEDED", ... or TaskState numbers; any when empty),
        newest first. An iterator that asks for the next page (of
        `page_size`) when it needs it, each call with `timeout`."""
        request = orchestrator_pb2.ListTasksRequest(
            labels=labels or {}, page_size=page_size or 0, view=_view(view),
            detail=_detail(detail),
            states=[enum_value(task_pb2.TaskState, "TASK_STATE_", s) for s in states])
        return self._pages(self._orchestrator.ListTasks, request, "tasks", timeout)

    def watch_task(self, name: str, *, detail: Optional[EnumLike] = None,
                   timeout: Optional[DurationLike] = None) -> Iterator[Task]:
        """Follows a task: yields it as it stands, then at each change (state,
        progress), and ends after the snapshot in which it has ended.

        A stream that breaks (UNAVAILABLE, as when the connection drops, or
        an end before the task's) is opened again with `after_sequence` set
        to the last event seen, so no change is missed: up to
        WATCH_RECONNECTS times in a row without an event between, waiting
        0.1 s, then twice as long each time (at most 2 s). `timeout` bounds
        the whole watch, reconnections included; by default there is none.
        `detail`: how much of the outcome the last snapshot carries."""
        request = orchestrator_pb2.WatchTaskRequest(name=task_name(name), detail=_detail(detail))
        seconds = to_seconds(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        backoff, failures = _WATCH_BACKOFF[0], 0
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            stream = self._orchestrator.WatchTask(request, timeout=remaining)
            broken: Optional[WeftError] = None
            try:
                for event in stream:
                    backoff, failures = _WATCH_BACKOFF[0], 0
                    request.after_sequence = event.sequence
                    yield event.task
                    if is_terminal(event.task):
                        return
            except grpc.RpcError as e:
                broken = WeftError.from_rpc_error(e)
                if broken.code != grpc.StatusCode.UNAVAILABLE:
                    raise broken from e
            finally:
                stream.cancel()
            failures += 1
            if failures > WATCH_RECONNECTS or (
                    deadline is not None and time.monotonic() + backoff >= deadline):
                raise broken or WeftError(
                    grpc.StatusCode.UNAVAILABLE,
                    "the watch of %s ended before the task did (%d reconnections)"
                    % (request.name, WATCH_RECONNECTS))
            time.sleep(backoff)
            backoff = min(backoff * 2, _WATCH_BACKOFF[1])

    # --- lazy values -------------------------------------------------------------

    def create_lazy_value(self, id: str, plan: PlanLike, *, ttl: Optional[DurationLike] = None,
                          refresh_after: Optional[DurationLike] = None,
                          cache_failures_for: Optional[DurationLike] = None,
                          timeout: Optional[DurationLike] = None) -> LazyValue:
        """Declares lazyValues/`id`, computed by `plan` on first use and
        cached for `ttl` (None: until reset), refreshed in the background
        once older than `refresh_after`. The same definition again returns
        it; another one is ALREADY_EXISTS."""
        definition = LazyValue(plan=as_plan(plan))
        for field, value in (("ttl", ttl), ("refresh_after", refresh_after),
                             ("cache_failures_for", cache_failures_for)):
            if value is not None:
                getattr(definition, field).CopyFrom(to_duration(value))
        request = orchestrator_pb2.CreateLazyValueRequest(
            lazy_value_id=id.removeprefix("lazyValues/"), lazy_value=definition)
        return self._call(self._orchestrator.CreateLazyValue, request, timeout)

    def get_lazy_value(self, name: str, *, timeout: Optional[DurationLike] = None) -> LazyValue:
        """Its definition, cache state and counters (``stats``); never computes."""
        request = orchestrator_pb2.GetLazyValueRequest(name=lazy_value_name(name))
        return self._call(self._orchestrator.GetLazyValue, request, timeout)

    def resolve_lazy_value(self, name: str, *,
                           timeout: Optional[DurationLike] = None) -> Resolution:
        """The value: cached, or from the one computation every caller
        shares. A failed computation is a WeftError of reason
        LAZY_COMPUTATION_FAILED with the plan's code."""
        request = orchestrator_pb2.ResolveLazyValueRequest(name=lazy_value_name(name))
        answer = self._call(self._orchestrator.ResolveLazyValue, request, timeout)
        return Resolution(value=to_python(answer.value), cache_hit=answer.cache_hit,
                          generation=answer.generation,
                          compute_time=to_datetime(answer.compute_time))

    def reset_lazy_value(self, name: str, *,
                         timeout: Optional[DurationLike] = None) -> LazyValue:
        """Forgets the cached value and moves the generation on."""
        request = orchestrator_pb2.ResetLazyValueRequest(name=lazy_value_name(name))
        return self._call(self._orchestrator.ResetLazyValue, request, timeout)

    def list_lazy_values(self, *, page_size: Optional[int] = None,
                         timeout: Optional[DurationLike] = None) -> Iterator[LazyValue]:
        """Every lazy value, by name; pages are asked for as needed."""
        request = orchestrator_pb2.ListLazyValuesRequest(page_size=page_size or 0)
        return self._pages(self._orchestrator.ListLazyValues, request, "lazy_values", timeout)

    def delete_lazy_value(self, name: str, *, timeout: Optional[DurationLike] = None) -> None:
        """Forgets a lazy value; resolvers waiting for it get ABORTED."""
        request = orchestrator_pb2.DeleteLazyValueRequest(name=lazy_value_name(name))
        self._call(self._orchestrator.DeleteLazyValue, request, timeout)

    # --- the server ----------------------------------------------------------------

    def server_info(self, *, timeout: Optional[DurationLike] = None
                    ) -> orchestrator_pb2.ServerInfo:
        """weftd's version, uptime, tasks by state, pools, caches and limits."""
        request = orchestrator_pb2.GetServerInfoRequest()
        return self._call(self._orchestrator.GetServerInfo, request, timeout)

    def health(self, service: str = "", *, timeout: Optional[DurationLike] = None) -> str:
        """grpc.health.v1's status of `service` ("" for the server, or
        "weft.v1.Orchestrator"): "SERVING" or "NOT_SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        answer = self._call(self._health.Check, request, timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
