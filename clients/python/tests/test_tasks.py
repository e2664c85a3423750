"""The task methods beyond the newsletter scenario: idempotent creation,
waiting, cancelling, views, paging, deleting."""

import grpc
import pytest

from weft.v1 import task_pb2
from weft_client import Outcome, WeftError, call, is_terminal, parallel

LONG = call("sleep", duration="60s")


def test_the_same_request_id_gives_the_same_task(client, tasks, unique):
    plan = call("value", value=1)
    first = tasks.create(plan, request_id=unique)
    assert tasks.create(plan, request_id=unique).name == first.name
    with pytest.raises(WeftError) as caught:
        client.create_task(call("value", value=2), request_id=unique)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.ALREADY_EXISTS,
                                                       "REQUEST_ID_REUSED")
    assert caught.value.resource == ("weft.v1.Task", first.name)


def test_wait_get_and_node_of_an_ended_task(client, tasks, unique):
    plan = parallel(call("sleep", id="slow", duration="0.3s", value="done"),
                    call("value", id="fast", value=7))
    task = tasks.create(plan, labels={"test": unique})
    ended = client.wait_task(task.name.removeprefix("tasks/"), wait=60)
    assert is_terminal(ended) and ended.state == task_pb2.TASK_STATE_SUCCEEDED
    assert Outcome(ended.outcome).value == {"slow": "done", "fast": 7}
    full = client.get_task(task.name, view="full")
    assert full.plan == plan
    node = client.get_task(task.name, node="fast", detail="root")
    assert (node.outcome.id, Outcome(node.outcome).value) == ("fast", 7)
    client.delete_task(task.name)
    with pytest.raises(WeftError) as caught:
        client.get_task(task.name)
    assert caught.value.reason == "TASK_NOT_FOUND"


def test_a_running_task_is_cancelled_not_deleted(client, tasks, unique):
    task = tasks.create(LONG, labels={"test": unique})
    waited = client.wait_task(task.name, wait=0.2)
    assert not is_terminal(waited)
    with pytest.raises(WeftError) as caught:
        client.delete_task(task.name)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                       "TASK_NOT_FINISHED")
    assert caught.value.resource == ("weft.v1.Task", task.name)
    cancelled = client.cancel_task(task.name)
    ended = client.wait_task(task.name, wait=60) if not is_terminal(cancelled) else cancelled
    assert ended.state == task_pb2.TASK_STATE_CANCELLED
    assert Outcome(ended.outcome).error.reason == "RUN_CANCELLED"
    client.delete_task(task.name)


def test_list_tasks_reads_every_page(client, tasks, unique):
    labels = {"test": unique}
    names = [tasks.create(call("value", value=i), labels=labels).name for i in range(3)]
    listed = [t.name for t in client.list_tasks(labels=labels, page_size=1)]
    assert listed == names[::-1], "newest first, across three pages"
    # Each may still be queued or running: deleted once it has ended.
    for i, name in enumerate(names):
        ended = client.wait_task(name, wait=60)
        assert ended.state == task_pb2.TASK_STATE_SUCCEEDED
        assert Outcome(ended.outcome).value == i
        client.delete_task(name)
    assert list(client.list_tasks(labels=labels, page_size=1)) == []
