"""POST /api/notifications and POST /api/lifecycle.

A validation request is answered from the query string alone. A batch is verified item by item
(clientState, no storage read), reduced to one message per account and kind, and queued; the answer is
202 within milliseconds. A forged item is dropped and counted but still answered 202, so a probe learns
nothing; a malformed body gets a clear 4xx; a failed enqueue gets 503 so that Graph retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.api import error_result
from shared.config import ClientStateKey, get_settings
from shared.http import HttpResult
from shared.messages import Message, Reauthorize, Subscribe, Sync
from shared.store.fanout import send_all
from shared.store.ports import WorkQueue
from shared.webhook.client_state import ClientState, verify_client_state

log = logging.getLogger("shared.webhook")

MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 1000


@dataclass(frozen=True)
class Receipt:
    """What a batch came to: the messages queued and the items dropped as not genuine."""

    messages: tuple[Message, ...]
    items: int
    forged: int


Planner = Callable[[Sequence[Any], Sequence[ClientStateKey]], Receipt]


def validation_response(query: Mapping[str, str]) -> HttpResult | None:
    """Graph's handshake: echo the (already URL-decoded) validationToken as text/plain, nothing else.
    ``nosniff`` and text/plain keep a token holding markup inert in any browser."""
    token = query.get("validationToken")
    if token is None:
        return None
    return HttpResult(200, token.encode("utf-8"), "text/plain; charset=utf-8",
                      headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def parse_batch(body: bytes, content_type: str) -> list[Any] | HttpResult:
    """The ``value`` items of a notification batch, or the 4xx that answers it."""
    if len(body) > MAX_BODY_BYTES:
        return error_result(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return error_result(415, "unsupported_media_type", "notifications must be application/json")
    try:
        data = json.loads(body)
    except ValueError:
        return error_result(400, "invalid_json", "the body is not valid JSON")
    items = data.get("value") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return error_result(400, "invalid_batch", "the body must be an object with a non-empty 'value' array")
    if len(items) > MAX_ITEMS:
        return error_result(413, "payload_too_large", f"a batch holds at most {MAX_ITEMS} notifications")
    return items


Genuine = list[tuple[dict[str, Any], ClientState]]


def _genuine(items: Sequence[Any], keys: Sequence[ClientStateKey]) -> tuple[Genuine, int]:
    """The items whose clientState is genuine for their tenantId, with its claims; and how many were not."""
    genuine: Genuine = []
    for item in items:
        state = verify_client_state(item.get("clientState"), item.get("tenantId"), keys) \
            if isinstance(item, dict) else None
        if state is not None:
            genuine.append((item, state))
    return genuine, len(items) - len(genuine)


def plan_notifications(items: Sequence[Any], keys: Sequence[ClientStateKey]) -> Receipt:
    """One ``sync`` per account in the batch, whatever the number of its items (pure)."""
    genuine, forged = _genuine(items, keys)
    accounts = dict.fromkeys(state.account for _, state in genuine)
    return Receipt(tuple(Sync(account=a, reason="notification") for a in accounts), len(items), forged)


def plan_lifecycle(items: Sequence[Any], keys: Sequence[ClientStateKey]) -> Receipt:
    """reauthorizationRequired -> reauthorize; subscriptionRemoved -> subscribe + sync; missed -> sync."""
    genuine, forged = _genuine(items, keys)
    messages: dict[Message, None] = {}
    for item, state in genuine:
        event, subscription = item.get("lifecycleEvent"), item.get("subscriptionId")
        if event == "reauthorizationRequired" and isinstance(subscription, str) and subscription:
            messages[Reauthorize(account=state.account, subscription=subscription)] = None
        elif event == "subscriptionRemoved":
            messages[Subscribe(account=state.account)] = None
            messages[Sync(account=state.account, reason="lifecycle")] = None
        elif event == "missed":
            messages[Sync(account=state.account, reason="lifecycle")] = None
        else:
            log.warning("lifecycle event %r ignored", str(event)[:64])
    return Receipt(tuple(messages), len(items), forged)


async def enqueue(receipt: Receipt, queue: WorkQueue, *, sync_delay: float) -> HttpResult:
    """Send the planned messages (a short delay on syncs lets a burst coalesce); 202, or 503 so that
    Graph retries the batch when the queue cannot be written."""
    try:
        await send_all(queue, ((m, sync_delay if isinstance(m, Sync) else 0.0) for m in receipt.messages))
    except Exception as exc:  # any storage failure: Graph must retry, so it must not see a 2xx
        log.error("notification batch not queued (%s); answering 503 so Graph retries", type(exc).__name__)
        return HttpResult(503, b"", headers={"Retry-After": "10"})
    if receipt.forged:
        log.warning("notification batch: %d of %d items dropped (clientState not genuine)",
                    receipt.forged, receipt.items)
    log.info("notification batch: %d items, %d messages queued", receipt.items, len(receipt.messages))
    return HttpResult(202)


async def receive(body: bytes, content_type: str, plan: Planner, queue: Callable[[], WorkQueue]) -> HttpResult:
    """A batch from Graph, start to answer: parse, verify and plan, queue. The queue is asked for only
    once the batch is known to be well formed."""
    items = parse_batch(body, content_type)
    if isinstance(items, HttpResult):
        return items
    settings = get_settings()
    return await enqueue(plan(items, settings.client_state_keys), queue(),
                         sync_delay=settings.coalesce_delay_seconds)
