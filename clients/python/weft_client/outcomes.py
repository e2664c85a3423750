"""Outcome: a weft.v1.NodeOutcome read as Python, its value native.

A full outcome (OUTCOME_DETAIL_FULL, the default) carries each value once,
at the call or lazy node that made it; a composite's value is built from its
children's, by the rules weftd follows for OUTCOME_DETAIL_ROOT (and
server/common/outcome.h's AssembleValue):

- offload: its child's value;
- race: its winner's value;
- sequence: the list of its children's values;
- parallel: a dict by child id when every child has an id, else a list in
  child order, of the children that succeeded (all of them for JOIN_ALL);
  with JOIN_ALL_SETTLED, of every child's {"state", "value"} or
  {"state", "error": {"code", "message"}}.

So ``Outcome.value`` is the same whichever detail was asked for.
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

from ._pb import outcome_pb2, plan_pb2
from .errors import WeftError
from .values import to_datetime, to_python

NodeOutcome = outcome_pb2.NodeOutcome
_SUCCEEDED = outcome_pb2.NODE_STATE_SUCCEEDED


class Outcome:
    """A read-only view of a NodeOutcome (the proto is ``.proto``).

    Enums read as their names without prefix: ``state`` "SUCCEEDED",
    "FAILED", "CANCELLED", "TIMED_OUT" or "SKIPPED"; ``kind`` "CALL",
    "PARALLEL", ...; ``join`` "ALL", "ALL_SETTLED", ... (parallel only).
    """

    __slots__ = ("proto",)

    def __init__(self, proto: NodeOutcome) -> None:
        self.proto = proto

    @property
    def id(self) -> str:
        """The node's id from the plan, "" when it had none."""
        return self.proto.id

    @property
    def kind(self) -> str:
        return outcome_pb2.NodeKind.Name(self.proto.kind).removeprefix("NODE_KIND_")

    @property
    def state(self) -> str:
        return outcome_pb2.NodeState.Name(self.proto.state).removeprefix("NODE_STATE_")

    @property
    def succeeded(self) -> bool:
        return self.proto.state == _SUCCEEDED

    @property
    def value(self) -> Any:
        """The node's value, native (see values.to_python), built from its
        children's when the node carries none; None when it did not succeed."""
        return _assemble(self.proto)

    @property
    def error(self) -> Optional[outcome_pb2.Error]:
        """Why the node did not succeed (code and reason names, message), or
        None when it did."""
        return self.proto.error if self.proto.HasField("error") else None

    @property
    def attempts(self) -> int:
        return self.proto.attempts

    @property
    def winner(self) -> str:
        """A race's winning child, by id or as "children[i]"; else ""."""
        return self.proto.winner

    @property
    def join(self) -> str:
        return plan_pb2.Join.Name(self.proto.join).removeprefix("JOIN_")

    @property
    def start_time(self) -> Optional[datetime.datetime]:
        return to_datetime(self.proto.start_time) if self.proto.HasField("start_time") else None

    @property
    def end_time(self) -> Optional[datetime.datetime]:
        return to_datetime(self.proto.end_time) if self.proto.HasField("end_time") else None

    @property
    def duration(self) -> Optional[datetime.timedelta]:
        """From start to end; None for a node that never started."""
        start, end = self.start_time, self.end_time
        return end - start if start and end else None

    @property
    def children(self) -> list["Outcome"]:
        """The children's outcomes, in plan order; empty for a leaf or a root
        returned alone (OUTCOME_DETAIL_ROOT)."""
        return [Outcome(c) for c in self.proto.children]

    def __getitem__(self, path: str) -> "Outcome":
        """The node at `path` below this one: child names (ids, or
        "children[i]") joined by "/", as GetTask's `node` takes them
        (``outcome["fetch/children[2]"]``); "" is this node. KeyError for a
        step that names no child."""
        node = self.proto
        for step in path.split("/") if path else ():
            node = _child(node, step)
        return Outcome(node)

    def result(self) -> Any:
        """The value when the node succeeded; else raises its error as a
        WeftError (code, message and reason, as a call would)."""
        if not self.succeeded:
            raise WeftError.from_node_error(self.proto.error)
        return self.value

    def __repr__(self) -> str:
        name = " %r" % self.id if self.id else ""
        return "<Outcome %s%s %s>" % (self.kind, name, self.state)


def child_name(id: str, index: int) -> str:
    """How outcomes name a plan's child: its id, or "children[i]"."""
    return id or "children[%d]" % index


def _child(node: NodeOutcome, step: str) -> NodeOutcome:
    """The child of `node` that `step` names: "children[i]", else an id."""
    for i, c in enumerate(node.children):
        if step == "children[%d]" % i:
            return c
    for c in node.children:
        if step and c.id == step:
            return c
    raise KeyError(step)


def _assemble(node: NodeOutcome) -> Any:
    if node.state != _SUCCEEDED:
        return None
    if node.HasField("value"):
        return to_python(node.value)
    children = node.children
    if node.kind == outcome_pb2.NODE_KIND_PARALLEL:
        return _parallel_value(node)
    if node.kind == outcome_pb2.NODE_KIND_MAP:
        return _parallel_value(node, keyed=False)
    if node.kind == outcome_pb2.NODE_KIND_SEQUENCE:
        return [_assemble(c) for c in children]
    if node.kind == outcome_pb2.NODE_KIND_RACE:
        return next((_assemble(c) for i, c in enumerate(children)
                     if child_name(c.id, i) == node.winner), None)
    if node.kind == outcome_pb2.NODE_KIND_OFFLOAD and len(children) == 1:
        return _assemble(children[0])
    return None


def _parallel_value(node: NodeOutcome, keyed: bool = True) -> Any:
    """A parallel's value; a map's (`keyed` False) is always a list."""
    settled = node.join == plan_pb2.JOIN_ALL_SETTLED
    entries = []
    for c in node.children:
        if settled:
            entry: dict[str, Any] = {"state": outcome_pb2.NodeState.Name(c.state)}
            if c.state == _SUCCEEDED:
                entry["value"] = _assemble(c)
            else:
                entry["error"] = {"code": c.error.code, "message": c.error.message}
            entries.append((c.id, entry))
        elif c.state == _SUCCEEDED:
            entries.append((c.id, _assemble(c)))
    if keyed and all(c.id for c in node.children):
        return dict(entries)
    return [v for _, v in entries]
