"""The poison handlers: a message the host gave up on becomes a ``poison`` row, its account is degraded for
``poison:{kind}`` when it is live, and the poisoning is journaled.

Idempotent: the same poison message delivered again (the handler crashed, or the host redelivered it) finds
its row and changes nothing more; a crash between the journal entry and the row's ``journaled`` mark is the
only way to journal one poisoning twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from shared.accounts.status import add_degraded_reason, degraded_reasons, poison_reason
from shared.context import Services
from shared.errors import BadMessage, RowExists
from shared.messages import Message, read_message
from shared.ops.journal import JournalEntry
from shared.poison.rows import (
    HELD,
    MAX_ATTEMPTS,
    MAX_DETAIL_CHARS,
    Attempt,
    account_partition,
    cap_utf16,
    index_key,
)
from shared.redaction import redact
from shared.store.index import index_row, write_indexed
from shared.store.ports import POISON, Row

log = logging.getLogger("shared.poison")

# How far back in an account's journal the failed deliveries are looked for (each delivery journals a few
# entries: the Graph attempts and the queue failure).
JOURNAL_LOOKBACK = 200


@dataclass(frozen=True)
class PoisonedMessage:
    """What the poison queue trigger hands over (func.QueueMessage, without azure.functions)."""

    queue: str                       # the original queue: sync, subscriptions, outbound
    id: str                          # the host's id of the poison copy
    body: bytes
    deliveries: int | None = None    # how often this poison copy was delivered to the handler
    inserted_at: float | None = None  # when the host put it on the poison queue
    expires_at: float | None = None


async def hold(services: Services, poisoned: PoisonedMessage) -> Row:
    """Keep ``poisoned`` in the poison table; returns its row.

    :raises Exception: storage failures, unchanged (the host retries the poison message)."""
    row = await services.tables.get(POISON, poisoned.queue, poisoned.id)
    if row is None:
        row = await _insert(services, await _new_row(services, poisoned))
    if row.get("journaled"):
        log.info("poison message %s of %s already held", poisoned.id, poisoned.queue)
        return row
    degraded = False
    account, reason = row.get("account"), row.get("reason")
    if row.get("state") == HELD and isinstance(account, str) and isinstance(reason, str):
        saved = await add_degraded_reason(services, account, reason)
        degraded = saved is not None and reason in degraded_reasons(saved)
    await services.journal.record(account if isinstance(account, str) else None, JournalEntry(
        "poison", "error", stage=str(row.get("kind") or "unreadable"), error_class=row.get("last_error_class"),
        counts={"dequeue_count": int(row.get("dequeue_count") or 0)},
        detail=f"{poisoned.queue} message {poisoned.id} held in the poison table"
               + (f"; account degraded ({reason})" if degraded else "")))
    marks = {"degraded": degraded, "journaled": True, "updated_at": services.clock()}
    merged = await services.tables.merge(POISON, Row(row.partition, row.row, marks))
    return Row(row.partition, row.row, {**row.data, **marks}, merged.etag)  # a merge answers its own fields


async def _insert(services: Services, row: Row) -> Row:
    try:
        account = row.get("account")
        if isinstance(account, str):
            ix = index_row(account_partition(account), index_key(row.partition, row.row), row,
                           reason=str(row.get("reason")))
            return await write_indexed(services.tables, POISON, row, [ix])
        return await services.tables.insert(POISON, row)
    except RowExists:  # another delivery of the same poison message got there first
        existing = await services.tables.get(POISON, row.partition, row.row)
        if existing is None:
            raise
        return existing


async def _new_row(services: Services, poisoned: PoisonedMessage) -> Row:
    text = poisoned.body.decode("utf-8", "replace")
    safe = redact(text)
    payload = cap_utf16(safe)
    data: dict[str, str | int | float | bool | None] = {
        "state": HELD, "payload": payload, "payload_chars": len(text),
        "payload_truncated": payload != safe, "payload_redacted": safe != text,
        "deliveries": poisoned.deliveries, "poisoned_at": poisoned.inserted_at, "expires_at": poisoned.expires_at,
        "held_at": services.clock(), "updated_at": services.clock(), "journaled": False,
    }
    message: Message | None = None
    try:
        message = read_message(poisoned.body).message
    except BadMessage as exc:
        # Kept all the same: a malformed body is exactly what an operator needs to see. No account is
        # degraded for it (nothing in it is trusted, and replaying cannot fix it).
        data |= {"parse_error": _short(str(exc)), "last_error_class": "BadMessage",
                 "last_error_detail": _short(str(exc))}
    if message is not None:
        attempts = await _attempts(services, message, poisoned.inserted_at)
        data |= {"kind": message.kind, "account": message.account, "reason": poison_reason(message.kind),
                 "enqueued_at": message.enqueued_at,
                 "attempts": json.dumps([asdict(a) for a in attempts], sort_keys=True)}
        if attempts:
            data |= {"last_error_class": attempts[0].error_class, "last_error_detail": attempts[0].detail,
                     "dequeue_count": attempts[0].dequeue_count}
    return Row(poisoned.queue, poisoned.id, {k: v for k, v in data.items() if v is not None})


async def _attempts(services: Services, message: Message, poisoned_at: float | None) -> list[Attempt]:
    """The most recent failed deliveries of this kind the account's journal holds, newest first: entries
    written by shared/dispatch.py (operation = the kind, stage ``queue``), error class and detail only."""
    found: list[Attempt] = []
    for entry in await services.journal.recent(message.account, limit=JOURNAL_LOOKBACK):
        if entry.operation != message.kind or entry.stage != "queue" or entry.outcome != "error":
            continue
        if poisoned_at is not None and entry.at is not None and entry.at > poisoned_at + 60:
            continue  # a later message of the same kind (the clocks of two machines may differ a little)
        found.append(Attempt(entry.at, entry.error_class, _short(entry.detail), entry.http_status,
                             entry.graph_error_code, entry.counts.get("dequeue_count")))
        if len(found) == MAX_ATTEMPTS:
            break
    return found


def _short(text: str | None) -> str | None:
    return redact(text)[:MAX_DETAIL_CHARS] if text else None
