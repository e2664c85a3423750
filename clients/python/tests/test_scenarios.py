"""The five scenarios of EXAMPLES.md, end to end against weftd, the http
calls going to the HTTP fixture (tests/fixture/http_fixture.h)."""

import concurrent.futures
import datetime
import hashlib
import threading

import scenario_plans
from weft.v1 import lazy_pb2, task_pb2
from weft_client import Outcome, lazy, parallel

USER = {"id": 42, "name": "Ada Lovelace"}
POSTS = [{"id": 1, "title": "Notes on the Analytical Engine"},
         {"id": 2, "title": "On Bernoulli numbers"}]
STATS = {"followers": 1843, "posts": 2}
SEARCH = {"server": "search", "hits": ["weft", "weft.v1.Orchestrator"]}


def sha256_rounds(data: str, rounds: int) -> str:
    """What the hash handler returns: SHA-256 applied `rounds` times."""
    digest = data.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def test_dashboard_fetches_at_once_with_values_by_name(client, upstream_url):
    outcome = client.run(scenario_plans.dashboard(upstream_url("/users/42"),
                                                  upstream_url("/users/42/posts"),
                                                  upstream_url("/stats/42")),
                         detail="root")
    assert outcome.state == "SUCCEEDED"
    assert {k: v["body"] for k, v in outcome.value.items()} == {
        "user": USER, "recentPosts": POSTS, "statistics": STATS}
    assert {v["status"] for v in outcome.value.values()} == {200}


def test_dashboard_fails_fast_naming_the_failed_source(client, upstream_url):
    outcome = client.run(scenario_plans.dashboard(upstream_url("/users/42?delay=10000"),
                                                  upstream_url("/users/42/posts"),
                                                  upstream_url("/stats/42?status=500")))
    assert outcome.state == "FAILED"
    assert "statistics" in outcome.error.message
    assert (outcome["statistics"].state, outcome["statistics"].error.reason) == (
        "FAILED", "HTTP_STATUS")
    assert (outcome["user"].state, outcome["user"].error.reason) == ("CANCELLED", "SIBLING_FAILED")
    # The user's 10 s answer was not waited for.
    assert outcome.duration < datetime.timedelta(seconds=8)


def test_search_failover_the_backup_wins_and_the_fallback_is_cancelled(client, upstream_url):
    # The fallback's own timeout is generous: it must lose, not time out.
    outcome = client.run(scenario_plans.search(upstream_url("/search?x=weft&status=503"),
                                               upstream_url("/search?x=weft&delay=200"),
                                               upstream_url("/search?x=weft&delay=10000"),
                                               fallback_timeout=20))
    assert (outcome.state, outcome.winner) == ("SUCCEEDED", "backup")
    assert outcome.value["body"] == SEARCH
    assert (outcome["primary"].state, outcome["primary"].error.code) == ("FAILED", "UNAVAILABLE")
    assert (outcome["fallback"].state, outcome["fallback"].error.reason) == (
        "CANCELLED", "RACE_LOST")
    assert outcome.duration < datetime.timedelta(seconds=8)


def test_hedged_search_starts_the_backups_only_when_the_primary_is_late(client, upstream_url):
    url = upstream_url("/search?x=weft")
    outcome = client.run(scenario_plans.search(url, url, url, hedge_delay=30))
    assert (outcome.winner, outcome.value["body"]) == ("primary", SEARCH)
    for late in ("backup", "fallback"):
        assert (outcome[late].state, outcome[late].attempts) == ("SKIPPED", 0)


def test_cpu_work_is_offloaded_and_the_heartbeat_stays_on_time(client):
    rounds = 2_000_000  # Long enough to outlast the heartbeat by far.
    outcome = client.run(scenario_plans.digest_and_heartbeat(rounds))
    assert outcome.value == {"digest": sha256_rounds("large payload", rounds),
                             "heartbeat": "on time"}
    heartbeat, digest = outcome["heartbeat"], outcome["digest"]
    assert heartbeat.duration < datetime.timedelta(seconds=1)
    assert heartbeat.end_time < digest.end_time


