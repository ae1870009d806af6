"""The first thing the sync worker does with a message: drop it when there is nothing to sync.

The webhook cannot know an account's status (it reads no storage), so a notification for an unknown
account, or for one whose status drops notifications or pauses inbound sync (the status matrix in
shared/accounts/model.py),
arrives here as a ``sync`` message and ends here, journaled and counted, without a Graph call.
"""

from __future__ import annotations

from shared.accounts.model import Account
from shared.accounts.repository import AccountRepository
from shared.accounts.status import degraded_reasons, poison_reason
from shared.context import Services
from shared.messages import Sync
from shared.ops.journal import JournalEntry


async def admit(services: Services, message: Sync) -> Account | None:
    """The account to sync, or None when the message is dropped."""
    account = await AccountRepository(services.tables).get(message.account)
    if account is None:
        # Nothing to journal it under that an operator would look at: the app partition, counted.
        await services.journal.record(None, JournalEntry("sync", "info", stage="gate",
                                                         detail="dropped: unknown account", counts={"dropped": 1}))
        return None
    rules = account.rules
    from_notification = message.reason in ("notification", "lifecycle")
    if not rules.runs_inbound_sync or (from_notification and not rules.accepts_notifications):
        await services.journal.record(account.account, JournalEntry(
            "sync", "info", stage="gate", detail=f"dropped ({message.reason}): account is {account.status.value}",
            counts={"dropped": 1}))
        return None
    if poison_reason("sync") in degraded_reasons(account):
        # The matrix: a poisoned sync message pauses inbound sync until an operator replays or discards it.
        await services.journal.record(account.account, JournalEntry(
            "sync", "info", stage="gate", detail=f"dropped ({message.reason}): a sync message is in the poison "
                                                 "table", counts={"dropped": 1}))
        return None
    return account
