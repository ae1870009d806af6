"""The reconciler's due-time index: which accounts the timer should look at now, without reading every
account (docs/architecture.md, "Delta reconciler").

Rows ``due:{YYYY-MM-DDTHH:MM} / {account}`` in the ``mailbox`` table, one partition per five-minute UTC
bucket, in the manner of the subscription renewer's expiry buckets. A row says "look at this account
from this time on"; the lease row (shared/sync/mailbox.py) holds the truth the reconciler checks it
against. A row is only ever moved (the new row upserted first, then the old one deleted), or dropped
for an account that no longer syncs, so a live account always has one; the account's confirm arms the
first one, and a worker that finds a round running arms one at that lease's expiry (a crashed holder
then waits minutes, not a reconcile interval).
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.store.ports import MAILBOX, Row, TableStore

PREFIX = "due:"
BUCKET_SECONDS = 300


def bucket_start(at: float) -> int:
    return int(at // BUCKET_SECONDS) * BUCKET_SECONDS


def due_partition(at: float) -> str:
    return PREFIX + datetime.fromtimestamp(bucket_start(at), tz=UTC).strftime("%Y-%m-%dT%H:%M")


async def arm(tables: TableStore, account: str, at: float) -> Row:
    """Have the reconciler look at ``account`` once ``at`` has come (idempotent: the same bucket is
    the same row)."""
    return await tables.upsert(MAILBOX, Row(due_partition(at), account, {"due_at": at}))
