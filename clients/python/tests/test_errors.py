"""Every failed call is a WeftError with the google.rpc details decoded."""

import datetime

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2

from google.rpc import error_details_pb2, status_pb2
from weft_client import WeftError, call

MISSING_TASK = "tasks/" + "0" * 32


def test_unknown_handler_is_invalid_argument_naming_the_field(client):
    with pytest.raises(WeftError) as caught:
        client.run(call("nope"))
    e = caught.value
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.reason, e.domain, e.metadata) == ("UNKNOWN_HANDLER", "weft", {"handler": "nope"})
    [(field, description)] = e.field_violations
    assert field == "plan.call.handler"
    assert 'unknown handler "nope"' in description
    assert e.retry_delay is None and e.resource is None
    assert str(e).startswith("INVALID_ARGUMENT: plan.call.handler: ")
    assert str(e).endswith("[UNKNOWN_HANDLER]")


@pytest.mark.parametrize("name", [MISSING_TASK, "0" * 32])
def test_missing_task_is_not_found_naming_the_resource(client, name):
    with pytest.raises(WeftError) as caught:
        client.get_task(name)
    e = caught.value
    assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND")
    assert e.resource == ("weft.v1.Task", MISSING_TASK)
    assert e.field_violations == []


def test_grpc_own_errors_have_no_reason(client):
    with pytest.raises(WeftError) as caught:
        client.run(call("sleep", duration="30s"), timeout=0.5)
    e = caught.value
    assert e.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (e.reason, e.domain, e.metadata, e.details) == (None, None, {}, [])


def test_a_failed_node_is_an_outcome_whose_result_raises(client):
    outcome = client.run(call("fail", code="UNAVAILABLE", message="primary is down"))
    assert (outcome.state, outcome.value) == ("FAILED", None)
    with pytest.raises(WeftError) as caught:
        outcome.result()
    e = caught.value
    assert (e.code, e.message, e.reason) == (
        grpc.StatusCode.UNAVAILABLE, "primary is down", "FAILED_BY_PLAN")


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc raises it, with a chosen trailer."""

    def __init__(self, code, message, status):
        """`status`: a google.rpc.Status, or the trailer's bytes as sent."""
        self._code, self._message = code, message
        trailer = status if isinstance(status, bytes) else status.SerializeToString()
        self._trailer = (("grpc-status-details-bin", trailer),)

    def code(self):
        return self._code

    def details(self):
        return self._message

    def trailing_metadata(self):
        return self._trailer


def packed(*messages):
    out = []
    for m in messages:
        a = any_pb2.Any()
        a.Pack(m)
        out.append(a)
    return out


def test_retry_info_and_unknown_details_are_decoded():
    unknown = any_pb2.Any(type_url="type.googleapis.com/example.Custom", value=b"\x08\x01")
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], details=[
        *packed(error_details_pb2.ErrorInfo(reason="TOO_MANY_RUNS", domain="weft",
                                            metadata={"flag": "max_active_runs", "limit": "1"}),
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1))),
        unknown])
    e = WeftError.from_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "1 runs in flight", status))
    assert e.reason == "TOO_MANY_RUNS"
    assert e.metadata == {"flag": "max_active_runs", "limit": "1"}
    assert e.retry_delay == datetime.timedelta(seconds=1)
    assert e.details[-1] == unknown


def test_details_of_another_code_than_the_call_are_ignored():
    info = error_details_pb2.ErrorInfo(reason="TASK_NOT_FOUND")
    status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], details=packed(info))
    e = WeftError.from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "broken", status))
    assert (e.code, e.message, e.reason, e.details) == (
        grpc.StatusCode.INTERNAL, "broken", None, [])


NOT_FOUND_INFO = error_details_pb2.ErrorInfo(reason="TASK_NOT_FOUND", domain="weft")


@pytest.mark.parametrize("trailer", [
    b"\xff\xff\xff",  # Not protobuf at all.
    status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0],
                      details=packed(NOT_FOUND_INFO)).SerializeToString()[:-3],  # Cut short.
], ids=["garbage", "truncated"])
def test_a_malformed_trailer_gives_an_error_without_details(trailer):
    e = WeftError.from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "gone", trailer))
    assert (e.code, e.message, e.reason, e.metadata, e.details) == (
        grpc.StatusCode.NOT_FOUND, "gone", None, {}, [])
    assert str(e) == "NOT_FOUND: gone"


@pytest.mark.parametrize("detail", [
    any_pb2.Any(type_url="type.googleapis.com/example.Custom", value=b"\xff\xff"),
    any_pb2.Any(type_url="type.googleapis.com/google.rpc.NoSuchDetail", value=b"\x08\x01"),
    any_pb2.Any(type_url="", value=b"\x08\x01"),
    # A known type, but a type URL Any.Unpack refuses (no "prefix/").
    any_pb2.Any(type_url="google.rpc.ErrorInfo",
                value=error_details_pb2.ErrorInfo(reason="WRONG").SerializeToString()),
    # A known type, but a value that does not parse as it.
    any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=b"\xff\xff"),
    any_pb2.Any(type_url="type.googleapis.com/google.rpc.BadRequest", value=b"\x0a\x05\x0a"),
], ids=["unknown type", "unknown google.rpc type", "no type URL", "no type URL prefix",
        "malformed ErrorInfo", "truncated BadRequest"])
def test_a_detail_that_does_not_unpack_stays_an_any(detail):
    status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0],
                               details=[detail, *packed(NOT_FOUND_INFO)])
    e = WeftError.from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "gone", status))
    assert e.details == [detail, NOT_FOUND_INFO]
    assert (e.reason, e.domain, e.field_violations) == ("TASK_NOT_FOUND", "weft", [])
