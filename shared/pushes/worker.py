"""The ``callbacks`` queue's handler: deliver one outbox row to ``SAAS_CALLBACK_URL``, signed, until the SaaS
acknowledges it (docs/callbacks.md).

A POST of ``{"id": <row key>, "type": <kind>, ...payload}`` with ``X-Signature: t=<unix time>,v1=<hex of
HMAC-SHA256(key, "<t>." + body)>``, the key being ``SAAS_CALLBACK_SECRET`` (base64). Any 2xx acknowledges:
the row is deleted. Anything else (another status, a timeout, a refused connection) is not a failure of the
message: the row records the attempt and the message is sent again after ``CALLBACK_RETRY_BASE_SECONDS``,
doubling up to ``CALLBACK_RETRY_MAX_SECONDS``, for as long as it takes. A message whose row is gone was
acknowledged already (a duplicate): nothing is sent. Delivery is at least once; the SaaS recognises a
repeat by ``id``. The journal records each attempt's status, never the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from shared.context import Services
from shared.messages import Callback, Message
from shared.ops.journal import JournalEntry
from shared.store.ports import OUTBOX, Row

TIMEOUT_SECONDS = 10.0
# A row whose message should have come back this long ago is queued again by the reconciler.
REQUEUE_GRACE_SECONDS = 600
SIGNATURE_HEADER = "X-Signature"

# (url, body, headers) -> HTTP status; raises httpx.HTTPError when there is no answer.
Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def callback_body(row: Row) -> bytes:
    payload = json.loads(str(row.get("payload") or "{}"))
    return json.dumps({"id": row.row, "type": row.get("kind"), **payload}, sort_keys=True,
                      separators=(",", ":")).encode()


async def httpx_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
        return (await client.post(url, content=body, headers=headers)).status_code


@dataclass
class CallbackWorker:
    services: Services
    post: Post = httpx_post

    async def handle(self, message: Message) -> None:
        assert isinstance(message, Callback)
        settings = self.services.settings
        row = await self.services.tables.get(OUTBOX, message.account, message.row)
        if row is None:
            return  # acknowledged already: this message is a repeat
        if settings.saas_callback_url is None or settings.saas_callback_secret is None:
            return  # callbacks were turned off: the row stays, the record of what happened
        body = callback_body(row)
        timestamp = int(self.services.clock())
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(
            settings.saas_callback_secret, timestamp, body)}
        status: int | None = None
        error: str | None = None
        try:
            status = await self.post(settings.saas_callback_url, body, headers)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        attempts = int(row.get("attempts", 0)) + 1
        if status is not None and 200 <= status < 300:
            await self.services.tables.delete(OUTBOX, row.partition, row.row)
            await self.services.journal.record(message.account, JournalEntry(
                "callback", "ok", stage=str(row.get("kind")), http_status=status, counts={"attempts": attempts}))
            return
        delay = min(settings.callback_retry_max_seconds, settings.callback_retry_base_seconds * 2 ** (attempts - 1))
        now = self.services.clock()
        await self.services.tables.merge(OUTBOX, Row(row.partition, row.row, {
            "attempts": attempts, "last_status": status, "last_error": error, "queued_at": now,
            "next_attempt_at": now + delay}))
        await self.services.journal.record(message.account, JournalEntry(
            "callback", "error", stage=str(row.get("kind")), http_status=status, error_class=error,
            counts={"attempts": attempts}, detail=f"not acknowledged; sent again in {delay} s"))
        await self.services.queue.send(Callback(account=message.account, row=message.row), delay_seconds=delay)


async def requeue_unacknowledged(services: Services) -> int:
    """The reconciler's share: queue again every row whose message is overdue (lost, or its worker died), so
    nothing recorded is never sent. A scan of the outbox, which holds only what is still owed."""
    if not services.settings.callbacks_enabled:
        return 0
    now = services.clock()
    requeued = 0
    async for row in services.tables.scan(OUTBOX):
        due = float(row.get("next_attempt_at") or row.get("queued_at") or 0.0)
        if due + REQUEUE_GRACE_SECONDS > now:
            continue
        await services.tables.merge(OUTBOX, Row(row.partition, row.row, {"queued_at": now}))
        await services.queue.send(Callback(account=row.partition, row=row.row))
        requeued += 1
    return requeued
