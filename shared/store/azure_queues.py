"""WorkQueue on Azure Storage Queues (and Azurite) through the async azure-storage-queue SDK.

Bodies are base64-encoded, as the Functions host's queue trigger expects by default
(host.json ``extensions.queues.messageEncoding``; a unit test keeps the two in step).
"""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from shared.messages import Message

MESSAGE_ENCODING = "base64"
# Queue messages may wait up to a week; the poison handlers copy failures into a table before that.
_TIME_TO_LIVE_SECONDS = 7 * 24 * 3600


class AzureWorkQueue:
    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._created: set[str] = set()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        await self._service.close()

    async def _queue(self, name: str) -> QueueClient:
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._service.get_queue_client(
                name, message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy())
        if name not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._created.add(name)
        return client

    async def send(self, message: Message, *, delay_seconds: float = 0) -> None:
        await self.send_text(message.queue, message.to_json(), delay_seconds=delay_seconds)

    async def send_text(self, queue: str, body: str, *, delay_seconds: float = 0) -> None:
        client = await self._queue(queue)
        delay = max(0, round(delay_seconds))
        try:
            await client.send_message(body, visibility_timeout=delay or None, time_to_live=_TIME_TO_LIVE_SECONDS)
        except ResourceNotFoundError:
            # Deleted behind our back (a test, an operator): create it again, once.
            self._created.discard(queue)
            client = await self._queue(queue)
            await client.send_message(body, visibility_timeout=delay or None, time_to_live=_TIME_TO_LIVE_SECONDS)

    async def peek(self, queue: str, max_messages: int = 32) -> list[str]:
        client = await self._queue(queue)
        messages = await client.peek_messages(max_messages=min(max_messages, 32))
        return [str(m.content) for m in messages]
