"""Values come back as native types, and outcomes assemble them the way weftd
does for OUTCOME_DETAIL_ROOT."""

import datetime

import pytest

from weft_client import (Outcome, call, offload, parallel, race, sequence, to_python, to_struct,
                         to_value)

NATIVE = {"n": 42, "half": 0.5, "negative": -7, "exact": 2**53, "huge": 1e300,
          "list": [1, 2.5, None, True, "s"], "nested": {"empty": {}, "none": []}}


def test_values_round_trip_through_weftd_as_native_types(client):
    value = client.run(call("value", value=NATIVE), detail="root").value
    assert value == NATIVE
    assert type(value["n"]) is int
    assert type(value["half"]) is float
    assert type(value["exact"]) is int
    assert type(value["huge"]) is float
    assert [type(v) for v in value["list"]] == [int, float, type(None), bool, str]


def test_to_python_keeps_integral_numbers_int():
    assert to_python(to_value(42.0)) == 42 and type(to_python(to_value(42.0))) is int
    assert type(to_python(to_value(-0.0))) is int
    assert type(to_python(to_value(2.0**53 + 2))) is float
    assert to_python(to_struct({"a": [1, {"b": None}]})) == {"a": [1, {"b": None}]}


@pytest.mark.parametrize("bad, error", [(2**53 + 1, ValueError), (float("nan"), ValueError),
                                        (object(), TypeError), ({1: 2}, TypeError)])
def test_to_value_refuses_what_json_cannot_carry(bad, error):
    with pytest.raises(error):
        to_value(bad)


def test_timedelta_arguments_are_durations_weftd_takes(client):
    plan = call("sleep", duration=datetime.timedelta(milliseconds=50), value="slept")
    assert client.run(plan).result() == "slept"


# Every way a composite builds its value from its children's.
MIXED = parallel(
    race(call("sleep", duration="5s", value="slow"), call("value", value="fast"), id="race"),
    sequence(call("value", value=1), offload(call("value", value=[2.5])), id="steps"),
    parallel(call("value", value="ok"),
             call("fail", code="NOT_FOUND", message="gone"), join="all_settled", id="settled"),
    parallel(call("value", value=1), call("sleep", duration="5s"), call("value", value=3),
             join="quorum", quorum=2, id="quorum"),
)


def test_full_outcomes_assemble_the_value_weftd_builds_for_the_root(client):
    full = client.run(MIXED)
    root = client.run(MIXED, detail="root")
    assert root.children == [] and full.proto.children
    assert not full.proto.HasField("value")
    assert full.value == root.value == {
        "race": "fast",
        "steps": [1, [2.5]],
        "settled": [{"state": "NODE_STATE_SUCCEEDED", "value": "ok"},
                    {"state": "NODE_STATE_FAILED",
                     "error": {"code": "NOT_FOUND", "message": "gone"}}],
        "quorum": [1, 3],
    }


def test_outcome_paths_and_names(client):
    full = client.run(MIXED)
    assert full["race"].winner == "children[1]"
    assert full["race/children[0]"].state == "CANCELLED"
    assert full["steps/children[1]"].kind == "OFFLOAD"
    assert full["settled"].join == "ALL_SETTLED"
    assert full["settled/children[1]"].error.reason == "FAILED_BY_PLAN"
    assert full["settled/children[1]"].value is None
    assert full[""].proto == full.proto
    with pytest.raises(KeyError):
        full["nope"]
    assert isinstance(full["quorum"], Outcome) and full["quorum"].duration is not None
