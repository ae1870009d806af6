"""Queue triggers through the runner on Azurite: renewal while running, retries after
visibilityTimeout, the poison queue, dequeue counts, encodings and shutdown.

tests/devstack/apps/host.json sets maxDequeueCount 3, visibilityTimeout 1 s and
maxPollingInterval 200 ms; the 10-minute invisibility is shortened to 2 s through RunnerConfig.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64EncodePolicy, TextBase64EncodePolicy
from azure.storage.queue import QueueMessage as PeekedMessage
from azure.storage.queue.aio import QueueClient

from devstack.azurite import Azurite
from tests.devstack.conftest import app_module, until

pytestmark = pytest.mark.azurite

INVISIBILITY = 2.0
CALLS = app_module("queue_app").CALLS


@pytest.fixture
def queue_name(monkeypatch) -> str:
    name = f"work-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("WORK_QUEUE", name)
    return name


@pytest.fixture
async def client(azurite, queue_name):
    """A client for the test's queue; base64 encoding like the host's default."""
    async with QueueClient.from_connection_string(azurite.connection_string, queue_name,
                                                  message_encode_policy=TextBase64EncodePolicy()) as queue:
        await queue.create_queue()
        yield queue


def calls_for(body: bytes) -> list[dict[str, Any]]:
    return [c for c in CALLS if c["body"] == body]


async def peek(azurite: Azurite, name: str) -> list[PeekedMessage]:
    """Visible messages of a queue (none if it does not exist), without decoding them."""
    async with QueueClient.from_connection_string(azurite.connection_string, name) as queue:
        try:
            return await queue.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []


async def peek_until(azurite: Azurite, name: str, seconds: float) -> list[PeekedMessage]:
    found = await until(lambda: peek(azurite, name), seconds, f"a message in {name}")
    assert isinstance(found, list)
    return found


async def queue_length(azurite, name: str) -> int:
    return len(await peek(azurite, name))


async def test_message_is_delivered_as_the_worker_builds_it(start_runner, client, azurite, queue_name):
    body = json.dumps({"job": uuid.uuid4().hex}).encode()
    await client.send_message(body.decode())
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    await until(lambda: calls_for(body) and calls_for(body)[0]["finished"], 10, "the message")
    call = calls_for(body)[0]
    assert call["type"] == "azure.functions.queue.QueueMessage"  # the concrete class, as the worker builds
    assert call["dequeue_count"] == 1
    assert call["id"]
    assert call["pop_receipt"]
    assert call["insertion_time"] is not None
    assert call["expiration_time"] > call["insertion_time"]
    assert call["next_visible"] > call["insertion_time"]
    # Deleted after success.
    await asyncio.sleep(0.3)
    assert await queue_length(azurite, queue_name) == 0


async def test_long_running_message_is_not_delivered_twice(start_runner, client, azurite, queue_name):
    # Runs 2.5 x the invisibility: without renewal at half-life it would reappear and run again.
    body = json.dumps({"sleep": INVISIBILITY * 2.5, "id": uuid.uuid4().hex}).encode()
    await client.send_message(body.decode())
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    await until(lambda: calls_for(body) and calls_for(body)[0]["finished"], 15, "the long message")
    await asyncio.sleep(INVISIBILITY + 0.5)  # had the message been lost to a second receiver, it ran by now
    assert len(calls_for(body)) == 1
    assert await queue_length(azurite, queue_name) == 0


async def test_failing_message_retries_after_visibility_timeout_then_goes_to_poison(start_runner, client, azurite,
                                                                                     queue_name):
    body = json.dumps({"fail": True, "id": uuid.uuid4().hex}).encode()
    await client.send_message(body.decode())
    # A long invisibility here tells "released after visibilityTimeout" from "left to expire".
    await start_runner("queue_app:app", queue_invisibility=10)
    await until(lambda: len(calls_for(body)) >= 3, 15, "three attempts")
    poisoned = await peek_until(azurite, f"{queue_name}-poison", 10)
    attempts = calls_for(body)
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), gaps     # visibilityTimeout is 1 s
    assert all(gap < 3 for gap in gaps), gaps  # released after the failure, not left to expire
    assert len(poisoned) == 1
    assert base64.b64decode(poisoned[0].content) == body  # the stored text, unchanged
    await asyncio.sleep(1.5)
    assert len(calls_for(body)) == 3
    assert await queue_length(azurite, queue_name) == 0


async def test_batch_size_and_new_batch_threshold_bound_concurrency(start_runner, client):
    # The host fetches batchSize messages, and the next batch once no more than newBatchThreshold
    # are still running: at most batchSize + newBatchThreshold run at once.
    bodies = [json.dumps({"sleep": (0.2, 1.0)[n % 2], "n": n, "id": uuid.uuid4().hex}).encode() for n in range(8)]
    for body in bodies:
        await client.send_message(body.decode())
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY, queue_batch_size=2,
                       queue_new_batch_threshold=1)
    await until(lambda: all(c["finished"] for b in bodies for c in calls_for(b)) and
                all(calls_for(b) for b in bodies), 20, "all messages")
    spans = [(c["at"], c["ended"]) for b in bodies for c in calls_for(b)]
    peak = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert peak == 3, spans


async def test_message_dequeued_too_often_by_dead_runners_goes_to_poison_unrun(start_runner, client, azurite,
                                                                             queue_name):
    body = json.dumps({"id": uuid.uuid4().hex}).encode()
    await client.send_message(body.decode())
    for _ in range(3):  # three receivers that died mid-invocation (maxDequeueCount is 3)
        taken = await client.receive_message(visibility_timeout=30)
        assert taken is not None
        await client.update_message(taken.id, taken.pop_receipt, visibility_timeout=0)  # its invisibility ran out
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    poisoned = await peek_until(azurite, f"{queue_name}-poison", 10)
    assert base64.b64decode(poisoned[0].content) == body
    assert calls_for(body) == []


async def test_plain_text_encoding(start_runner, azurite, queue_name):
    text = f"héllo ✓ {uuid.uuid4().hex}"
    async with QueueClient.from_connection_string(azurite.connection_string, queue_name) as plain:
        await plain.create_queue()
        await plain.send_message(text)
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY, queue_message_encoding="none")
    await until(lambda: calls_for(text.encode()), 10, "the plain message")
    assert calls_for(text.encode())[0]["dequeue_count"] == 1


async def test_base64_binary_body_arrives_intact(start_runner, azurite, queue_name):
    payload = b"\xff\x00\xfe" + uuid.uuid4().bytes   # not UTF-8
    async with QueueClient.from_connection_string(azurite.connection_string, queue_name,
                                                  message_encode_policy=BinaryBase64EncodePolicy()) as queue:
        await queue.create_queue()
        await queue.send_message(payload)
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    await until(lambda: calls_for(payload), 10, "the binary message")


async def test_invalid_base64_goes_to_poison_unrun(start_runner, azurite, queue_name):
    text = f"not base64 {uuid.uuid4().hex}!"
    async with QueueClient.from_connection_string(azurite.connection_string, queue_name) as plain:
        await plain.create_queue()
        await plain.send_message(text)
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    poisoned = await peek_until(azurite, f"{queue_name}-poison", 10)
    assert [m.content for m in poisoned] == [text]
    assert calls_for(text.encode()) == []


async def test_graceful_shutdown_finishes_running_messages(start_runner, client, azurite, queue_name):
    body = json.dumps({"sleep": 1.0, "id": uuid.uuid4().hex}).encode()
    await client.send_message(body.decode())
    runner = await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    await until(lambda: calls_for(body), 10, "the message to start")
    await runner.stop()  # waits for the running invocation, then deletes its message
    assert calls_for(body)[0]["finished"]
    assert await queue_length(azurite, queue_name) == 0


async def test_abandoned_message_reappears_for_the_next_runner(start_runner, client, azurite, queue_name):
    # The invocation outlives the shutdown grace: its message is neither deleted nor released, so it
    # comes back after its invisibility and the next runner processes it. Nothing is lost.
    body = json.dumps({"sleep": 3.0, "id": uuid.uuid4().hex}).encode()
    waiting = [json.dumps({"n": n, "id": uuid.uuid4().hex}).encode() for n in range(3)]
    await client.send_message(body.decode())
    first = await start_runner("queue_app:app", queue_invisibility=INVISIBILITY, shutdown_grace=0.3)
    await until(lambda: calls_for(body), 10, "the long message to start")
    await first.stop()
    assert not calls_for(body)[0]["finished"]
    for item in waiting:  # sent while no runner is up
        await client.send_message(item.decode())
    await start_runner("queue_app:app", queue_invisibility=INVISIBILITY)
    await until(lambda: any(c["finished"] for c in calls_for(body)), 15, "the abandoned message to come back")
    await until(lambda: all(any(c["finished"] for c in calls_for(w)) for w in waiting), 10, "the waiting messages")
    assert [c["dequeue_count"] for c in calls_for(body)] == [1, 2]
    await asyncio.sleep(0.3)
    assert await queue_length(azurite, queue_name) == 0
