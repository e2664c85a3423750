"""watch_task follows a task to its end, and resumes a dropped stream where it
left off."""

import grpc
import pytest

from weft.v1 import task_pb2
from weft_client import Outcome, WeftError, call, is_terminal, sequence

# Four steps of 0.5 s: a task that changes for about two seconds.
STEPS = sequence(*(call("sleep", duration="0.5s", value=i) for i in range(4)))


class WatchRequests(grpc.UnaryStreamClientInterceptor):
    """Records the after_sequence of every WatchTask call."""

    def __init__(self):
        self.after_sequences = []

    def intercept_unary_stream(self, continuation, client_call_details, request):
        if client_call_details.method.endswith("/WatchTask"):
            self.after_sequences.append(request.after_sequence)
        return continuation(client_call_details, request)


def assert_followed_to_the_end(snapshots):
    """Snapshots that only go forward, none repeated, ending with the task's
    end and its value."""
    assert all(not is_terminal(s) for s in snapshots[:-1])
    assert snapshots[-1].state == task_pb2.TASK_STATE_SUCCEEDED
    assert Outcome(snapshots[-1].outcome).value == [0, 1, 2, 3]
    progress = [(s.state, s.progress.leaves_done, s.progress.leaves_running) for s in snapshots]
    assert progress == sorted(progress), "the task only goes forward"
    assert len(set(progress)) == len(progress), "no change is seen twice"
    assert progress[-1][1] == 4


def test_watch_follows_a_task_to_its_end(client, tasks, unique):
    task = tasks.create(STEPS, labels={"test": unique})
    snapshots = list(client.watch_task(task.name.removeprefix("tasks/"), timeout=120))
    assert snapshots[0].state in (task_pb2.TASK_STATE_QUEUED, task_pb2.TASK_STATE_RUNNING)
    assert_followed_to_the_end(snapshots)
    # Watching an ended task gives it once, as it ended.
    assert list(client.watch_task(task.name, timeout=60)) == [snapshots[-1]]


def test_watch_resumes_after_the_connection_drops(server, dropping_proxy, tasks, unique):
    requests = WatchRequests()
    with server.connect(dropping_proxy.address, interceptors=[requests]) as through_proxy:
        task = tasks.create(STEPS, via=through_proxy, labels={"test": unique})
        watch = through_proxy.watch_task(task.name, timeout=120)
        snapshots = [next(watch)]
        dropping_proxy.drop()
        snapshots += watch
    assert dropping_proxy.connections >= 2
    assert_followed_to_the_end(snapshots)
    # Resumed after the last event seen, not from the start.
    assert len(requests.after_sequences) >= 2
    assert requests.after_sequences[0] == 0
    assert all(s > 0 for s in requests.after_sequences[1:])


def test_watch_of_a_missing_task_fails_at_once(client):
    with pytest.raises(WeftError) as caught:
        next(client.watch_task("tasks/" + "0" * 32))
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.NOT_FOUND,
                                                       "TASK_NOT_FOUND")
