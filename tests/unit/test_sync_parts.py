"""The sync engine's pure parts: page decoding, the projection, time buckets and the per-mailbox governor."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.graph.governor import MailboxGovernor
from shared.graph.wire import DateTimeTimeZone, MalformedPage, decode_page
from shared.sync.buckets import LONG, MAX_BUCKETS, bucket_names
from shared.sync.projection import StoredEvent, content_hash, utc_instant


def test_a_page_decodes_items_removals_and_links():
    """Shapes from "Get incremental changes to events in a calendar view"
    (https://learn.microsoft.com/en-us/graph/delta-query-events): a removed item is its id and
    ``@removed``; a thin occurrence has only id, type, seriesMasterId, start and end; unknown fields are
    skipped."""
    page = decode_page(json.dumps({
        "@odata.context": "x", "@odata.nextLink": "https://graph/next",
        "value": [
            {"@odata.type": "#microsoft.graph.event", "id": "gone", "@removed": {"reason": "deleted"}},
            {"id": "occ", "type": "occurrence", "seriesMasterId": "master",
             "start": {"dateTime": "2026-12-10T09:00:00.0000000", "timeZone": "UTC"},
             "end": {"dateTime": "2026-12-10T10:00:00.0000000", "timeZone": "UTC"}},
            {"id": "full", "subject": "Hi", "somethingNew": {"a": 1},
             "recurrence": {"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd"}}},
        ]}).encode())
    assert page.next_link == "https://graph/next"
    assert page.delta_link is None
    gone, occ, full = page.value
    assert gone.is_removed
    assert gone.removed is not None
    assert gone.removed.reason == "deleted"
    assert StoredEvent.from_graph("c", occ).thin
    stored = StoredEvent.from_graph("c", full)
    assert json.loads(stored.recurrence or "") == {"pattern": {"type": "weekly", "interval": 1},
                                                   "range": {"type": "noEnd"}}


def test_a_malformed_page_names_the_field_not_the_content():
    with pytest.raises(MalformedPage) as caught:
        decode_page(b'{"value": [{"id": "x", "subject": 12345}]}')
    assert "$.value[0].subject" in str(caught.value)
    assert "12345" not in str(caught.value)
    with pytest.raises(MalformedPage):
        decode_page(b"<html>not json</html>")


@pytest.mark.parametrize(("value", "expected"), [
    (DateTimeTimeZone("2026-12-10T09:00:00.0000000", "UTC"), "2026-12-10T09:00:00Z"),
    (DateTimeTimeZone("2026-12-10T09:00:00.5000000", "UTC"), "2026-12-10T09:00:00.500000Z"),
    (DateTimeTimeZone("2026-07-01T09:00:00", "Europe/Berlin"), "2026-07-01T07:00:00Z"),  # summer time
    (DateTimeTimeZone("2026-12-01T09:00:00", "Europe/Berlin"), "2026-12-01T08:00:00Z"),
    (DateTimeTimeZone("not a time", "UTC"), None),
    (None, None),
])
def test_utc_instant(value, expected):
    assert utc_instant(value) == expected


def test_the_hash_ignores_version_tags_but_not_content():
    base = StoredEvent("c", "id", subject="A", change_key="1", last_modified="2026-01-01T00:00:00Z")
    assert content_hash(base) == content_hash(StoredEvent("c", "id", subject="A", change_key="2"))
    assert content_hash(base) != content_hash(StoredEvent("c", "id", subject="B", change_key="1"))


def test_buckets_are_utc_weeks_and_long_events_get_the_long_range():
    assert bucket_names("2026-12-02T09:00:00Z", "2026-12-02T10:00:00Z") == ["2026-11-30"]  # a Wednesday
    assert bucket_names("2026-12-06T23:00:00Z", "2026-12-07T01:00:00Z") == ["2026-11-30", "2026-12-07"]
    assert bucket_names("2026-12-06T23:00:00Z", "2026-12-07T00:00:00Z") == ["2026-11-30"]  # end is exclusive
    eight_weeks = bucket_names("2026-11-30T00:00:00Z", "2027-01-25T00:00:00Z")
    assert len(eight_weeks) == MAX_BUCKETS
    assert bucket_names("2026-11-30T00:00:00Z", "2027-01-26T00:00:00Z") == [LONG]
    assert bucket_names(None, "2026-12-01T00:00:00Z") == [LONG]


async def test_the_governor_allows_four_per_mailbox_and_admits_writes_first():
    governor = MailboxGovernor(limit=4)
    release = asyncio.Event()
    order: list[str] = []
    peak = 0

    async def call(name: str, write: bool, mailbox: str = "m") -> None:
        nonlocal peak
        async with governor.slot(mailbox, write=write):
            peak = max(peak, governor.in_flight("m"))
            order.append(name)
            await release.wait()

    tasks = [asyncio.create_task(call(f"read{i}", False)) for i in range(6)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(call("write", True)))
    tasks.append(asyncio.create_task(call("other mailbox", False, mailbox="n")))
    await asyncio.sleep(0.01)
    assert governor.in_flight("m") == 4
    assert "other mailbox" in order
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 4
    assert order.index("write") < order.index("read4")  # queued after read4 and read5, admitted first
    assert governor.in_flight("m") == 0


async def test_a_cancelled_waiter_gives_its_place_back():
    governor = MailboxGovernor(limit=1)
    held = asyncio.Event()

    async def hold() -> None:
        async with governor.slot("m", write=False):
            held.set()
            await asyncio.sleep(0.05)

    async def wait() -> None:
        async with governor.slot("m", write=False):
            pass

    holder = asyncio.create_task(hold())
    await held.wait()
    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with governor.slot("m", write=True):
        assert governor.in_flight("m") == 1
    assert governor.in_flight("m") == 0
