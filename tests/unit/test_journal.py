from __future__ import annotations

from shared.errors import Throttled
from shared.ops.journal import APP_PARTITION, Journal, JournalEntry
from shared.store.memory import InMemoryTableStore
from shared.store.ports import JOURNAL


class Ticker:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


async def test_entries_come_back_newest_first_with_counts():
    store = InMemoryTableStore()
    journal = Journal(store, clock=Ticker())
    await journal.record("acct", JournalEntry("connect", "ok", stage="callback"))
    await journal.record("acct", JournalEntry("sync", "ok", counts={"created": 3, "deleted": 1}, duration_ms=40))
    entries = await journal.recent("acct")
    assert [e.operation for e in entries] == ["sync", "connect"]
    assert entries[0].counts == {"created": 3, "deleted": 1}
    assert entries[0].at is not None
    assert entries[1].at is not None
    assert entries[0].at > entries[1].at


async def test_app_wide_entries_go_to_the_app_partition():
    store = InMemoryTableStore()
    journal = Journal(store)
    await journal.record(None, JournalEntry("app_alarm", "error", error_class="AppAuthError"))
    assert [r.partition async for r in store.query(JOURNAL, APP_PARTITION)] == [APP_PARTITION]


async def test_failures_keep_graph_ids_and_lose_secrets():
    store = InMemoryTableStore()
    journal = Journal(store)
    error = Throttled("throttled after refresh_token=1.AXoAsecretsecretsecretsecret", retry_after=3,
                      status=429, request_id="req-9", client_request_id="cli-9")
    await journal.record("acct", JournalEntry.failure("delta", error, stage="page"))
    (entry,) = await journal.recent("acct")
    assert (entry.http_status, entry.graph_request_id, entry.client_request_id) == (429, "req-9", "cli-9")
    assert entry.error_class == "Throttled"
    assert "1.AXoAsecret" not in (entry.detail or "")


async def test_expire_deletes_entries_past_the_retention_in_every_partition():
    store = InMemoryTableStore()
    clock = FixedClock(1_790_000_000.0)
    journal = Journal(store, clock=clock)
    for partition in ("acct1", "acct2", None):
        await journal.record(partition, JournalEntry("old", "ok"))
    clock.now += 29 * 86_400
    await journal.record("acct1", JournalEntry("recent", "ok"))
    clock.now += 2 * 86_400                                   # "old" is 31 days old, "recent" 2
    assert await journal.expire(30) == 3
    assert [e.operation for e in await journal.recent("acct1")] == ["recent"]
    assert await journal.recent("acct2") == []
    assert await journal.recent(None) == []
    assert await journal.expire(30) == 0


class FixedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
