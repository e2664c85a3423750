"""The plans of EXAMPLES.md's five scenarios, built with weft_client, their
URLs and sizes as parameters: test_plans checks them against the JSON there,
test_scenarios runs them against weftd and the HTTP fixture."""

from typing import Optional

from weft_client import call, offload, parallel, race, retry_policy


def fetch(id: str, url: str, **options):
    """An http GET of `url` as the node `id`."""
    return call("http", id=id, url=url, **options)


def dashboard(user: str, posts: str, stats: str):
    """1. Three sources at once, their values by name."""
    return parallel(fetch("user", user), fetch("recentPosts", posts), fetch("statistics", stats))


def search(primary: str, backup: str, fallback: str, *, fallback_timeout: float = 2,
           hedge_delay: Optional[float] = None):
    """2. Failover: the first answer wins; the last resort has its own timeout."""
    return race(fetch("primary", primary), fetch("backup", backup),
                fetch("fallback", fallback, timeout=fallback_timeout), hedge_delay=hedge_delay)


def digest_and_heartbeat(rounds: int = 200000):
    """3. CPU work on the default pool beside a timer."""
    return parallel(
        offload(call("hash", data="large payload", rounds=rounds), "default", id="digest"),
        call("sleep", id="heartbeat", duration="0.1s", value="on time"))


def send(id: str, url: str):
    """A newsletter's mail to `id`@example.com, POSTed to `url`, three
    attempts."""
    return call("http", id=id, retry=retry_policy(3, initial_backoff=0.2), method="POST",
                url=url, body={"to": id + "@example.com"})


def newsletter(ada: str, grace: str):
    """4. Two sends, ten at a time at most, every failure kept."""
    return parallel(send("ada", ada), send("grace", grace), join="all_settled",
                    max_concurrency=10)


def daily_stats(data: str = "stats", rounds: int = 500000):
    """5. The lazy value's plan: a digest on the default pool."""
    return offload(call("hash", data=data, rounds=rounds))