def test_newsletter_in_the_background_every_failure_kept(client, tasks, upstream_url, unique):
    labels = {"job": "newsletter", "run": unique}
    task = tasks.create(scenario_plans.newsletter(
        upstream_url("/send?fail_first=1&key=" + unique),  # 503 once, then sent.
        upstream_url("/send?status=503")), labels=labels)
    assert dict(task.labels) == labels

    snapshots = list(client.watch_task(task.name, timeout=120))
    states = [s.state for s in snapshots]
    assert states == sorted(states), "states go forward"
    assert states[0] in (task_pb2.TASK_STATE_QUEUED, task_pb2.TASK_STATE_RUNNING)
    done = snapshots[-1]
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED
    assert (done.progress.leaves_total, done.progress.leaves_done,
            done.progress.leaves_failed) == (2, 2, 1)

    outcome = Outcome(done.outcome)
    assert outcome.value["ada"]["state"] == "NODE_STATE_SUCCEEDED"
    assert outcome.value["ada"]["value"]["body"]["body"] == '{"to":"ada@example.com"}'
    assert outcome.value["grace"] == {"state": "NODE_STATE_FAILED", "error": {
        "code": "UNAVAILABLE", "message": outcome["grace"].error.message}}
    assert (outcome["ada"].attempts, outcome["grace"].attempts) == (2, 3)

    assert [t.name for t in client.list_tasks(labels=labels)] == [task.name]
    assert [t.name for t in client.list_tasks(labels=labels, states=["succeeded", "failed"])] == [
        task.name]
    assert list(client.list_tasks(labels=labels, states=["RUNNING"])) == []
    counts = {c.state: c.count for c in client.server_info().tasks}
    assert counts.get(done.state, 0) >= 1
    client.delete_task(task.name)
    assert list(client.list_tasks(labels=labels)) == []


def test_daily_analytics_are_computed_once_for_200_callers(client, lazy_value_id):
    rounds = 3_000_000  # About a second: every caller comes while it runs.
    plan = scenario_plans.daily_stats(lazy_value_id, rounds)
    created = client.create_lazy_value(lazy_value_id, plan, ttl=86400, refresh_after=3600)
    assert (created.name, created.state) == (
        "lazyValues/" + lazy_value_id, lazy_pb2.LAZY_VALUE_STATE_EMPTY)

    callers = 200
    start = threading.Barrier(callers, timeout=60)

    def resolve(_):
        start.wait()
        return client.resolve_lazy_value(lazy_value_id)

    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(resolve, range(callers)))
    expected = sha256_rounds(lazy_value_id, rounds)
    assert {(a.value, a.generation, a.compute_time) for a in answers} == {
        (expected, 0, answers[0].compute_time)}

    stats = client.get_lazy_value(lazy_value_id).stats
    assert stats.loads == 1
    assert stats.hits + stats.misses == callers
    assert stats.misses == sum(not a.cache_hit for a in answers) > 0

    # A plan's lazy node shares the cached value.
    assert client.run(parallel(lazy(lazy_value_id, id="stats"))).value == {"stats": expected}
    assert client.get_lazy_value(lazy_value_id).stats.loads == 1

    reset = client.reset_lazy_value(lazy_value_id)
    assert (reset.state, reset.generation) == (lazy_pb2.LAZY_VALUE_STATE_EMPTY, 1)
    again = client.resolve_lazy_value(lazy_value_id)
    assert (again.value, again.generation, again.cache_hit) == (expected, 1, False)
    assert again.compute_time > answers[0].compute_time
    assert client.resolve_lazy_value(lazy_value_id).cache_hit
    assert client.get_lazy_value(lazy_value_id).stats.loads == 2
