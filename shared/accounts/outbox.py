"""What the product owes the SaaS: rows of the ``outbox`` table, one per callback until it is acknowledged
(docs/callbacks.md). Writing the row is the promise; a ``callback`` message asks the worker
(shared/pushes/worker.py) to keep it, and the reconciler's timer queues again any row whose message was lost.
With no ``SAAS_CALLBACK_URL`` the rows are still written (the record of what happened) and nothing is sent.

Keys: ``{account} / {time}-{random}`` for status callbacks (each one is news); ``{account} / changes`` for
the "changes available up to sequence N" ping, upserted with the latest sequence, so at most one is pending
per account and a lost one is replaced by the next.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from shared.context import Services
from shared.messages import Callback
from shared.store.ports import OUTBOX, Row

CHANGES_ROW = "changes"


async def owe(services: Services, account: str, kind: str, payload: dict[str, Any], *, key: str | None = None) -> str:
    now = services.clock()
    row_key = key or f"{int(now * 1_000_000):017d}-{secrets.token_hex(4)}"
    await services.tables.upsert(OUTBOX, Row(account, row_key, {
        "kind": kind, "payload": json.dumps(payload, sort_keys=True), "created_at": now, "attempts": 0,
        "queued_at": now}))
    if services.settings.callbacks_enabled:
        await services.queue.send(Callback(account=account, row=row_key))
    return row_key


async def owe_changes(services: Services, account: str, cursor: int) -> None:
    """"Changes are available up to sequence ``cursor``": the SaaS reads the change feed from its own cursor."""
    if services.settings.callbacks_enabled:
        await owe(services, account, "changes", {"account": account, "cursor": cursor}, key=CHANGES_ROW)
