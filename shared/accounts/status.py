"""Status changes and the application alarm: every change is written to the account, the journal
and an ``outbox`` row the SaaS hears about (shared/accounts/outbox.py, docs/callbacks.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from shared.accounts.model import Account, Status
from shared.accounts.outbox import owe
from shared.accounts.repository import AccountRepository
from shared.api import iso_utc
from shared.context import Services
from shared.errors import AccountAuthError, AppAuthError, MailboxUnsupported, StorageConflict
from shared.ops.journal import JournalEntry

APP_ALARM = "alarm"


async def record_status_change(services: Services, before: Status | None, account: Account,
                               *, force: bool = False) -> None:
    """Journal a status change and owe the SaaS a callback (an outbox row, ordered by time); ``force``
    records a change of reasons within one status (degraded for one more or one fewer reason)."""
    if before == account.status and not force:
        return
    now = services.clock()
    await services.journal.record(account.account, JournalEntry(
        "status", "info", stage=account.status.value,
        detail=f"{before.value if before else 'none'} -> {account.status.value}"
               + (f" ({account.reason})" if account.reason else "")))
    await owe(services, account.account, "account_status", {
        "account": account.account, "external_ref": account.external_ref, "status": account.status.value,
        "reason": account.reason, "at": iso_utc(now)})


async def set_status(services: Services, account_id: str, status: Status, reason: str | None,
                     *, only_from: frozenset[Status] | None = None,
                     only_generation: int | None = None) -> Account | None:
    """Move an account to ``status`` (optimistic, retried on a concurrent change). Returns the
    account as saved, or None when it is absent, its current status is not in ``only_from``, or its live
    connection is no longer ``only_generation`` (a change caused by one connection's token must not
    touch the connection that replaced it)."""
    repo = AccountRepository(services.tables)
    for _ in range(5):
        account = await repo.get(account_id)
        if account is None or (only_from is not None and account.status not in only_from):
            return None
        if only_generation is not None and account.generation != only_generation:
            return None
        if account.status == status and account.reason == reason:
            return account
        changed = replace(account, status=status, reason=reason, status_changed_at=services.clock())
        try:
            saved = await repo.save(changed)
        except StorageConflict:
            continue
        await record_status_change(services, account.status, saved)
        return saved
    raise StorageConflict(f"account {account_id} kept changing; status {status.value} not set")


LIVE = frozenset({Status.ACTIVE, Status.DEGRADED})

# Why an account is degraded: a set, each reason cleared on its own. ``breaker`` holds a round's deletes;
# ``poison:{kind}`` says a message of that kind failed every delivery (shared/poison/).
BREAKER = "breaker"
POISON_PREFIX = "poison:"


def degraded_reasons(account: Account) -> frozenset[str]:
    """The reasons of a degraded account (stored comma-separated in ``reason``); empty for other statuses."""
    if account.status != Status.DEGRADED or not account.reason:
        return frozenset()
    return frozenset(part for part in account.reason.split(",") if part)


def poison_reason(kind: str) -> str:
    return f"{POISON_PREFIX}{kind}"


async def add_degraded_reason(services: Services, account_id: str, reason: str) -> Account | None:
    """Degrade a live (active or degraded) account for ``reason`` besides any it has; None when the account
    is absent or not live (a degraded reason never overrides needs_reconnect, unsupported or disconnected)."""
    return await _change_reasons(services, account_id, lambda reasons: reasons | {reason})


async def clear_degraded_reason(services: Services, account_id: str, reason: str) -> Account | None:
    """Drop ``reason``; the account returns to active when no reason is left. None when nothing changed
    hands (absent, not degraded)."""
    return await _change_reasons(services, account_id, lambda reasons: reasons - {reason})


async def _change_reasons(services: Services, account_id: str,
                          change: Callable[[frozenset[str]], frozenset[str]]) -> Account | None:
    repo = AccountRepository(services.tables)
    for _ in range(5):
        account = await repo.get(account_id)
        if account is None or account.status not in LIVE:
            return None
        before = degraded_reasons(account)
        after = change(before)
        if after == before:
            return account
        status = Status.DEGRADED if after else Status.ACTIVE
        changed = replace(account, status=status, reason=",".join(sorted(after)) or None,
                          status_changed_at=services.clock())
        try:
            saved = await repo.save(changed)
        except StorageConflict:
            continue
        if saved.status != account.status or saved.reason != account.reason:
            await record_status_change(services, account.status, saved, force=True)
        return saved
    raise StorageConflict(f"account {account_id} kept changing; degraded reasons not changed")


async def mark_needs_reconnect(services: Services, account_id: str, error: AccountAuthError,
                               *, generation: int) -> Account | None:
    """The grant of connection ``generation`` is dead: the account waits for its user to connect again,
    unless that connection was already replaced by a reconnect."""
    reason = error.reason + (f":{error.aad_code}" if error.aad_code else "")
    return await set_status(services, account_id, Status.NEEDS_RECONNECT, reason, only_from=LIVE,
                            only_generation=generation)


async def mark_unsupported(services: Services, account_id: str, error: MailboxUnsupported) -> Account | None:
    """The mailbox cannot be synced through Graph (on-premises, not enabled): reconnecting cannot fix
    it, an operator re-checks it."""
    return await set_status(services, account_id, Status.UNSUPPORTED, error.code or "mailbox_unsupported",
                            only_from=LIVE | {Status.NEEDS_RECONNECT})


async def raise_app_alarm(services: Services, error: AppAuthError) -> None:
    """The application's own credential is refused: one alarm for the app (health reports it), never a
    status on every account."""
    repo = AccountRepository(services.tables)
    await repo.put_app_state(APP_ALARM, {"reason": error.reason, "aad_code": error.aad_code,
                                         "at": services.clock()})
    await services.journal.record(None, JournalEntry.failure("app_alarm", error))


async def clear_app_alarm(services: Services) -> None:
    repo = AccountRepository(services.tables)
    if await repo.get_app_state(APP_ALARM) is not None:
        await repo.clear_app_state(APP_ALARM)
        await services.journal.record(None, JournalEntry("app_alarm", "ok", detail="cleared"))
