"""Account rows and their index rows in the ``accounts`` table.

Partitions: the account id holds the account row (row key "") and its pending generations
(``gen:{n}``). Index rows live in other partitions: ``tu:{tenant}`` / user id (find the account of a
mailbox) and ``ref:{external ref}`` / account id (the SaaS's accounts for one of its users). They are
written before the row they index and verified on read (shared/store/index.py). The ``_app``
partition holds application-wide state such as the alarm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from shared.accounts.model import (
    ACCOUNT_ROW,
    GENERATION_PREFIX,
    Account,
    PendingGeneration,
    Status,
    generation_row_key,
)
from shared.store.index import index_row, read_indexed
from shared.store.ports import ACCOUNTS, Row, TableOp, TableStore

APP_PARTITION = "_app"


def _mailbox_index_key(tenant: str, user: str) -> tuple[str, str]:
    return (f"tu:{tenant}", user)


def _ref_index_key(external_ref: str) -> str:
    return f"ref:{external_ref}"


class AccountRepository:
    def __init__(self, store: TableStore) -> None:
        self._store = store

    async def get(self, account: str) -> Account | None:
        row = await self._store.get(ACCOUNTS, account, ACCOUNT_ROW)
        return Account.from_row(row) if row is not None else None

    async def every_account(self) -> AsyncIterator[Account]:
        """Every account, read by a scan of the table (the index, generation and application rows skipped):
        for daily passes of the timer, never a request path."""
        statuses = {s.value for s in Status}
        async for row in self._store.scan(ACCOUNTS):
            if row.row == ACCOUNT_ROW and row.get("status") in statuses:
                yield Account.from_row(row)

    async def find_by_mailbox(self, tenant: str, user: str) -> Account | None:
        """The account of a mailbox that is not disconnected, if any (a disconnected account is
        terminal: connecting the mailbox again makes a new account)."""
        partition, row_key = _mailbox_index_key(tenant, user)
        row = await read_indexed(self._store, ACCOUNTS, partition, row_key,
                                 lambda r: r.get("tenant") == tenant and r.get("user") == user
                                 and r.get("status") != Status.DISCONNECTED.value)
        return Account.from_row(row) if row is not None else None

    async def list_by_ref(self, external_ref: str) -> list[Account]:
        accounts = []
        async for ix in self._store.query(ACCOUNTS, _ref_index_key(external_ref)):
            account = await self.get(ix.row)
            if account is not None and account.external_ref == external_ref:
                accounts.append(account)
        return accounts

    async def create(self, account: Account) -> Account:
        """Insert a new account, its mailbox index row first.

        :raises StorageConflict: the account id exists (ids are random: practically never)."""
        row = await self._write_indexes(account)
        written = await self._store.insert(ACCOUNTS, row)
        return _with_etag(account, written.etag)

    async def save(self, account: Account) -> Account:
        """Replace the account row if unchanged since read (its ETag), writing the index rows its
        identity and reference need first.

        :raises StorageConflict: someone else changed it; reload and decide again."""
        row = await self._write_indexes(account)
        written = await self._store.replace(ACCOUNTS, row, etag=account.etag)
        return _with_etag(account, written.etag)

    async def _write_indexes(self, account: Account) -> Row:
        """Upsert the index rows the account needs (mailbox, and reference when bound); its row to write next."""
        row = account.to_row()
        indexes = [index_row(*_mailbox_index_key(account.identity.tenant, account.identity.user), row)]
        if account.external_ref:
            indexes.append(index_row(_ref_index_key(account.external_ref), account.account, row))
        await self._store.bulk_write(ACCOUNTS, [TableOp.upsert(ix) for ix in indexes])
        return row

    async def drop_indexes(self, account: Account) -> None:
        """Delete the account's mailbox and reference index rows (a purge: nothing may find it by them)."""
        tenant_partition, user_row = _mailbox_index_key(account.identity.tenant, account.identity.user)
        await self._store.delete(ACCOUNTS, tenant_partition, user_row)
        if account.external_ref:
            await self.drop_ref_index(account.external_ref, account.account)

    async def replace_unindexed(self, account: Account) -> Account:
        """Replace the account row (If-Match its ETag) without writing index rows: for a purged account.

        :raises StorageConflict: someone else changed it."""
        written = await self._store.replace(ACCOUNTS, account.to_row(), etag=account.etag)
        return _with_etag(account, written.etag)

    async def drop_ref_index(self, external_ref: str, account: str) -> None:
        await self._store.delete(ACCOUNTS, _ref_index_key(external_ref), account)

    # --- pending generations ---

    async def add_generation(self, pending: PendingGeneration) -> None:
        """:raises StorageConflict: that generation number was taken by a concurrent callback."""
        await self._store.insert(ACCOUNTS, pending.to_row())

    async def get_generation(self, account: str, generation: int) -> PendingGeneration | None:
        row = await self._store.get(ACCOUNTS, account, generation_row_key(generation))
        return PendingGeneration.from_row(row) if row is not None else None

    async def generations(self, account: str) -> list[PendingGeneration]:
        return [PendingGeneration.from_row(r)
                async for r in self._store.query(ACCOUNTS, account, prefix=GENERATION_PREFIX)]

    async def delete_generation(self, account: str, generation: int) -> None:
        await self._store.delete(ACCOUNTS, account, generation_row_key(generation))

    async def next_generation(self, account: Account | None) -> int:
        if account is None:
            return 1
        pending = [g.generation for g in await self.generations(account.account)]
        return max([account.generation, *pending]) + 1

    # --- application-wide state ---

    async def get_app_state(self, name: str) -> Row | None:
        return await self._store.get(ACCOUNTS, APP_PARTITION, name)

    async def put_app_state(self, name: str, data: dict[str, str | float | None]) -> None:
        await self._store.upsert(ACCOUNTS, Row(APP_PARTITION, name, data))

    async def clear_app_state(self, name: str) -> None:
        await self._store.delete(ACCOUNTS, APP_PARTITION, name)


def _with_etag(account: Account, etag: str | None) -> Account:
    return replace(account, etag=etag)
