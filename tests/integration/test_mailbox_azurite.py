"""The mailbox partition's fenced commits through azure-data-tables against Azurite: chunks of at most 100
rows each carrying the lease, gap-free feed sequences across chunks, and nothing written by a holder whose
lease was taken ("Performing entity group transactions",
https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions)."""

from __future__ import annotations

import pytest

from shared.config import Settings, StorageSettings
from shared.context import Services
from shared.ids import new_account_id
from shared.ops.journal import Journal
from shared.store.factory import build_table_store
from shared.store.memory import InMemoryWorkQueue
from shared.store.ports import MAILBOX, Row, TableOp
from shared.sync.mailbox import EventWrite, LeaseLost, MailboxLease
from tests.fakes import FakeClock
from tests.integration.conftest import SAMPLE

pytestmark = pytest.mark.azurite


@pytest.fixture
async def services(storage_connection_string):
    clock = FakeClock()
    tables = build_table_store(StorageSettings(connection_string=storage_connection_string))
    yield Services(Settings.from_env({**SAMPLE, "AzureWebJobsStorage": storage_connection_string}), tables,
                   InMemoryWorkQueue(clock), Journal(tables, clock), clock)
    await tables.close()


def writes(account: str, count: int, prefix: str = "ev:c:") -> list[EventWrite]:
    return [EventWrite([TableOp.upsert(Row(account, f"{prefix}{n:04d}", {"n": n})),
                        TableOp.upsert(Row(account, f"tb:2026-11-30:c:{n:04d}", {"n": n})),
                        TableOp.upsert(Row(account, f"tb:2026-12-07:c:{n:04d}", {"n": n}))],
                       feed={"kind": "created", "event": f"{n:04d}"}) for n in range(count)]


async def partition(services: Services, account: str, prefix: str) -> list[Row]:
    return [r async for r in services.tables.query(MAILBOX, account, prefix=prefix)]


async def test_a_large_commit_is_chunked_with_the_lease_in_each_and_a_gap_free_feed(services):
    account = new_account_id()
    holder = await MailboxLease(services, account).acquire()
    assert holder is not None
    await holder.commit(writes(account, 60), [TableOp.upsert(Row(account, "cursor:c", {"next_link": "x"}))])
    assert holder.commits == 3  # 60 events of 4 rows: 240 rows, 99 a chunk besides the lease
    feed = await partition(services, account, "feed:")
    assert [r.row for r in feed] == [f"feed:{n:016d}" for n in range(1, 61)]
    assert [r.get("event") for r in feed] == [f"{n:04d}" for n in range(60)]  # commit order
    assert len(await partition(services, account, "ev:")) == 60
    assert (await MailboxLease(services, account).read()).feed_next == 61
    assert await services.tables.get(MAILBOX, account, "cursor:c") is not None


async def test_a_holder_whose_lease_was_taken_writes_nothing(services):
    account = new_account_id()
    slow = await MailboxLease(services, account).acquire()
    assert slow is not None
    await slow.commit(writes(account, 2))
    assert await MailboxLease(services, account).acquire() is None  # still held
    services.clock.advance(services.settings.lease_seconds + 1)
    thief = await MailboxLease(services, account).acquire()
    assert thief is not None
    with pytest.raises(LeaseLost):
        await slow.commit(writes(account, 3, prefix="ev:late:"))
    assert await partition(services, account, "ev:late:") == []
    await thief.commit(writes(account, 1, prefix="ev:thief:"))
    assert [r.row for r in await partition(services, account, "feed:")] == [f"feed:{n:016d}" for n in (1, 2, 3)]


async def test_only_the_first_to_set_dirty_is_told_so(services):
    account = new_account_id()
    lease = MailboxLease(services, account)
    assert await lease.acquire() is not None
    assert [await lease.flag_dirty() for _ in range(3)] == [True, False, False]
    services.clock.advance(services.settings.lease_seconds + 1)
    assert await lease.acquire() is not None
    assert not (await lease.read()).dirty  # taking the lease clears it: that round sees everything


async def test_dirty_set_under_a_holder_costs_it_neither_its_commit_nor_its_release(services):
    """``dirty`` is a merge of the lease row that changes its ETag without taking the lease."""
    account = new_account_id()
    lease = MailboxLease(services, account)
    holder = await lease.acquire()
    assert holder is not None
    assert await lease.flag_dirty()
    await holder.commit(writes(account, 2))
    assert await lease.flag_dirty() is False  # still set, no write
    await holder.release(rounds=1)
    state = await lease.read()
    assert (state.held_by, state.dirty, state.rounds, state.feed_next) == (None, True, 1, 3)
    assert len(await partition(services, account, "ev:")) == 2
