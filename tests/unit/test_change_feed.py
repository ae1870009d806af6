"""The change feed API (shared/sync/feed.py) on the event writer's in-memory world: every change once, in
order, paged by a cursor, errors in the shared shape, and retention with 410 for a cursor it outlived."""

from __future__ import annotations

import json
from typing import Any

from shared.messages import Sync
from shared.sync.feed import read_changes
from shared.sync.mailbox import LeaseState
from tests.unit.delta_fake import event
from tests.unit.test_event_writer import rows, setup  # noqa: F401
from tests.unit.test_openapi import fits


async def changes(world: Any, account: str, **params: Any) -> tuple[int, Any]:
    result = await read_changes(world.services, account, {k: str(v) for k, v in params.items()})
    return result.status, json.loads(result.body)


async def test_the_feed_pages_every_change_once_in_order(setup):  # noqa: F811
    world, account, _mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    status, body = await changes(world, account, cursor=0)
    assert status == 200
    fits("ChangesPage", json.dumps(body).encode())
    assert [(c["seq"], c["kind"], c["event"]) for c in body["changes"]] == [
        (n + 1, "created", f"ev{n:05d}") for n in range(5)]
    assert (body["cursor"], body["more"], body["latest"]) == (5, False, 5)
    assert body["changes"][0]["at"].endswith("Z")

    seen, cursor = [], 0
    while True:
        _, page = await changes(world, account, cursor=cursor, limit=2)
        seen += [c["seq"] for c in page["changes"]]
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert seen == [1, 2, 3, 4, 5]
    _, empty = await changes(world, account, cursor=5)
    assert (empty["changes"], empty["cursor"], empty["more"]) == ([], 5, False)


async def test_bad_requests_name_the_field(setup):  # noqa: F811
    world, account, _mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    for params, field in (({"cursor": "-1"}, "cursor"), ({"cursor": "abc"}, "cursor"), ({"cursor": "9"}, "cursor"),
                          ({"limit": "0"}, "limit"), ({"limit": "5000"}, "limit")):
        status, body = await changes(world, account, **params)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_field", field), params
    status, body = await changes(world, "acct_unknown")
    assert (status, body["error"]["code"], body["error"]["field"]) == (404, "account_not_found", "account")


async def test_rows_past_retention_go_and_an_outlived_cursor_answers_410(setup):  # noqa: F811
    world, account, mailbox, writer = setup
    await writer.handle(Sync(account=account, reason="connect"))
    world.clock.advance((world.services.settings.feed_retention_days + 1) * 86400)
    mailbox.put(event(9))
    await writer.handle(Sync(account=account, reason="notification"))
    assert [r.row for r in rows(world, "feed:")] == ["feed:0000000000000006"]
    status, body = await changes(world, account, cursor=0)
    assert (status, body["error"]["code"], body["error"]["field"]) == (410, "cursor_expired", "cursor")
    assert "events API" in body["error"]["message"]
    fits("Error", json.dumps(body).encode())
    status, body = await changes(world, account, cursor=5)
    assert (status, [c["event"] for c in body["changes"]]) == (200, ["ev00009"])

    # Trimmed at most once a day: a round an hour later leaves the stamp as it was.
    lease = LeaseState.from_row(await world.services.tables.get("mailbox", account, "lease"))
    world.clock.advance(3600)
    mailbox.put(event(10))
    await writer.handle(Sync(account=account, reason="notification"))
    after = LeaseState.from_row(await world.services.tables.get("mailbox", account, "lease"))
    assert (after.feed_floor, after.feed_trimmed_at) == (6, lease.feed_trimmed_at)
