"""Which calendars of a mailbox sync: the primary calendar always, and the other calendars the user owns that
the SaaS selects (``GET`` and ``PUT /api/accounts/{account}/calendars``, function key).

Rows ``calendars / {account} / {calendar id}``: ``primary``, ``owner``, ``name``, ``sync``. Each synced
calendar has its own cursor and round (shared/sync/rounds.py); an event that moves between two synced
calendars is reported ``moved`` (with ``to``) by the one it left and ``created`` by the other. A calendar
deselected stops syncing (``drop`` on its row), and at the next round its stored events go with one
``left_calendar`` feed row each (the SaaS no longer hears of them). Only the primary calendar has a subscription unless
``PER_CALENDAR_SUBSCRIPTIONS`` (the per-calendar resource is undocumented); without it a selected calendar's
changes arrive with the reconciler's round, within ``RECONCILE_INTERVAL_MINUTES``.

The list of calendars to choose from is Graph's ("List calendars",
https://learn.microsoft.com/en-us/graph/api/user-list-calendars): the mailbox's own calendars are those
whose ``owner`` is the mailbox itself; calendars shared with the user are not offered (another mailbox's
calendar is another account's, or a later feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.accounts.model import Account
from shared.accounts.repository import AccountRepository
from shared.api import RequestError, json_object
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.messages import Sync
from shared.store.ports import CALENDARS, MAILBOX, Row, TableOp
from shared.sync.buckets import bucket_key
from shared.sync.mailbox import EVENT_PREFIX, EventWrite, LeaseHolder, cursor_key
from shared.sync.removals import now_text, series_key
from shared.sync.source import CalendarInfo, CalendarRef, DeltaSource

MAX_SELECTED = 20
DROP_CHUNK = 20  # events per fenced transaction when a deselected calendar's events go


async def synced_calendars(services: Services, source: DeltaSource, account: Account) -> list[CalendarRef]:
    """The primary calendar first (asked of Graph once and kept), then each selected one."""
    return (await calendars_to_sync(services, source, account))[0]


async def calendars_to_sync(services: Services, source: DeltaSource,
                            account: Account) -> tuple[list[CalendarRef], list[str]]:
    """One read of the account's calendar rows: the calendars to sync (primary first), and those deselected
    whose stored events are still to go (``drop``, set by the ``PUT`` that deselected them)."""
    user = account.identity.user
    address = account.identity.mailbox or account.identity.username or None
    rows = [row async for row in services.tables.query(CALENDARS, account.account)]
    primary = next((r for r in rows if r.get("primary")), None)
    if primary is None:
        primary = Row(account.account, await source.primary_calendar(account.account, user),
                      {"primary": True, "owner": address, "sync": True})
        await services.tables.upsert(CALENDARS, primary)
    others = sorted((r for r in rows if not r.get("primary") and r.get("sync")), key=lambda r: r.row)
    # An owned calendar: the mailbox's user reads it with their own token.
    synced = [CalendarRef(user, r.row, primary=r is primary, owner=str(r.get("owner") or address or "") or None,
                          acting_user=user) for r in (primary, *others)]
    return synced, sorted(r.row for r in rows if not r.get("sync") and r.get("drop"))


async def drop_calendar(services: Services, holder: LeaseHolder, calendar: str) -> int:
    """Remove a deselected calendar's stored events (``left_calendar`` each) and its cursor; returns how many."""
    account = holder.account
    rows = [r async for r in services.tables.query(MAILBOX, account, prefix=f"{EVENT_PREFIX}{calendar}:")]
    writes: list[EventWrite] = []
    now = now_text(services.clock())
    for row in rows:
        ops = [TableOp.delete(account, row.row)]
        ops += [TableOp.delete(account, bucket_key(b, calendar, str(row.get("id"))))
                for b in str(row.get("buckets", "")).split(",") if b]
        if row.get("sm") and row.get("series_master_id"):
            ops.append(TableOp.delete(account, series_key(calendar, str(row.get("series_master_id")),
                                                          str(row.get("id")))))
        feed = None if row.get("tombstone") else {
            "kind": "left_calendar", "calendar": calendar, "event": row.get("id"), "at": now,
            "dedupe": f"{row.get('id')}|left_calendar|{row.get('last_modified') or ''}"}
        writes.append(EventWrite(ops, feed))
    for start in range(0, len(writes), DROP_CHUNK):
        await holder.commit(writes[start:start + DROP_CHUNK])
    if await services.tables.get(MAILBOX, account, cursor_key(calendar)) is not None:
        await holder.commit([], [TableOp.delete(account, cursor_key(calendar))])
    await services.tables.merge(CALENDARS, Row(account, calendar, {"drop": False}))
    return sum(1 for w in writes if w.feed is not None)


