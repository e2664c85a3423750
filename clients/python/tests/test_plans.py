"""The plan builders make the plans of EXAMPLES.md exactly as their JSON does."""

import datetime
import json

import pytest
from google.protobuf import json_format

from scenario_plans import daily_stats, dashboard, digest_and_heartbeat, newsletter, search
from weft.v1 import plan_pb2
from weft_client import (as_plan, call, fmt, lazy, literal, map_over, parallel, race, ref,
                         sequence, to_duration)

MAIL = "http://mail.internal/send"

# Each scenario of EXAMPLES.md: its plan built in Python, and its JSON there
# (verbatim, hence the long lines).
SCENARIOS = {
    "dashboard": (
        dashboard("http://users.internal/users/42", "http://posts.internal/users/42/posts",
                  "http://stats.internal/users/42"),
        """{"parallel": {"children": [
  {"id": "user",       "call": {"handler": "http", "args": {"url": "http://users.internal/users/42"}}},
  {"id": "recentPosts","call": {"handler": "http", "args": {"url": "http://posts.internal/users/42/posts"}}},
  {"id": "statistics", "call": {"handler": "http", "args": {"url": "http://stats.internal/users/42"}}}
]}}""",
    ),
    "failover": (
        search("http://search-a.internal/q?x=weft", "http://search-b.internal/q?x=weft",
               "http://search-c.internal/q?x=weft"),
        """{"race": {"children": [
  {"id": "primary",  "call": {"handler": "http", "args": {"url": "http://search-a.internal/q?x=weft"}}},
  {"id": "backup",   "call": {"handler": "http", "args": {"url": "http://search-b.internal/q?x=weft"}}},
  {"id": "fallback", "timeout": "2s", "call": {"handler": "http", "args": {"url": "http://search-c.internal/q?x=weft"}}}
]}}""",
    ),
    "hedged failover": (
        search("http://search-a.internal/q?x=weft", "http://search-b.internal/q?x=weft",
               "http://search-c.internal/q?x=weft", hedge_delay=0.05),
        """{"race": {"hedgeDelay": "0.05s", "children": [
  {"id": "primary",  "call": {"handler": "http", "args": {"url": "http://search-a.internal/q?x=weft"}}},
  {"id": "backup",   "call": {"handler": "http", "args": {"url": "http://search-b.internal/q?x=weft"}}},
  {"id": "fallback", "timeout": "2s", "call": {"handler": "http", "args": {"url": "http://search-c.internal/q?x=weft"}}}
]}}""",
    ),
    "offload": (
        digest_and_heartbeat(),
        """{"parallel": {"children": [
  {"id": "digest", "offload": {"pool": "default", "child":
     {"call": {"handler": "hash", "args": {"data": "large payload", "rounds": 200000}}}}},
  {"id": "heartbeat", "call": {"handler": "sleep", "args": {"duration": "0.1s", "value": "on time"}}}
]}}""",
    ),
    "newsletter": (
        newsletter(MAIL, MAIL),
        """{"parallel": {"join": "JOIN_ALL_SETTLED", "maxConcurrency": 10, "children": [
  {"id": "ada",   "retry": {"maxAttempts": 3, "initialBackoff": "0.2s"},
   "call": {"handler": "http", "args": {"method": "POST", "url": "http://mail.internal/send", "body": {"to": "ada@example.com"}}}},
  {"id": "grace", "retry": {"maxAttempts": 3, "initialBackoff": "0.2s"},
   "call": {"handler": "http", "args": {"method": "POST", "url": "http://mail.internal/send", "body": {"to": "grace@example.com"}}}}
]}}""",
    ),
    "analytics": (
        daily_stats(),
        """{"offload": {"child": {"call": {"handler": "hash", "args": {"data": "stats", "rounds": 500000}}}}}""",
    ),
    "analytics in a plan": (
        lazy("daily_stats"),
        """{"lazy": {"name": "lazyValues/daily_stats"}}""",
    ),
}


@pytest.mark.parametrize("built, expected", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_builders_make_the_examples_plans(built, expected):
    assert built == json_format.Parse(expected, plan_pb2.PlanNode())
    assert as_plan(json.loads(expected)) == built


@pytest.mark.parametrize("duration", [0.25, datetime.timedelta(milliseconds=250), "0.25s",
                                      to_duration("0.250s")])
def test_durations_in_every_form_are_the_same(duration):
    node = race(call("value", value=1), hedge_delay=duration, timeout=duration)
    assert json_format.MessageToDict(node)["race"]["hedgeDelay"] == "0.250s"
    assert node.timeout == node.race.hedge_delay


def test_enums_by_short_name_full_name_or_number():
    assert (parallel(join="quorum", quorum=1) == parallel(join="JOIN_QUORUM", quorum=1)
            == parallel(join=plan_pb2.JOIN_QUORUM, quorum=1))
    assert race(mode="first_complete").race.mode == plan_pb2.RACE_MODE_FIRST_COMPLETE
    with pytest.raises(ValueError):
        parallel(join="fastest")


def test_args_named_like_node_options_go_in_args():
    node = call("http", id="page", timeout=5, retry=2,
                args={"url": "http://x.internal/", "timeout": "2s"}, method="GET")
    assert json_format.MessageToDict(node) == {
        "id": "page", "timeout": "5s", "retry": {"maxAttempts": 2},
        "call": {"handler": "http",
                 "args": {"url": "http://x.internal/", "timeout": "2s", "method": "GET"}}}


def test_timedelta_arguments_become_duration_strings():
    node = call("sleep", duration=datetime.timedelta(seconds=1.5))
    assert node.call.args.fields["duration"].string_value == "1.500s"


def test_sequence_and_lazy_accept_json_children_and_bare_ids():
    node = sequence({"call": {"handler": "value", "args": {"value": 1}}},
                    lazy("lazyValues/daily_stats", id="stats"), id="steps")
    assert json_format.MessageToDict(node) == {"id": "steps", "sequence": {"children": [
        {"call": {"handler": "value", "args": {"value": 1}}},
        {"id": "stats", "lazy": {"name": "lazyValues/daily_stats"}}]}}


def test_data_flow_builders_write_their_json_forms():
    node = sequence(
        call("http", id="user", url="http://api/users/42"),
        call("value", value={"url": fmt("http://api/users/{user.body.id}/posts"),
                             "name": ref("user.body.name"),
                             "kept": literal({"$ref": "not.read"})}))
    assert json_format.MessageToDict(node.sequence.children[1].call.args) == {
        "value": {"url": {"$format": "http://api/users/{user.body.id}/posts"},
                  "name": {"$ref": "user.body.name"},
                  "kept": {"$literal": {"$ref": "not.read"}}}}


def test_map_over_builds_a_map_node():
    node = map_over(ref("subscribers.body"), call("value", value=ref("$item.email")),
                    as_="subscriber", join="all_settled", max_concurrency=10)
    assert json_format.MessageToDict(node) == {"map": {
        "items": {"$ref": "subscribers.body"},
        "child": {"call": {"handler": "value", "args": {"value": {"$ref": "$item.email"}}}},
        "as": "subscriber", "join": "JOIN_ALL_SETTLED", "maxConcurrency": 10}}
