"""The storage interfaces the product codes against, and the value types they speak.

Two ports: ``TableStore`` (Azure Table Storage: rows, ETags, single-partition transactions) and
``WorkQueue`` (Azure Storage Queues: send a versioned message, optionally delayed). Each has an
in-memory version (``memory.py``, for unit tests) and an Azure one (``azure_tables.py``,
``azure_queues.py``); ``tests/contract`` runs one suite against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from shared.messages import Message

# Table names (docs/architecture.md, "Storage").
ACCOUNTS = "accounts"
CALENDARS = "calendars"
SUBSCRIPTIONS = "subscriptions"
MAILBOX = "mailbox"
BOOKINGS = "bookings"
OAUTHFLOWS = "oauthflows"
JOURNAL = "journal"
OUTBOX = "outbox"
POISON = "poison"
TABLES = (ACCOUNTS, CALENDARS, SUBSCRIPTIONS, MAILBOX, BOOKINGS, OAUTHFLOWS, JOURNAL, OUTBOX, POISON)

#: Property values a row may hold. ``None`` means "absent": it is not stored.
Value = str | int | float | bool | datetime | bytes | None


@dataclass(frozen=True)
class Row:
    """One table entity. Keys are the product's own (any text); the Azure adapter escapes the
    characters Table Storage forbids. ``etag`` is set on rows read from or written to a store."""

    partition: str
    row: str
    data: Mapping[str, Value] = field(default_factory=dict)
    etag: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.partition, self.row)

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def with_data(self, **changes: Value) -> Row:
        return Row(self.partition, self.row, {**self.data, **changes}, self.etag)


OpKind = Literal["insert", "upsert", "merge", "replace", "delete"]


@dataclass(frozen=True)
class TableOp:
    """One write inside a transaction or bulk write.

    - ``insert``: create; fails if the row exists.
    - ``upsert``: create or replace the whole row.
    - ``merge`` / ``replace``: the row must exist; with ``etag`` only if it is unchanged (If-Match).
    - ``delete``: with ``etag`` only if unchanged. Alone, deleting a missing row is fine; inside
      an atomic transaction it fails the transaction (the service's rule).
    """

    kind: OpKind
    row: Row
    etag: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.row.key

    @classmethod
    def insert(cls, row: Row) -> TableOp:
        return cls("insert", row)

    @classmethod
    def upsert(cls, row: Row) -> TableOp:
        return cls("upsert", row)

    @classmethod
    def merge(cls, row: Row, etag: str | None = None) -> TableOp:
        return cls("merge", row, etag)

    @classmethod
    def replace(cls, row: Row, etag: str | None = None) -> TableOp:
        return cls("replace", row, etag)

    @classmethod
    def delete(cls, partition: str, row: str, etag: str | None = None) -> TableOp:
        return cls("delete", Row(partition, row), etag)


class TableStore(Protocol):
    """Rows in named tables. Writes with an ETag are optimistic: a stale ETag raises
    ``StorageConflict`` and writes nothing. Tables are created on first use."""

    async def get(self, table: str, partition: str, row: str) -> Row | None:
        """The row, or None when absent."""
        ...

    def query(self, table: str, partition: str, *, prefix: str = "", start: str | None = None,
              end: str | None = None, limit: int | None = None) -> AsyncIterator[Row]:
        """Rows of one partition in row-key order, optionally those starting with ``prefix`` and
        within [start, end). Streams page by page: memory stays flat whatever the partition size."""
        ...

    def scan(self, table: str, *, prefix: str = "", start: str | None = None) -> AsyncIterator[Row]:
        """Rows of every partition whose row key starts with ``prefix`` (and is at least ``start``).
        A table scan: for sweeps run by timers, never on a request path."""
        ...

    async def insert(self, table: str, row: Row) -> Row:
        """Create the row; :raises StorageConflict: when it exists."""
        ...

    async def upsert(self, table: str, row: Row) -> Row:
        """Create or replace the whole row, unconditionally."""
        ...

    async def merge(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        """Merge properties into an existing row (If-Match ``etag`` when given).

        :raises StorageConflict: stale ETag. :raises RowNotFound: no such row."""
        ...

    async def replace(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        """Replace an existing row (If-Match ``etag`` when given); raises as ``merge``."""
        ...

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        """Delete (If-Match ``etag`` when given). A missing row is fine: it is gone either way.

        :raises StorageConflict: the row exists with another ETag."""
        ...

    async def transact(self, table: str, ops: Sequence[TableOp]) -> list[str | None]:
        """Apply ops atomically: all or none. One partition, at most 100 distinct rows and 4 MiB.
        Repeated writes of one row collapse to the last (unless one carries an ETag, which is
        ambiguous and refused). Returns the new ETag per surviving op (None for deletes).

        :raises TransactionTooLarge: over the limits or mixed partitions; nothing is sent.
        :raises StorageConflict: a condition failed; nothing was written."""
        ...

    async def bulk_write(self, table: str, ops: Iterable[TableOp]) -> int:
        """Write many rows as efficiently as possible, NOT atomically: dedupe (last wins), group by
        partition, send transactions of at most 100 rows and 4 MiB. Returns the rows written."""
        ...


class WorkQueue(Protocol):
    """The three work queues. Messages are encoded as the Functions host expects (base64)."""

    async def send(self, message: Message, *, delay_seconds: float = 0) -> None:
        """Enqueue on ``message.queue``, invisible for ``delay_seconds`` first."""
        ...

    async def peek(self, queue: str, max_messages: int = 32) -> list[str]:
        """The decoded bodies of visible messages, without taking them (tests, status, CLI)."""
        ...
