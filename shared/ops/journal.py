"""The journal: what happened to an account, newest first, for support engineers and the status page.

One table, partitioned by account id (``_app`` for application-wide events such as the app alarm),
row keys inverted time so that a partition query returns the newest entries first. Entries carry
operation, stage, outcome, HTTP status, Graph's error code (``syncStateNotFound``, ``MailboxConcurrency``)
and request ids, duration, counts and error class: never
secrets or bodies (``detail`` is redacted on the way in). Each entry is also logged.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from shared.clock import Clock, system_clock
from shared.ops.logging import JOURNALED_CONTEXT, current_context
from shared.redaction import redact
from shared.store.ports import JOURNAL, Row, TableOp, TableStore

APP_PARTITION = "_app"
_MAX_MICROS = 10**17  # beyond year 5000; keeps the inverted key a fixed 17 digits
_MAX_DETAIL = 2000

Outcome = Literal["ok", "error", "info"]
log = logging.getLogger("shared.journal")


@dataclass(frozen=True)
class JournalEntry:
    operation: str
    outcome: Outcome
    stage: str | None = None
    calendar: str | None = None
    http_status: int | None = None
    graph_error_code: str | None = None
    graph_request_id: str | None = None
    client_request_id: str | None = None
    duration_ms: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    error_class: str | None = None
    detail: str | None = None
    at: float | None = None  # epoch seconds; set when recorded

    @classmethod
    def failure(cls, operation: str, error: BaseException, **kw: object) -> JournalEntry:
        status, code = getattr(error, "status", None), getattr(error, "code", None)
        return cls(operation=operation, outcome="error", error_class=type(error).__name__,
                   detail=str(error), http_status=status if isinstance(status, int) else None,
                   graph_error_code=code if isinstance(code, str) else None,
                   graph_request_id=getattr(error, "request_id", None),
                   client_request_id=getattr(error, "client_request_id", None), **kw)  # type: ignore[arg-type]


class Journal:
    def __init__(self, store: TableStore, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock

    async def record(self, account: str | None, entry: JournalEntry) -> None:
        now = self._clock()
        micros = int(now * 1_000_000)
        # Inverted time sorts newest first; the random suffix keeps two instances from colliding.
        row_key = f"{_MAX_MICROS - micros:017d}-{secrets.token_hex(4)}"
        data = {k: v for k, v in asdict(entry).items() if v is not None and k not in ("counts", "at")}
        context = current_context()
        data.update({k: context[k] for k in JOURNALED_CONTEXT if k in context})  # who, inside a sync round
        if entry.detail:
            data["detail"] = redact(entry.detail)[:_MAX_DETAIL]
        if entry.counts:
            data["counts"] = json.dumps(dict(entry.counts), sort_keys=True)
        data["at"] = now
        partition = account or APP_PARTITION
        await self._store.insert(JOURNAL, Row(partition, row_key, data))
        level = logging.WARNING if entry.outcome == "error" else logging.INFO
        log.log(level, "journal %s %s %s", partition, entry.operation, entry.outcome,
                extra={"journal": data})

    async def expire(self, retention_days: int) -> int:
        """Delete entries older than ``retention_days``, every partition; returns how many. Keys are
        inverted time, so the old entries are exactly those at or after one key: a range, not a filter."""
        cutoff_micros = int((self._clock() - retention_days * 86_400) * 1_000_000)
        first_old_key = f"{_MAX_MICROS - cutoff_micros:017d}"
        deleted, batch = 0, []
        async for row in self._store.scan(JOURNAL, start=first_old_key):
            batch.append(TableOp.delete(row.partition, row.row))
            if len(batch) == 1000:  # memory stays flat however large the journal
                deleted += await self._store.bulk_write(JOURNAL, batch)
                batch = []
        if batch:
            deleted += await self._store.bulk_write(JOURNAL, batch)
        return deleted

    async def recent(self, account: str | None, limit: int = 50) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        async for row in self._store.query(JOURNAL, account or APP_PARTITION, limit=limit):
            entries.append(_entry(row))
        return entries


def _entry(row: Row) -> JournalEntry:
    data = dict(row.data)
    counts_text = data.pop("counts", None)
    counts = json.loads(counts_text) if isinstance(counts_text, str) else {}
    known = {f for f in JournalEntry.__dataclass_fields__}
    values = {k: v for k, v in data.items() if k in known}
    return JournalEntry(counts=counts, **values)  # type: ignore[arg-type]
