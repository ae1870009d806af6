"""What an operator does with poison rows: list them, replay one (its payload goes back on its queue) or
discard it. Either ends the row's hold; the account's ``poison:{kind}`` reason clears when no other held row
of that account and reason remains.

Order, so that a crash loses no message: the reason is cleared first (a replayed ``sync`` would otherwise
meet the gate's pause and be dropped), then the message is sent, then the row is marked with its ETag. A
crash before the mark leaves the row held: replaying it again sends a second copy, which every handler
takes as the same message. A row already replayed or discarded is refused (409), never sent twice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from shared.accounts.status import clear_degraded_reason
from shared.api import RequestError, query_whole
from shared.config import QUEUES
from shared.context import Services
from shared.errors import BadMessage, StorageConflict
from shared.ids import is_account_id
from shared.messages import read_message
from shared.ops.journal import JournalEntry
from shared.poison.rows import HELD, STATES, State, account_partition, index_key
from shared.store.index import TARGET_PARTITION, TARGET_ROW
from shared.store.ports import POISON, Row

# Rows read for one page at most, matching or not: a page may come back short, with a token to go on.
MAX_SCAN = 1000


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_token: str | None


def _not_found(queue: str, message_id: str) -> RequestError:
    return RequestError(404, "poison_not_found", f"no poison message {message_id!r} of queue {queue!r}", "id")


async def get_row(services: Services, queue: str, message_id: str) -> Row:
    """:raises RequestError: 404 for an unknown queue or id."""
    row = await services.tables.get(POISON, queue, message_id) if queue in QUEUES else None
    if row is None:
        raise _not_found(queue, message_id)
    return row


async def replay(services: Services, queue: str, message_id: str) -> Row:
    """Send the stored payload back to its queue and mark the row replayed.

    :raises RequestError: 404 unknown; 409 already replayed or discarded, or the payload is not a message
        of this queue (discard it instead)."""
    row = _held(await get_row(services, queue, message_id))
    try:
        message = read_message(str(row.get("payload", ""))).message
    except BadMessage as exc:
        raise RequestError(409, "poison_not_replayable", f"the payload is not a valid message ({exc}); "
                           "discard it instead", "id") from None
    if message.queue != queue:
        raise RequestError(409, "poison_not_replayable", f"a {message.kind} message does not belong on {queue}",
                           "id")
    await _release_reason(services, row)
    # A fresh start: the throttling budget is reset; the first enqueue time is kept for coalescing.
    await services.queue.send(replace(message, throttled=0))
    return await _settle(services, row, "replayed")


async def discard(services: Services, queue: str, message_id: str) -> Row:
    """Mark the row discarded (kept, never sent again).

    :raises RequestError: 404 unknown; 409 already replayed or discarded."""
    row = _held(await get_row(services, queue, message_id))
    await _release_reason(services, row)
    return await _settle(services, row, "discarded")


def _held(row: Row) -> Row:
    state = row.get("state")
    if state != HELD:
        raise RequestError(409, f"poison_already_{state}", f"the poison message was already {state}", "id")
    return row


async def _settle(services: Services, row: Row, state: State) -> Row:
    now = services.clock()
    for _ in range(3):
        try:
            marks = {"state": state, f"{state}_at": now, "updated_at": now}
            merged = await services.tables.merge(POISON, Row(row.partition, row.row, marks), etag=row.etag)
            saved = Row(row.partition, row.row, {**row.data, **marks}, merged.etag)
            break
        except StorageConflict:
            # Settled by another operator meanwhile (409), or merely touched (the handler's marks): again.
            row = _held(await get_row(services, row.partition, row.row))
    else:
        raise StorageConflict(f"poison row {row.partition}/{row.row} kept changing")
    account = row.get("account")
    await services.journal.record(account if isinstance(account, str) else None, JournalEntry(
        "poison", "info", stage=state, detail=f"{row.partition} message {row.row} {state} by an operator"))
    return saved


async def _release_reason(services: Services, row: Row) -> None:
    account, reason = row.get("account"), row.get("reason")
    if not isinstance(account, str) or not isinstance(reason, str):
        return
    async for other in _account_rows(services, account):
        if other.key != row.key and other.get("state") == HELD and other.get("reason") == reason:
            return  # still poisoned for that reason
    await clear_degraded_reason(services, account, reason)


async def _account_rows(services: Services, account: str, *, queue: str | None = None,
                        start: str | None = None) -> AsyncIterator[Row]:
    """An account's rows through its index partition (dangling index rows skipped), in index-key order."""
    prefix = index_key(queue, "") if queue else ""
    async for ix in services.tables.query(POISON, account_partition(account), prefix=prefix, start=start):
        target_pk, target_rk = ix.get(TARGET_PARTITION), ix.get(TARGET_ROW)
        if not isinstance(target_pk, str) or not isinstance(target_rk, str):
            continue
        target = await services.tables.get(POISON, target_pk, target_rk)
        if target is not None and target.get("account") == account:
            yield _keyed(target, ix)


def _keyed(target: Row, ix: Row) -> Row:
    # The target row, remembering the index key it was found under (for the page token).
    return Row(target.partition, target.row, {**target.data, "_index_key": ix.row}, target.etag)


async def list_rows(services: Services, *, queue: str | None = None, account: str | None = None,
                    state: State = HELD, limit: int = 50, token: str | None = None) -> Page:
    """Rows in ``state``, optionally of one queue and one account, ``limit`` at most, from ``token``."""
    partitions = [account_partition(account)] if account is not None else [queue] if queue else list(QUEUES)
    position = _read_token(token, partitions)
    rows: list[Row] = []
    scanned = 0
    for partition in partitions[partitions.index(position[0]) if position else 0:]:
        after = position[1] if position and position[0] == partition else None
        source = (_account_rows(services, account, queue=queue, start=after) if account is not None
                  else services.tables.query(POISON, partition, start=after))
        async for row in source:
            key = str(row.data.get("_index_key", row.row))
            if key == after:
                continue
            scanned += 1
            if row.get("state") == state:
                rows.append(Row(row.partition, row.row, {k: v for k, v in row.data.items() if k != "_index_key"},
                                row.etag))
            if len(rows) == limit or scanned >= MAX_SCAN:
                return Page(rows, _write_token(partition, key))
    return Page(rows, None)


def _write_token(partition: str, key: str) -> str:
    raw = json.dumps({"p": partition, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str | None, partitions: list[str]) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        data = None
    if (not isinstance(data, dict) or data.get("p") not in partitions or not isinstance(data.get("k"), str)):
        raise RequestError(400, "invalid_field", "page_token is not a token this listing gave", "page_token")
    return data["p"], data["k"]


def parse_filters(params: dict[str, str]) -> dict[str, object]:
    """The listing's query parameters, checked one by one.

    :raises RequestError: 400 ``invalid_field`` naming the parameter."""
    queue = params.get("queue") or None
    if queue is not None and queue not in QUEUES:
        raise RequestError(400, "invalid_field", f"queue must be one of {', '.join(QUEUES)}", "queue")
    account = params.get("account") or None
    if account is not None and not is_account_id(account):
        raise RequestError(400, "invalid_field", "account is not an account id", "account")
    state = params.get("state") or HELD
    if state not in STATES:
        raise RequestError(400, "invalid_field", f"state must be one of {', '.join(STATES)}", "state")
    limit = query_whole(params, "limit", default=50, low=1, high=200)
    return {"queue": queue, "account": account, "state": state, "limit": limit,
            "token": params.get("page_token") or None}
