"""The ``mailbox`` partition of one account: the lease, the cursors, the events, their time-bucket rows
and the change feed, all written through ``LeaseHolder.commit``.

Every transaction carries an If-Match merge of the lease row. That one row is at once:

- the fencing check: a worker whose lease expired and was taken cannot write a single event, cursor or
  feed row (its ETag is stale, the whole transaction fails; the row names another holder: ``LeaseLost``).
  A stale ETag alone is not a lost lease: others set ``dirty`` on the row without taking the lease, and
  the holder then writes the same chunk again with the row's new ETag;
- the heartbeat: each commit pushes ``running_until`` forward;
- the allocator of feed sequence numbers: ``feed_next`` moves in the same transaction as the feed rows
  it numbers, so the feed is gap-free and in commit order.

Writes are grouped per event (an event's row, bucket rows and feed row are never split across
transactions) and the groups are chunked by count and bytes, with the lease row in each chunk; a group
that cannot fit is refused by the store (``TransactionTooLarge``), never split.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.context import Services
from shared.errors import RowExists, StorageConflict, SyncError
from shared.store.limits import MAX_BATCH_BYTES, MAX_BATCH_OPS, op_payload_size
from shared.store.ports import MAILBOX, Row, TableOp, Value
from shared.sync.due import arm

LEASE = "lease"
CURSOR_PREFIX = "cursor:"
EVENT_PREFIX = "ev:"
FEED_PREFIX = "feed:"
STAGED_REMOVAL_PREFIX = "removed:"
# A write of the lease row meeting a concurrent ``dirty`` flag tries again with the row's new ETag (a round
# sees at most one flip: the flag stays set until the next round takes the lease).
ETAG_ATTEMPTS = 5


def cursor_key(calendar: str) -> str:
    return f"{CURSOR_PREFIX}{calendar}"


def event_key(calendar: str, event_id: str) -> str:
    return f"{EVENT_PREFIX}{calendar}:{event_id}"


def feed_key(sequence: int) -> str:
    return f"{FEED_PREFIX}{sequence:016d}"


def staged_removal_key(calendar: str, event_id: str) -> str:
    return f"{STAGED_REMOVAL_PREFIX}{calendar}:{event_id}"


class LeaseLost(SyncError):
    """Another worker holds the mailbox's lease now (ours expired): nothing of this commit was written."""

    retryable = True


@dataclass(frozen=True)
class LeaseState:
    """The lease row as read, whoever holds it."""

    held_by: str | None
    running_until: float
    dirty: bool
    feed_next: int
    last_round_started: float | None
    last_round_completed: float | None
    last_good_sync: float | None
    rounds: int
    etag: str | None
    round_reason: str = ""            # what started the round a ``continue`` goes on with
    round_found: int = 0              # changes the round's earlier slices found
    last_notification_round: float | None = None
    drift_changes: int = 0            # changes timer rounds found that no notification announced
    drift_rounds: int = 0
    feed_floor: int = 1               # the first feed sequence still kept (shared/sync/feed.py)
    feed_trimmed_at: float | None = None
    feed_pinged: int = 0              # the last sequence a "changes" callback was owed for

    @classmethod
    def from_row(cls, row: Row | None) -> LeaseState:
        data: dict[str, Any] = dict(row.data) if row else {}
        return cls(held_by=data.get("lease_id") or None, running_until=float(data.get("running_until", 0.0)),
                   dirty=bool(data.get("dirty", False)), feed_next=int(data.get("feed_next", 1)),
                   last_round_started=data.get("last_round_started"),
                   last_round_completed=data.get("last_round_completed"),
                   last_good_sync=data.get("last_good_sync"), rounds=int(data.get("rounds", 0)),
                   etag=row.etag if row else None, round_reason=str(data.get("round_reason") or ""),
                   round_found=int(data.get("round_found", 0)),
                   last_notification_round=data.get("last_notification_round"),
                   drift_changes=int(data.get("drift_changes", 0)), drift_rounds=int(data.get("drift_rounds", 0)),
                   feed_floor=int(data.get("feed_floor", 1)), feed_trimmed_at=data.get("feed_trimmed_at"),
                   feed_pinged=int(data.get("feed_pinged", 0)))

    def held_at(self, now: float) -> bool:
        return self.held_by is not None and self.running_until > now


@dataclass
class EventWrite:
    """The rows of one applied change: never split across transactions. ``feed`` is the feed row's data
    (its key is allocated at commit)."""

    ops: list[TableOp]
    feed: dict[str, Any] | None = None


