"""Queue triggers on Azurite, following the host's Storage queue listener.

From the WebJobs SDK (Azure/azure-webjobs-sdk, Queues/Listeners/QueueListener.cs and
Queues/QueueProcessor.cs):
- Receive up to ``batchSize`` messages with a 10-minute invisibility; while a function runs, renew
  that invisibility when it is half gone (UpdateQueueMessageVisibilityCommand).
- Fetch the next batch as soon as no more than ``newBatchThreshold`` messages are still running.
- An empty poll backs off exponentially (randomized) from 100 ms up to ``maxPollingInterval``.
- Success deletes the message. A failure with ``dequeueCount >= maxDequeueCount`` copies the
  message, unchanged, to ``<queue>-poison`` (created if missing) and deletes it; an earlier failure
  makes it visible again after ``visibilityTimeout``.
- A message already dequeued more than ``maxDequeueCount`` times (its runner died mid-invocation)
  goes to the poison queue without being run, as the v5 storage extension does.
- Stopping stops polling and waits for running invocations; a message whose invocation did not end
  is neither deleted nor released, so it reappears once its invisibility runs out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import QueueMessage as StorageMessage
from azure.storage.queue.aio import QueueClient

from devstack.runner.aio import sleep_unless
from devstack.runner.index import FunctionSpec
from devstack.runner.invoke import invoke
from devstack.runner.settings import QueueOptions

log = logging.getLogger("devstack.runner")

MIN_POLLING_INTERVAL = 0.1  # QueuePollingIntervals.Minimum in the WebJobs SDK


class Backoff:
    """RandomizedExponentialBackoffStrategy: 100 ms after a found message, doubling while idle."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.current = 0.0

    def next_delay(self, found_message: bool) -> float:
        if found_message or self.current == 0.0:
            self.current = self.minimum
        else:
            self.current = min(self.maximum, self.current * 2 * random.uniform(0.8, 1.2))
        return self.current


def decode_body(content: str, encoding: str) -> Datum:
    """The message text as the worker receives it: base64-decoded unless encoding is ``none``."""
    if encoding == "base64":
        raw = base64.b64decode(content, validate=True)
        try:
            return Datum(raw.decode("utf-8"), "string")
        except UnicodeDecodeError:
            return Datum(raw, "bytes")
    return Datum(content, "string")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def to_func_message(message: StorageMessage, body: Datum):
    """Build the trigger argument exactly as the Python worker does (azure-functions' QueueMessageInConverter)."""
    metadata = {
        "Id": Datum(message.id, "string"),
        "DequeueCount": Datum(message.dequeue_count, "int"),
        "PopReceipt": Datum(message.pop_receipt, "string"),
        "InsertionTime": Datum(_iso(message.inserted_on), "string"),
        "ExpirationTime": Datum(_iso(message.expires_on), "string"),
        "NextVisibleTime": Datum(_iso(message.next_visible_on), "string"),
    }
    return QueueMessageInConverter.decode(body, trigger_metadata=metadata)


@dataclass
class _Lease:
    """The latest pop receipt of a running message; renewals and completion take turns on it."""

    pop_receipt: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: bool = False


