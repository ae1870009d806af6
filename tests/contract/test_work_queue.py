"""The WorkQueue contract, run against the in-memory queue and Azurite through azure-storage-queue."""

from __future__ import annotations

from shared.ids import new_account_id
from shared.messages import Renew, Sync, parse_message


async def mine(queue, name: str, account: str) -> list:
    return [m for m in (parse_message(b) for b in await queue.peek(name)) if m.account == account]


async def test_sent_message_is_visible_and_parses_back(work_queue):
    queue, _ = work_queue
    account = new_account_id()
    await queue.send(Sync(account=account, reason="timer", full=True))
    await queue.send(Renew(account=account, subscription="sub-1"))
    assert await mine(queue, "sync", account) == [Sync(account=account, reason="timer", full=True)]
    assert await mine(queue, "subscriptions", account) == [Renew(account=account, subscription="sub-1")]


async def test_delayed_message_stays_invisible_until_its_delay(work_queue):
    queue, advance = work_queue
    account = new_account_id()
    await queue.send(Sync(account=account), delay_seconds=2)
    assert await mine(queue, "sync", account) == []
    await advance(3)
    assert await mine(queue, "sync", account) == [Sync(account=account)]
