"""The change feed as the SaaS reads it: ``GET /api/accounts/{account}/changes?cursor=&limit=`` (function key),
and its retention.

The engine writes one ``feed:{seq}`` row per change in the same fenced transaction as the change, the
sequence allocated on the lease row (shared/sync/mailbox.py): gap-free and in commit order, so a reader
that keeps the last sequence it processed (the ``cursor``) and asks again from there misses nothing and
sees each change once; after a redelivery (its own retry) it recognises a change by its ``dedupe`` key.

Retention: rows older than ``FEED_RETENTION_DAYS`` are deleted by the event writer at the end of a round,
at most once a day per mailbox, and the lease row's ``feed_floor`` says the first sequence still kept. A
cursor below it answers 410 ``cursor_expired``: changes were lost to that reader, which resyncs from the
events API and starts again from the ``latest`` sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.accounts.repository import AccountRepository
from shared.api import RequestError, query_whole
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.mailbox import FEED_PREFIX, EventWrite, LeaseHolder, LeaseState, MailboxLease, feed_key
from shared.sync.removals import now_text

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
TRIM_EVERY_SECONDS = 24 * 3600
TRIM_CHUNK = 99  # rows per fenced transaction (with the lease row)


async def read_changes(services: Services, account_id: str, params: Mapping[str, str]) -> HttpResult:
    try:
        cursor = query_whole(params, "cursor", default=0, low=0)
        limit = query_whole(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        if await AccountRepository(services.tables).get(account_id) is None:
            raise RequestError(404, "account_not_found", "no such account", "account")
        lease = await MailboxLease(services, account_id).read()
        latest = lease.feed_next - 1
        if cursor + 1 < lease.feed_floor:
            raise RequestError(410, "cursor_expired", f"changes before sequence {lease.feed_floor} are past "
                               f"FEED_RETENTION_DAYS; resync from the events API, then follow the feed from "
                               f"cursor {latest}", "cursor")
        if cursor > latest:
            raise RequestError(400, "invalid_field", f"cursor {cursor} is past the latest change ({latest})", "cursor")
    except RequestError as exc:
        return exc.result()
    rows = [row async for row in services.tables.query(MAILBOX, account_id, prefix=FEED_PREFIX,
                                                       start=feed_key(cursor + 1), limit=limit + 1)]
    changes = [change_json(row) for row in rows[:limit]]
    return json_result(200, {"changes": changes, "cursor": changes[-1]["seq"] if changes else cursor,
                             "more": len(rows) > limit, "latest": latest})


def change_json(row: Row) -> dict[str, Any]:
    body = {"seq": int(row.row[len(FEED_PREFIX):]), "kind": row.get("kind"), "calendar": row.get("calendar"),
            "event": row.get("event"), "dedupe": row.get("dedupe"), "at": _iso_second(row.get("at"))}
    if row.get("to"):
        body["to"] = row.get("to")  # moved: the calendar it is in now
    return body


async def trim_feed(services: Services, holder: LeaseHolder, taken: LeaseState) -> dict[str, Any]:
    """Delete the feed rows past retention (at most once a day); returns what the lease row records."""
    now = services.clock()
    if taken.feed_trimmed_at is not None and taken.feed_trimmed_at > now - TRIM_EVERY_SECONDS:
        return {}
    cutoff = now_text(now - services.settings.feed_retention_days * 86400)
    floor = taken.feed_floor
    old: list[str] = []
    async for row in services.tables.query(MAILBOX, holder.account, prefix=FEED_PREFIX, start=feed_key(floor)):
        if str(row.get("at") or "") >= cutoff:
            break  # rows are in commit order: the rest are newer
        old.append(row.row)
    for start in range(0, len(old), TRIM_CHUNK):
        chunk = old[start:start + TRIM_CHUNK]
        await holder.commit([EventWrite([TableOp.delete(holder.account, key) for key in chunk])])
    if old:
        floor = int(old[-1][len(FEED_PREFIX):]) + 1
    return {"feed_floor": floor, "feed_trimmed_at": now}


def _iso_second(value: Any) -> str | None:
    """A feed row's time as the API writes times: ISO 8601 UTC to the second."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    return value[:19] + "Z"