async def list_calendars(services: Services, source: DeltaSource, account_id: str) -> HttpResult:
    try:
        account = await _account(services, account_id)
        offered = await _owned(source, account)
    except RequestError as exc:
        return exc.result()
    synced = {c.id for c in await synced_calendars(services, source, account)}
    return json_result(200, {"calendars": [_json(c, c.id in synced) for c in offered]})


async def select_calendars(services: Services, source: DeltaSource, account_id: str, body: bytes) -> HttpResult:
    """``{"calendars": [ids]}``: the calendars to sync besides the primary one (which always syncs)."""
    try:
        data = json_object(body)
        wanted = data.get("calendars")
        if not isinstance(wanted, list) or not all(isinstance(c, str) and c for c in wanted):
            raise RequestError(400, "invalid_field", "calendars must be a list of calendar ids", "calendars")
        if len(wanted) > MAX_SELECTED:
            raise RequestError(400, "invalid_field", f"at most {MAX_SELECTED} calendars", "calendars")
        account = await _account(services, account_id)
        offered = {c.id: c for c in await _owned(source, account)}
        unknown = sorted(set(wanted) - set(offered))
        if unknown:
            raise RequestError(400, "invalid_field", f"not a calendar this mailbox owns: {unknown[0]}", "calendars")
    except RequestError as exc:
        return exc.result()
    current = await synced_calendars(services, source, account)
    primary = current[0].id
    chosen = set(wanted) | {primary}
    # A calendar that synced (or still had its events to drop) and is left out now: its events go.
    dropping = {c.id for c in current} | {r.row async for r in services.tables.query(CALENDARS, account.account)
                                          if r.get("drop")}
    rows = [TableOp.upsert(Row(account.account, c.id, {"primary": c.id == primary, "owner": c.owner,
                                                       "name": c.name, "sync": c.id in chosen,
                                                       "drop": c.id in dropping and c.id not in chosen}))
            for c in offered.values()]
    await services.tables.bulk_write(CALENDARS, rows)
    await services.queue.send(Sync(account=account.account, reason="manual"))  # new calendars start now
    return json_result(200, {"calendars": [_json(c, c.id in chosen) for c in offered.values()]})


async def _account(services: Services, account_id: str) -> Account:
    account = await AccountRepository(services.tables).get(account_id)
    if account is None:
        raise RequestError(404, "account_not_found", "no such account", "account")
    if not account.rules.runs_inbound_sync:
        raise RequestError(409, "account_not_syncing", f"the account is {account.status.value}", "account")
    return account


async def _owned(source: DeltaSource, account: Account) -> Sequence[CalendarInfo]:
    mailbox = {a.lower() for a in (account.identity.mailbox, account.identity.username) if a}
    found = await source.calendars(account.account, account.identity.user)
    return [c for c in found if c.primary or (c.owner or "").lower() in mailbox]


def _json(calendar: CalendarInfo, sync: bool) -> dict[str, Any]:
    return {"id": calendar.id, "name": calendar.name, "primary": calendar.primary, "owner": calendar.owner,
            "sync": sync}
