"""WeftError: a failed call, with the google.rpc details weftd sent decoded
(docs/errors.md lists every reason and the details that come with it)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Optional

import grpc
from google.protobuf import any_pb2, message

from ._pb import error_details_pb2, outcome_pb2, status_pb2

# The trailer weftd's details travel in (AIP-193).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class WeftError(Exception):
    """A call that failed, or a plan node that did (Outcome.result()).

    Attributes:
        code: the grpc.StatusCode.
        message: the message, for people; it may change between releases.
        reason: the stable reason of weft's ErrorInfo ("UNKNOWN_HANDLER"), or
            None for an error gRPC made itself (a deadline that passed, a
            server out of reach), which carries no details.
        domain: the ErrorInfo's domain, "weft" for weftd's errors, or None.
        metadata: the ErrorInfo's metadata ({"flag": ..., "limit": ...}).
        field_violations: the BadRequest's (field, description) pairs, the
            field as a path in proto form ("plan.call.handler").
        retry_delay: the RetryInfo's delay as a timedelta, or None.
        resource: the ResourceInfo's (resource_type, resource_name), such as
            ("weft.v1.Task", "tasks/0123..."), or None.
        details: every detail, decoded (google.rpc.error_details messages;
            the Any itself for a type this module does not know, or one
            that does not unpack); none when the trailer is malformed.
    """

    def __init__(self, code: grpc.StatusCode, message: str,
                 details: Sequence[message.Message] = ()) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = list(details)
        info = self._detail(error_details_pb2.ErrorInfo)
        self.reason: Optional[str] = info.reason if info else None
        self.domain: Optional[str] = info.domain if info else None
        self.metadata: dict[str, str] = dict(info.metadata) if info else {}
        self.field_violations: list[tuple[str, str]] = [
            (v.field, v.description) for d in self.details
            if isinstance(d, error_details_pb2.BadRequest) for v in d.field_violations]
        retry = self._detail(error_details_pb2.RetryInfo)
        self.retry_delay: Optional[datetime.timedelta] = (
            retry.retry_delay.ToTimedelta() if retry else None)
        resource = self._detail(error_details_pb2.ResourceInfo)
        self.resource: Optional[tuple[str, str]] = (
            (resource.resource_type, resource.resource_name) if resource else None)

    def _detail(self, kind: type) -> Optional[message.Message]:
        return next((d for d in self.details if isinstance(d, kind)), None)

    def __str__(self) -> str:
        text = "%s: %s" % (self.code.name, self.message)
        return text + " [%s]" % self.reason if self.reason else text

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "WeftError":
        """The error of a failed call (a grpc.RpcError that is a grpc.Call),
        its details read from the grpc-status-details-bin trailer. A trailer
        that does not parse as a google.rpc.Status, or whose Status has
        another code than the call, is ignored: the error has no details."""
        code = error.code()
        trailer = dict(error.trailing_metadata() or ()).get(STATUS_DETAILS_KEY)
        return cls(code, error.details() or "", _status_details(trailer, code))

    @classmethod
    def from_node_error(cls, error: outcome_pb2.Error) -> "WeftError":
        """The error of a node of an outcome: what a call whose root the node
        was would have failed with (its reason as weft's ErrorInfo)."""
        code = grpc.StatusCode.__members__.get(error.code, grpc.StatusCode.UNKNOWN)
        info = error_details_pb2.ErrorInfo(reason=error.reason, domain="weft")
        return cls(code, error.message, [info] if error.reason else [])


def _status_details(trailer: object, code: grpc.StatusCode) -> list[message.Message]:
    """The details of a grpc-status-details-bin trailer, decoded; none for a
    missing or malformed trailer, or one of another code than the call's.
    Never raises: a bad trailer must not hide the error it came with."""
    if not trailer:
        return []
    try:
        status = status_pb2.Status.FromString(trailer)
    except (message.DecodeError, TypeError):  # Not a serialized Status, or not bytes.
        return []
    if status.code != code.value[0]:
        return []
    return [_decode(d) for d in status.details]


def _decode(detail: any_pb2.Any) -> message.Message:
    """A detail as its google.rpc message, or the Any itself for another
    type, or one that does not unpack (a type URL without its "prefix/", a
    value that does not parse as its type): never raises."""
    descriptor = error_details_pb2.DESCRIPTOR.message_types_by_name.get(
        detail.TypeName().rpartition(".")[2])
    if descriptor is None or descriptor.full_name != detail.TypeName():
        return detail
    decoded = getattr(error_details_pb2, descriptor.name)()
    try:
        unpacked = detail.Unpack(decoded)
    except message.DecodeError:
        return detail
    return decoded if unpacked else detail
