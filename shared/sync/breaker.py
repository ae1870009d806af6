"""An operator's decision on deletes the mass-deletion breaker holds: ``POST /api/accounts/{account}/breaker``
with ``{"action": "confirm"}`` (apply them) or ``{"action": "reject"}`` (keep the events).

Either way the calendar's delta link moves to where the held round reached, so the same removals are not
raised again, and the ``breaker`` reason clears once no calendar holds deletes. The decision takes the
mailbox's lease like a round (so it never interleaves with one) and asks Graph nothing: what each held
removal is was settled when the round held it. A reject keeps events Graph may really have deleted; the next
full round (a window move, a dead delta token) sweeps them again, behind the breaker again.
"""

from __future__ import annotations

from typing import Any

from shared.accounts.repository import AccountRepository
from shared.api import RequestError, json_object
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.ops.journal import JournalEntry
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.mailbox import CURSOR_PREFIX, EventWrite, LeaseHolder, MailboxLease, event_key, staged_removal_key
from shared.sync.removals import DELETED, clear_breaker_if_none_held, removal_write

ACTIONS = ("confirm", "reject")
CHUNK = 100


async def breaker_route(services: Services, account_id: str, body: bytes) -> HttpResult:
    try:
        data = json_object(body)
        action = data.get("action")
        if action not in ACTIONS:
            raise RequestError(400, "invalid_field", "action must be confirm or reject", "action")
        if await AccountRepository(services.tables).get(account_id) is None:
            raise RequestError(404, "account_not_found", f"no account {account_id}")
        applied, calendars = await decide_held(services, account_id, str(action))
    except RequestError as exc:
        return exc.result()
    return json_result(200, {"account": account_id, "action": action, "calendars": calendars, "removals": applied})


async def decide_held(services: Services, account: str, action: str) -> tuple[int, int]:
    """Apply (confirm) or drop (reject) every held removal of the account; (removals, calendars).

    :raises RequestError: nothing is held (409 ``nothing_held``), or a round holds the lease now or is
        between two of its slices (409 ``round_in_progress``: try again in a minute)."""
    cursors = [row async for row in services.tables.query(MAILBOX, account, prefix=CURSOR_PREFIX) if row.get("held")]
    if not cursors:
        raise RequestError(409, "nothing_held", "the breaker holds no deletes for this account")
    if any(row.get("next_link") or row.get("phase") for row in cursors):
        raise RequestError(409, "round_in_progress", "a round is under way; decide when it has finished")
    holder = await MailboxLease(services, account).acquire()
    if holder is None:
        raise RequestError(409, "round_in_progress", "a round holds the mailbox now; try again in a minute")
    total = 0
    try:
        for row in cursors:
            total += await _decide_calendar(services, holder, row, action)
    finally:
        await holder.release()
    await services.journal.record(account, JournalEntry(
        "breaker", "ok", stage=action, counts={"removals": total, "calendars": len(cursors)},
        detail=f"an operator chose to {action} the held deletes"))
    await clear_breaker_if_none_held(services, account)
    return total, len(cursors)


async def _decide_calendar(services: Services, holder: LeaseHolder, cursor_row: Row, action: str) -> int:
    account = holder.account
    calendar = cursor_row.row[len(CURSOR_PREFIX):]
    prefix = staged_removal_key(calendar, "")
    count = 0
    after = ""
    while True:
        page = [r async for r in services.tables.query(MAILBOX, account, prefix=prefix, start=after or None,
                                                        limit=CHUNK + 1) if r.row != after][:CHUNK]
        if not page:
            break
        after = page[-1].row
        writes: list[EventWrite] = []
        for staged in page:
            if not staged.get("held") or staged.get("kind") != DELETED:
                continue
            if action == "confirm":
                stored = await services.tables.get(MAILBOX, account, event_key(calendar, str(staged.get("event"))))
                writes.append(removal_write(services, account, calendar, staged, stored, DELETED))
            else:
                writes.append(EventWrite([TableOp.delete(account, staged.row)]))
        await holder.commit(writes)
        count += len(writes)
    cursor: dict[str, Any] = dict(cursor_row.data)
    if cursor.get("held_delta_link"):
        cursor.update(delta_link=cursor["held_delta_link"])
    cursor.update(held=False, held_delta_link="", confirm_due=0.0)
    await holder.commit([], [TableOp.upsert(Row(account, cursor_row.row, cursor))])
    return count
