"""Purging a disconnected account's data: queued work, in slices, because a mailbox partition can hold
100,000 rows and an HTTP call must answer in seconds.

``DELETE /api/accounts/{id}?purge=true`` disconnects, scrubs the personal data from the account row
and deletes its index rows at once (so ``GET`` shows none), then queues a ``Purge``. Each ``Purge``
deletes up to ``SLICE_ROWS`` rows of the account's partitions and sends itself again while rows are
left; the last one stamps ``purged_at``. Outbox rows the SaaS is still owed (no ``delivered_at``)
are kept: the ``disconnected`` notice must reach the SaaS even after a purge. Idempotent: a repeated
message deletes what is left, and nothing when nothing is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from shared.accounts.model import Account, Identity
from shared.accounts.repository import AccountRepository
from shared.context import Services
from shared.errors import StorageConflict
from shared.messages import Message, Purge
from shared.ops.journal import JournalEntry
from shared.store.ports import BOOKINGS, CALENDARS, JOURNAL, MAILBOX, OUTBOX, SUBSCRIPTIONS, TableOp

Handler = Callable[[Message], Awaitable[None]]
SLICE_ROWS = 5000
# Everything partitioned by account id, in the order it goes. The journal goes last: until then it
# tells a support engineer what happened.
PURGED_TABLES = (MAILBOX, CALENDARS, SUBSCRIPTIONS, BOOKINGS, JOURNAL)


def scrubbed(account: Account, now: float) -> Account:
    """The account row without personal data: the tenant stays (an organisation, not a person)."""
    return replace(account, identity=Identity(tenant=account.identity.tenant, user="", username=""),
                   external_ref=None, purge_requested_at=now)


async def request_purge(services: Services, account: Account) -> Account:
    """Scrub the row and its indexes now; queue the rest. The row may change under us (a worker still
    finishing for the account): read it again and retry."""
    repo = AccountRepository(services.tables)
    for _ in range(5):
        await repo.drop_indexes(account)
        try:
            account = await repo.replace_unindexed(scrubbed(account, services.clock()))
        except StorageConflict:
            fresh = await repo.get(account.account)
            if fresh is None:
                raise
            account = fresh
            continue
        await services.queue.send(Purge(account=account.account))
        return account
    raise StorageConflict("the account kept changing; request the purge again")


def account_work_handler(services: Services, subscriptions: Handler) -> Handler:
    """The subscriptions queue's handler: purges here, everything else to the subscription worker."""
    async def handle(message: Message) -> None:
        if isinstance(message, Purge):
            await purge_slice(services, message)
        else:
            await subscriptions(message)
    return handle


async def purge_slice(services: Services, message: Purge) -> int:
    """Delete up to SLICE_ROWS rows; re-send the message while rows are left. Returns rows deleted."""
    tables, budget, deleted = services.tables, SLICE_ROWS, 0
    for table in (*PURGED_TABLES, OUTBOX):
        ops = []
        async for row in tables.query(table, message.account, limit=budget - deleted):
            if table == OUTBOX and row.get("delivered_at") is None:
                continue  # still owed to the SaaS
            ops.append(TableOp.delete(row.partition, row.row))
        deleted += await tables.bulk_write(table, ops) if ops else 0
        if deleted >= budget:
            await services.queue.send(message)  # more to do: continue in a fresh invocation
            return deleted
    repo = AccountRepository(services.tables)
    account = await repo.get(message.account)
    if account is not None and account.purged_at is None:
        await repo.replace_unindexed(replace(account, purged_at=services.clock()))
        await services.journal.record(None, JournalEntry("purge", "ok", detail=f"account {message.account}"))
    return deleted
