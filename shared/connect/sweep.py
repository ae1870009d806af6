"""Sweep what the connect flow leaves behind when nobody finishes it: OAuth flows never called back,
and pending generations never confirmed, with their Key Vault secrets (a generation row is written
before its secret, so every secret a crash can leave has a row that leads here) and never-confirmed
accounts; and, once a day, journal entries past JOURNAL_RETENTION_DAYS (that reads across every
partition of the journal table, and the retention is counted in days). Run by the delta reconciler's
timer; idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from shared.accounts.model import Status, secret_name
from shared.accounts.repository import AccountRepository
from shared.auth.ports import TokenVault
from shared.context import Services
from shared.errors import StorageConflict
from shared.ops.journal import JournalEntry
from shared.store.ports import ACCOUNTS, OAUTHFLOWS, TableOp

JOURNAL_EXPIRY_STATE = "journal_expiry"
JOURNAL_EXPIRY_EVERY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class SweepCounts:
    flows: int
    generations: int
    accounts: int
    journal: int = 0  # journal entries past JOURNAL_RETENTION_DAYS


async def sweep_connections(services: Services, vault: TokenVault) -> SweepCounts:
    now = services.clock()
    tables = services.tables
    repo = AccountRepository(tables)
    stale_flows = [row async for row in tables.scan(OAUTHFLOWS) if float(row.get("expires_at", 0)) <= now]
    await tables.bulk_write(OAUTHFLOWS, [TableOp.delete(r.partition, r.row) for r in stale_flows])

    generations = 0
    touched: set[str] = set()
    async for row in tables.scan(ACCOUNTS, prefix="gen:"):
        if float(row.get("expires_at", 0)) > now:
            continue
        generation = int(row.get("generation", 0))
        await vault.delete(secret_name(row.partition, generation))
        await repo.delete_generation(row.partition, generation)
        generations += 1
        touched.add(row.partition)

    accounts = 0
    for account_id in sorted(touched):
        account = await repo.get(account_id)
        # A never-confirmed account with no connection left is removed; its index rows then dangle,
        # which readers ignore.
        if account is not None and account.status == Status.PENDING and not await repo.generations(account_id):
            try:
                await tables.delete(ACCOUNTS, account_id, "", etag=account.etag)
                accounts += 1
            except StorageConflict:
                pass  # a callback just added a generation: keep it
    journal = 0
    expired = await repo.get_app_state(JOURNAL_EXPIRY_STATE)
    if expired is None or float(expired.get("ran_at") or 0.0) <= now - JOURNAL_EXPIRY_EVERY_SECONDS:
        journal = await services.journal.expire(services.settings.journal_retention_days)
        await repo.put_app_state(JOURNAL_EXPIRY_STATE, {"ran_at": now})
    if stale_flows or generations or journal:
        await services.journal.record(None, JournalEntry("sweep_connections", "ok", counts={
            "flows": len(stale_flows), "generations": generations, "accounts": accounts, "journal": journal}))
    return SweepCounts(len(stale_flows), generations, accounts, journal)
