"""Plan builders: weft.v1.PlanNode in Python rather than JSON.

Each builder returns a PlanNode, so they nest the way the plan does::

    from weft_client import call, parallel, race, offload, lazy

    plan = parallel(
        call("sleep", id="user", duration="0.3s", value={"name": "Ada"}),
        race(call("value", value=1), offload(call("hash", data="x", rounds=1000)),
             id="search", hedge_delay=0.05),
        lazy("daily_stats", id="stats"),
    )

Every builder takes the options any node has: ``id`` (its name in outcomes,
race winners and a keyed parallel's value), ``timeout`` (per attempt) and
``retry`` (a RetryPolicy from retry_policy(), or an int: that many attempts
with the server's backoff). Durations are seconds, timedeltas, or strings in
the JSON form ("0.2s"). What a builder does not set keeps the server's
default (JOIN_ALL, RACE_MODE_FIRST_SUCCESS, no timeout, no retry). The server
checks the plan; these check only types.

Wherever a builder or the Client takes a plan, a dict in the proto3 JSON form
of PlanNode (as in the README: ``{"call": {"handler": "value", ...}}``) is
taken too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

from google.protobuf import json_format

from ._enums import EnumLike, enum_value
from ._pb import plan_pb2
from .values import DurationLike, to_duration, to_struct, to_value

PlanNode = plan_pb2.PlanNode
RetryPolicy = plan_pb2.RetryPolicy

#: A plan as the API takes it: a PlanNode, or a dict in its JSON form.
PlanLike = Union[PlanNode, Mapping[str, Any]]
RetryLike = Union[int, RetryPolicy]


def as_plan(plan: PlanLike) -> PlanNode:
    """`plan` as a PlanNode: a PlanNode as it is, a dict parsed from the
    proto3 JSON form (ParseError naming what is wrong)."""
    if isinstance(plan, PlanNode):
        return plan
    if isinstance(plan, Mapping):
        return json_format.ParseDict(plan, PlanNode())
    raise TypeError("a plan is a PlanNode or a dict in its JSON form, not %s"
                    % type(plan).__name__)


def retry_policy(max_attempts: int, *, initial_backoff: Optional[DurationLike] = None,
                 max_backoff: Optional[DurationLike] = None,
                 multiplier: Optional[float] = None, jitter: Optional[float] = None,
                 retryable_codes: Iterable[str] = ()) -> RetryPolicy:
    """A RetryPolicy: `max_attempts` in all, the first included; the rest as
    in plan.proto (unset: the server's defaults). `retryable_codes` are
    status code names ("UNAVAILABLE")."""
    policy = RetryPolicy(max_attempts=max_attempts, retryable_codes=list(retryable_codes))
    if initial_backoff is not None:
        policy.initial_backoff.CopyFrom(to_duration(initial_backoff))
    if max_backoff is not None:
        policy.max_backoff.CopyFrom(to_duration(max_backoff))
    if multiplier is not None:
        policy.multiplier = multiplier
    if jitter is not None:
        policy.jitter = jitter
    return policy


def _node(id: Optional[str], timeout: Optional[DurationLike],
          retry: Optional[RetryLike]) -> PlanNode:
    """A node with the options every kind has, and no kind yet."""
    node = PlanNode(id=id or "")
    if timeout is not None:
        node.timeout.CopyFrom(to_duration(timeout))
    if retry is not None:
        node.retry.CopyFrom(retry if isinstance(retry, RetryPolicy) else retry_policy(retry))
    return node


def call(handler: str, /, *, id: Optional[str] = None, timeout: Optional[DurationLike] = None,
         retry: Optional[RetryLike] = None, args: Optional[Mapping[str, Any]] = None,
         **kwargs: Any) -> PlanNode:
    """A call of `handler` with its arguments as keywords, converted as
    to_value() does (a timedelta becomes "1.5s")::

        call("sleep", duration="0.2s", value={"n": 1})

    An argument named like one of this function's own options (the http
    handler's ``timeout``) goes in `args`, which the keywords extend::

        call("http", timeout=5, args={"url": url, "timeout": "2s"})
    """
    node = _node(id, timeout, retry)
    node.call.handler = handler
    node.call.args.CopyFrom(to_struct({**(args or {}), **kwargs}))
    return node


def parallel(*children: PlanLike, join: Optional[EnumLike] = None, quorum: Optional[int] = None,
             max_concurrency: Optional[int] = None, id: Optional[str] = None,
             timeout: Optional[DurationLike] = None,
             retry: Optional[RetryLike] = None) -> PlanNode:
    """Runs `children` at once. `join`: "all" (fail fast, the default),
    "all_settled" or "quorum" (with `quorum`), or a weft.v1.Join;
    `max_concurrency`: at most that many children at a time."""
    node = _node(id, timeout, retry)
    node.parallel.children.extend(as_plan(c) for c in children)
    if join is not None:
        node.parallel.join = enum_value(plan_pb2.Join, "JOIN_", join)
    if quorum is not None:
        node.parallel.quorum = quorum
    if max_concurrency is not None:
        node.parallel.max_concurrency = max_concurrency
    return node


def race(*children: PlanLike, mode: Optional[EnumLike] = None,
         hedge_delay: Optional[DurationLike] = None, id: Optional[str] = None,
         timeout: Optional[DurationLike] = None, retry: Optional[RetryLike] = None) -> PlanNode:
    """Races `children`: the winner's value is the race's, the others are
    cancelled. `mode`: "first_success" (failover, the default) or
    "first_complete"; `hedge_delay`: child i starts i * hedge_delay late."""
    node = _node(id, timeout, retry)
    node.race.children.extend(as_plan(c) for c in children)
    if mode is not None:
        node.race.mode = enum_value(plan_pb2.RaceMode, "RACE_MODE_", mode)
    if hedge_delay is not None:
        node.race.hedge_delay.CopyFrom(to_duration(hedge_delay))
    return node


def offload(child: PlanLike, pool: Optional[str] = None, *, id: Optional[str] = None,
            timeout: Optional[DurationLike] = None,
            retry: Optional[RetryLike] = None) -> PlanNode:
    """Runs `child`'s calls on the thread pool `pool` ("default" if None)."""
    node = _node(id, timeout, retry)
    node.offload.child.CopyFrom(as_plan(child))
    if pool is not None:
        node.offload.pool = pool
    return node


def sequence(*children: PlanLike, id: Optional[str] = None,
             timeout: Optional[DurationLike] = None,
             retry: Optional[RetryLike] = None) -> PlanNode:
    """Runs `children` one after another; the first failure stops it."""
    node = _node(id, timeout, retry)
    node.sequence.children.extend(as_plan(c) for c in children)
    return node


def map_over(items: Any, child: PlanLike, *, as_: Optional[str] = None,
             join: Optional[EnumLike] = None, quorum: Optional[int] = None,
             max_concurrency: Optional[int] = None, id: Optional[str] = None,
             timeout: Optional[DurationLike] = None,
             retry: Optional[RetryLike] = None) -> PlanNode:
    """A map node: `child` once per item of `items` (a list, or ``ref(...)``
    naming one), joined like a parallel's children. Inside `child`,
    ``ref("$item")``, ``ref("$item.field")`` and ``ref("$index")``, or the
    name `as_` gives the item::

        sequence(call("http", id="subscribers", url=url),
                 map_over(ref("subscribers.body"),
                          call("http", url=fmt("http://mail/send?to={$item.email}")),
                          max_concurrency=10, join="all_settled"))
    """
    node = _node(id, timeout, retry)
    node.map.items.CopyFrom(to_value(items))
    node.map.child.CopyFrom(as_plan(child))
    if as_:
        setattr(node.map, "as", as_)  # "as" is a Python keyword.
    if join is not None:
        node.map.join = enum_value(plan_pb2.Join, "JOIN_", join)
    if quorum is not None:
        node.map.quorum = quorum
    if max_concurrency is not None:
        node.map.max_concurrency = max_concurrency
    return node


def ref(path: str) -> dict:
    """A value for a call's args that an earlier step of a sequence made:
    the node with id "user" in ``ref("user.body.name")``, walked by
    ``.field`` and ``[index]`` steps. weftd fills it in when the call starts::

        sequence(call("http", id="user", url="http://api/users/42"),
                 call("http", url=fmt("http://api/users/{user.body.id}/posts")))
    """
    return {"$ref": path}


def fmt(text: str) -> dict:
    """A string built from references: each ``{user.id}`` slot takes a
    string or a number; ``{{`` and ``}}`` write braces."""
    return {"$format": text}


def literal(value: Any) -> dict:
    """`value` as it is, even an object with a "$ref" key."""
    return {"$literal": value}


def lazy(name: str, *, id: Optional[str] = None, timeout: Optional[DurationLike] = None,
         retry: Optional[RetryLike] = None) -> PlanNode:
    """The value of a lazy value: "lazyValues/{id}" or the bare id."""
    node = _node(id, timeout, retry)
    node.lazy.name = lazy_value_name(name)
    return node


def task_name(name_or_id: str) -> str:
    """"tasks/{id}" from itself or the bare id."""
    return name_or_id if name_or_id.startswith("tasks/") else "tasks/" + name_or_id


def lazy_value_name(name_or_id: str) -> str:
    """"lazyValues/{id}" from itself or the bare id."""
    return name_or_id if name_or_id.startswith("lazyValues/") else "lazyValues/" + name_or_id
