"""In-memory stores for unit tests: the same contract as the Azure versions (tests/contract proves
it), including ETags, limits, ordering by escaped keys and delayed queue visibility."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from shared.clock import Clock
from shared.errors import RowExists, RowNotFound, StorageConflict
from shared.messages import Message
from shared.store.limits import bulk_write_with, escape_key, plan_transaction
from shared.store.ports import Row, TableOp, Value


class InMemoryTableStore:
    def __init__(self) -> None:
        self._tables: dict[str, dict[tuple[str, str], tuple[dict[str, Value], str]]] = {}
        self._etags = itertools.count(1)

    def rows(self, table: str) -> list[Row]:
        """Every row of a table, in no particular order (for tests and leak scans)."""
        return [Row(k[0], k[1], dict(v[0]), v[1]) for k, v in self._table(table).items()]

    def _table(self, name: str) -> dict[tuple[str, str], tuple[dict[str, Value], str]]:
        return self._tables.setdefault(name, {})

    def _new_etag(self) -> str:
        return f'W/"mem-{next(self._etags)}"'

    async def get(self, table: str, partition: str, row: str) -> Row | None:
        stored = self._table(table).get((partition, row))
        return Row(partition, row, dict(stored[0]), stored[1]) if stored else None

    async def query(self, table: str, partition: str, *, prefix: str = "", start: str | None = None,
                    end: str | None = None, limit: int | None = None) -> AsyncIterator[Row]:
        # Azure orders by the escaped key, so this does too.
        keys = sorted((k for k in self._table(table) if k[0] == partition), key=lambda k: escape_key(k[1]))
        count = 0
        for key in keys:
            rk = key[1]
            if not rk.startswith(prefix) or (start is not None and escape_key(rk) < escape_key(start)):
                continue
            if end is not None and escape_key(rk) >= escape_key(end):
                continue
            if limit is not None and count >= limit:
                return
            stored = self._table(table).get(key)
            if stored is not None:
                count += 1
                yield Row(key[0], rk, dict(stored[0]), stored[1])

    async def scan(self, table: str, *, prefix: str = "", start: str | None = None) -> AsyncIterator[Row]:
        keys = sorted(self._table(table), key=lambda k: (escape_key(k[0]), escape_key(k[1])))
        for key in keys:
            stored = self._table(table).get(key)
            if stored is not None and key[1].startswith(prefix) and \
                    (start is None or escape_key(key[1]) >= escape_key(start)):
                yield Row(key[0], key[1], dict(stored[0]), stored[1])

    async def insert(self, table: str, row: Row) -> Row:
        return (await self._apply(table, [TableOp.insert(row)]))[0]

    async def upsert(self, table: str, row: Row) -> Row:
        return (await self._apply(table, [TableOp.upsert(row)]))[0]

    async def merge(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        return (await self._apply(table, [TableOp.merge(row, etag)]))[0]

    async def replace(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        return (await self._apply(table, [TableOp.replace(row, etag)]))[0]

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        await self._apply(table, [TableOp.delete(partition, row, etag)])

    async def transact(self, table: str, ops: Sequence[TableOp]) -> list[str | None]:
        planned = plan_transaction(ops)
        rows = await self._apply(table, planned, atomic=True)
        return [row.etag if op.kind != "delete" else None for op, row in zip(planned, rows, strict=True)]

    async def bulk_write(self, table: str, ops: Iterable[TableOp]) -> int:
        async def submit(chunk: list[TableOp]) -> None:
            await self._apply(table, chunk, atomic=True)

        async def write_one(op: TableOp) -> None:
            await self._apply(table, [op])

        return await bulk_write_with(ops, submit, write_one)

    async def _apply(self, table: str, ops: Sequence[TableOp], *, atomic: bool = False) -> list[Row]:
        """All-or-nothing: check every op against the current state, then write. ``atomic`` applies
        the transaction rule that deleting a missing row fails the whole batch."""
        data = self._table(table)
        staged = dict(data)
        results: list[Row] = []
        for op in ops:
            key = op.key
            current = staged.get(key)
            if op.etag is not None and current is not None and current[1] != op.etag:
                raise StorageConflict(f"row {key[1]!r} changed since it was read (ETag mismatch)")
            if op.kind == "insert" and current is not None:
                raise RowExists(f"row {key[1]!r} already exists")
            if op.kind in ("merge", "replace") and current is None:
                raise RowNotFound(f"row {key[1]!r} does not exist")
            if op.kind == "delete":
                if atomic and current is None:
                    raise RowNotFound(f"row {key[1]!r} does not exist")
                staged.pop(key, None)
                results.append(Row(*key))
                continue
            sent: dict[str, Value] = {k: v for k, v in op.row.data.items() if v is not None}
            stored = {**current[0], **sent} if op.kind == "merge" and current is not None else sent
            etag = self._new_etag()
            staged[key] = (stored, etag)
            # Like the service, a write answers with the new ETag; the caller already has the data it sent.
            results.append(Row(key[0], key[1], dict(sent), etag))
        data.clear()
        data.update(staged)
        return results


@dataclass
class _QueuedMessage:
    body: str
    visible_at: float


class InMemoryWorkQueue:
    """Records what was sent, honouring the initial invisibility on an injectable clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queues: dict[str, list[_QueuedMessage]] = {}

    async def send(self, message: Message, *, delay_seconds: float = 0) -> None:
        self._queues.setdefault(message.queue, []).append(
            _QueuedMessage(message.to_json(), self._clock() + max(0.0, delay_seconds)))

    async def peek(self, queue: str, max_messages: int = 32) -> list[str]:
        now = self._clock()
        return [m.body for m in self._queues.get(queue, []) if m.visible_at <= now][:max_messages]

    def clear(self, queue: str) -> None:
        """Forget what was sent to the queue (for tests)."""
        self._queues.pop(queue, None)

    def take_visible(self, queue: str) -> list[str]:
        """Remove and return the messages visible now, leaving the delayed ones (for tests)."""
        now = self._clock()
        kept = self._queues.get(queue, [])
        self._queues[queue] = [m for m in kept if m.visible_at > now]
        return [m.body for m in kept if m.visible_at <= now]

    def all_bodies(self, queue: str) -> list[str]:
        """Every message sent to the queue, visible or not (for tests)."""
        return [m.body for m in self._queues.get(queue, [])]