@dataclass
class LeaseHolder:
    """A held lease: the only way to write the partition."""

    services: Services
    account: str
    lease_id: str
    etag: str
    feed_next: int
    rounds: int                  # completed rounds, as the lease row said when it was taken
    taken: LeaseState | None = None  # the lease row as it was when taken
    commits: int = field(default=0)

    async def commit(self, writes: Sequence[EventWrite], tail: Sequence[TableOp] = ()) -> None:
        """Write ``writes`` (and ``tail``, e.g. the cursor, in the last chunk), each chunk fenced by the
        lease (its merge goes first, so a lost lease is what a chunk reports before anything else).

        :raises LeaseLost: the lease was taken; nothing of the failing chunk was written.
        :raises RowExists: an insert of the chunk met an existing row; nothing of that chunk was written."""
        for chunk, last in _chunks(writes, tail):
            ops: list[TableOp] = []
            feed_next = self.feed_next
            for write in chunk:
                ops.extend(write.ops)
                if write.feed is not None:
                    ops.append(TableOp.insert(Row(self.account, feed_key(feed_next), write.feed)))
                    feed_next += 1
            if last:
                ops.extend(tail)
            for _ in range(ETAG_ATTEMPTS):
                lease = TableOp.merge(Row(self.account, LEASE, {"running_until": self._until(),
                                                                "feed_next": feed_next}), etag=self.etag)
                try:
                    etags = await self.services.tables.transact(MAILBOX, [lease, *ops])
                    break
                except RowExists:
                    raise  # an insert met its row; the lease held (its check comes first)
                except StorageConflict:
                    await self._still_ours()  # only ``dirty`` changed: the same chunk again
            else:
                raise LeaseLost(f"the sync lease row of {self.account} keeps changing under its holder")
            self.etag = etags[0] or self.etag
            self.feed_next = feed_next
            self.commits += 1

    async def release(self, **data: Any) -> None:
        """Give the lease up, recording ``data`` on the lease row (round bookkeeping). A lease already
        lost is fine: someone else holds it now."""
        row = Row(self.account, LEASE, {"lease_id": "", "running_until": 0.0, **data})
        for _ in range(ETAG_ATTEMPTS):
            try:
                await self.services.tables.merge(MAILBOX, row, etag=self.etag)
                return
            except StorageConflict:
                try:
                    await self._still_ours()
                except LeaseLost:
                    return

    async def _still_ours(self) -> None:
        """After an ETag mismatch: take the row's new ETag if the lease is still ours. Other workers
        change the lease row without taking the lease (``MailboxLease.flag_dirty``), and that must not
        cost the holder its round.

        :raises LeaseLost: another worker took the lease."""
        row = await self.services.tables.get(MAILBOX, self.account, LEASE)
        if row is None or row.get("lease_id") != self.lease_id or row.etag is None:
            raise LeaseLost(f"the sync lease of {self.account} was taken by another worker")
        self.etag = row.etag

    def _until(self) -> float:
        return self.services.clock() + self.services.settings.lease_seconds


class MailboxLease:
    """Taking the lease, and the ``dirty`` flag of those who found it held."""

    def __init__(self, services: Services, account: str) -> None:
        self._services = services
        self._account = account

    async def read(self) -> LeaseState:
        return LeaseState.from_row(await self._services.tables.get(MAILBOX, self._account, LEASE))

    async def acquire(self) -> LeaseHolder | None:
        """The lease, or None when another worker holds it. Taking it clears ``dirty``: this round will
        see every change made before it starts."""
        tables = self._services.tables
        for _ in range(3):
            row = await tables.get(MAILBOX, self._account, LEASE)
            state = LeaseState.from_row(row)
            now = self._services.clock()
            if state.held_at(now):
                return None
            lease_id = secrets.token_hex(8)
            until = now + self._services.settings.lease_seconds
            data: dict[str, Value] = {"lease_id": lease_id, "running_until": until, "dirty": False,
                                      "feed_next": state.feed_next}
            try:
                if row is None:
                    written = await tables.insert(MAILBOX, Row(self._account, LEASE, data))
                else:
                    written = await tables.merge(MAILBOX, Row(self._account, LEASE, data), etag=row.etag)
            except StorageConflict:
                continue  # someone else moved first: look again
            assert written.etag is not None
            return LeaseHolder(self._services, self._account, lease_id, written.etag, state.feed_next, state.rounds,
                               taken=state)
        return None

    async def flag_dirty(self, **data: Value) -> bool:
        """Set ``dirty`` (and record ``data`` with it); True only for the caller that flipped it from false
        (it sends the one wake-up). The flipper also arms the reconciler at the running lease's expiry,
        so a wake-up that is lost, or a holder that dies, costs minutes rather than a reconcile interval."""
        tables = self._services.tables
        for _ in range(3):
            row = await tables.get(MAILBOX, self._account, LEASE)
            if row is not None and row.get("dirty"):
                return False
            until = float(row.get("running_until", 0.0)) if row is not None else 0.0
            await arm(tables, self._account, max(until, self._services.clock()))
            try:
                if row is None:
                    await tables.insert(MAILBOX, Row(self._account, LEASE, {"dirty": True, "feed_next": 1, **data}))
                else:
                    await tables.merge(MAILBOX, Row(self._account, LEASE, {"dirty": True, **data}), etag=row.etag)
            except StorageConflict:
                continue
            return True
        return False

    async def clear_dirty(self) -> None:
        """Undo a flip whose wake-up could not be sent (best effort: the reconciler catches the rest)."""
        await self._services.tables.merge(MAILBOX, Row(self._account, LEASE, {"dirty": False}))


def _chunks(writes: Sequence[EventWrite], tail: Sequence[TableOp]) -> list[tuple[list[EventWrite], bool]]:
    """Groups packed into transactions with room for the lease row (and the tail in the last one)."""
    room_ops, room_bytes = MAX_BATCH_OPS - 1, MAX_BATCH_BYTES - 4096  # the lease row's share
    tail_ops, tail_bytes = len(tail), sum(op_payload_size(op) for op in tail)
    chunks: list[list[EventWrite]] = []
    current: list[EventWrite] = []
    count = size = 0
    for write in writes:
        n = len(write.ops) + (1 if write.feed is not None else 0)
        b = sum(op_payload_size(op) for op in write.ops) + (2048 if write.feed is not None else 0)
        if current and (count + n > room_ops or size + b > room_bytes):
            chunks.append(current)
            current, count, size = [], 0, 0
        current.append(write)
        count += n
        size += b
    if current and (count + tail_ops > room_ops or size + tail_bytes > room_bytes):
        chunks.append(current)
        current = []
    chunks.append(current)
    return [(chunk, i == len(chunks) - 1) for i, chunk in enumerate(chunks)]