class QueueListener:
    def __init__(self, spec: FunctionSpec, queue_name: str, connection_string: str, options: QueueOptions,
                 time_limit: float | None = None) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.options = options
        self.time_limit = time_limit
        self.queue = QueueClient.from_connection_string(connection_string, queue_name)
        self.poison = QueueClient.from_connection_string(connection_string, f"{queue_name}-poison")
        self.running: set[asyncio.Task[None]] = set()
        # Storage takes whole seconds; 0 would make a running message visible at once.
        self._invisibility = max(1, round(options.invisibility))

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set. Running invocations are left to ``drain``."""
        with contextlib.suppress(AzureError):  # if storage is not up yet, _receive retries
            await _create_if_missing(self.queue)
        backoff = Backoff(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
        found = False  # a message came since the last idle delay
        stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                batch = await self._receive()
                if not batch:
                    await sleep_unless(stopping, backoff.next_delay(found))
                    found = False
                    continue
                found = True
                for message in batch:
                    task = asyncio.create_task(self._process(message), name=f"{self.spec.name}:{message.id}")
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
                while len(self.running) > self.options.new_batch_threshold and not stopping.is_set():
                    waiting: list[asyncio.Future[Any]] = [*self.running, stop_waiter]
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_waiter.cancel()

    async def drain(self, grace: float) -> None:
        """Wait for running invocations; after ``grace`` seconds abandon them (their messages reappear)."""
        if self.running:
            _, pending = await asyncio.wait(list(self.running), timeout=grace)
            for task in pending:
                log.warning("shutdown: abandoning %s; its message reappears after its invisibility", task.get_name())
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.queue.close()
        await self.poison.close()

    async def _receive(self) -> list[StorageMessage]:
        try:
            pages = self.queue.receive_messages(messages_per_page=self.options.batch_size,
                                                visibility_timeout=self._invisibility).by_page()
            async for page in pages:
                return [message async for message in page]
        except ResourceNotFoundError:
            with contextlib.suppress(AzureError):
                await _create_if_missing(self.queue)
        except AzureError as exc:
            log.warning("queue %s: receive failed: %s", self.queue_name, exc)
        return []

    async def _process(self, message: StorageMessage) -> None:
        try:
            await self._handle(message)
        except AzureError as exc:  # the message reappears after its invisibility and is retried
            log.error("queue %s: could not complete message %s: %s", self.queue_name, message.id, exc)

    async def _handle(self, message: StorageMessage) -> None:
        # A received message always has both.
        assert message.pop_receipt is not None
        assert message.dequeue_count is not None
        if message.dequeue_count > self.options.max_dequeue_count:
            await self._to_poison(message, message.pop_receipt)
            return
        try:
            body = decode_body(message.content, self.options.message_encoding)
        except (binascii.Error, ValueError):
            log.error("queue %s: message %s is not valid base64; moving it to %s-poison", self.queue_name,
                      message.id, self.queue_name)
            await self._to_poison(message, message.pop_receipt)
            return
        lease = _Lease(message.pop_receipt)
        keeper = asyncio.create_task(self._keep_invisible(message.id, lease))
        try:
            try:
                await invoke(self.spec, to_func_message(message, body), time_limit=self.time_limit,
                             reason=f"New queue message detected on '{self.queue_name}'.")
                succeeded = True
            except Exception:
                succeeded = False
            async with lease.lock:  # a renewal in flight finishes first, so the pop receipt is current
                lease.done = True
        finally:
            keeper.cancel()
        if succeeded:
            await self._delete(message.id, lease.pop_receipt)
        elif message.dequeue_count >= self.options.max_dequeue_count:
            await self._to_poison(message, lease.pop_receipt)
        else:
            with contextlib.suppress(AzureError):  # someone else took it over, or it is gone
                await self.queue.update_message(message.id, lease.pop_receipt,
                                                visibility_timeout=round(self.options.visibility_timeout))

    async def _keep_invisible(self, message_id: str, lease: _Lease) -> None:
        interval = self._invisibility / 2
        while True:
            await asyncio.sleep(interval)
            async with lease.lock:
                if lease.done:
                    return
                try:
                    updated = await self.queue.update_message(message_id, lease.pop_receipt,
                                                              visibility_timeout=self._invisibility)
                except AzureError as exc:
                    log.warning("queue %s: could not renew message %s: %s", self.queue_name, message_id, exc)
                    continue
                lease.pop_receipt = updated.pop_receipt or lease.pop_receipt

    async def _to_poison(self, message: StorageMessage, pop_receipt: str) -> None:
        log.warning("Message has reached MaxDequeueCount of %d. Moving message to queue '%s-poison'.",
                    self.options.max_dequeue_count, self.queue_name)
        await _create_if_missing(self.poison)
        await self.poison.send_message(message.content)  # the stored text, encoded as it came
        await self._delete(message.id, pop_receipt)

    async def _delete(self, message_id: str, pop_receipt: str) -> None:
        try:
            await self.queue.delete_message(message_id, pop_receipt)
        except AzureError as exc:  # PopReceiptMismatch: another receiver owns it now
            log.warning("queue %s: could not delete message %s: %s", self.queue_name, message_id, exc)


async def _create_if_missing(queue: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await queue.create_queue()

