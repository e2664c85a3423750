"""The lazy value methods beyond the analytics scenario: definitions,
listing, deleting, and a failed computation."""

import grpc
import pytest

from weft_client import WeftError, call


def test_a_lazy_value_is_listed_until_deleted(client, lazy_value_id):
    plan = call("value", value={"visits": 42})
    created = client.create_lazy_value(lazy_value_id, plan, ttl="60s")
    assert client.create_lazy_value("lazyValues/" + lazy_value_id, plan, ttl=60) == created
    with pytest.raises(WeftError) as caught:
        client.create_lazy_value(lazy_value_id, plan, ttl=61)
    assert (caught.value.reason, caught.value.resource) == (
        "LAZY_VALUE_EXISTS", ("weft.v1.LazyValue", created.name))
    assert created.name in [v.name for v in client.list_lazy_values(page_size=1)]

    client.delete_lazy_value(lazy_value_id)
    with pytest.raises(WeftError) as caught:
        client.resolve_lazy_value(lazy_value_id)
    assert (caught.value.code, caught.value.reason, caught.value.resource) == (
        grpc.StatusCode.NOT_FOUND, "LAZY_VALUE_NOT_FOUND", ("weft.v1.LazyValue", created.name))


def test_a_failed_computation_has_the_plans_code_and_reason(client, lazy_value_id):
    client.create_lazy_value(lazy_value_id, call("fail", code="UNAVAILABLE", message="no stats"))
    with pytest.raises(WeftError) as caught:
        client.resolve_lazy_value(lazy_value_id)
    e = caught.value
    assert (e.code, e.reason) == (grpc.StatusCode.UNAVAILABLE, "LAZY_COMPUTATION_FAILED")
    assert e.metadata["node_reason"] == "FAILED_BY_PLAN"
