"""Token keep-alive: no refresh token reaches its inactivity limit while its mailbox is merely quiet.

Entra ID refresh tokens live 90 days and each use issues a new one ("Refresh tokens in the Microsoft
identity platform", https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens). A
mailbox the reconciler rounds every hour uses its token all the time; one whose sync is paused (a
poisoned sync message, an outage) does not. Once a day the reconciler's timer reads the accounts (one
pass, pages of a thousand rows), refreshes the token of every live account unused for
``TOKEN_KEEPALIVE_DAYS``, and records each token's days left on its account row (written only when the
whole number changes), so the account API and a support engineer see a token nearing the limit; one that
falls to ``WARN_DAYS`` (its refreshes failing) is owed to the SaaS as a ``token_expiring`` callback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from shared.accounts.model import Account, TokenUse
from shared.accounts.outbox import owe
from shared.accounts.repository import AccountRepository
from shared.auth.credential import TokenBroker
from shared.context import Services
from shared.ops.journal import JournalEntry
from shared.store.ports import ACCOUNTS, Row

log = logging.getLogger(__name__)

INACTIVITY_DAYS = 90
STATE = "keepalive"
PASS_SECONDS = 24 * 3600
# Refreshes per timer run; the rest wait for the next run (the pass is not stamped done until none are left).
MAX_REFRESHES_PER_RUN = 100
# A token this close to its limit is told to the SaaS (a push: docs/callbacks.md), once, as it crosses it.
WARN_DAYS = 14


@dataclass(frozen=True)
class KeepAlive:
    ran: bool                 # False: the last pass is less than a day old
    accounts: int = 0         # live accounts looked at
    refreshed: int = 0
    failed: int = 0
    min_days_left: int | None = None


def last_use(account: Account) -> float:
    """When the refresh token was last used: its last refresh, or the consent that issued it."""
    return account.last_token_refresh or account.consented_at


def days_left(account: Account, now: float) -> int:
    """Whole days before the refresh token's inactivity limit."""
    return max(0, INACTIVITY_DAYS - int((now - last_use(account)) // 86400))


async def keep_tokens_alive(services: Services, broker: TokenBroker) -> KeepAlive:
    repo = AccountRepository(services.tables)
    now = services.clock()
    state = await repo.get_app_state(STATE)
    if state is not None and float(state.get("ran_at") or 0.0) > now - PASS_SECONDS:
        return KeepAlive(False)
    idle_after = services.settings.token_keepalive_days * 86400
    accounts = refreshed = failed = 0
    lowest: int | None = None
    more_left = False
    async for account in repo.every_account():
        if account.rules.token_use is not TokenUse.FULL:
            continue
        accounts += 1
        if now - last_use(account) >= idle_after:
            if refreshed + failed >= MAX_REFRESHES_PER_RUN:
                more_left = True
            elif await _refresh(services, broker, account):
                refreshed += 1
                account = replace(account, last_token_refresh=services.clock())
            else:
                failed += 1
        left = days_left(account, now)
        lowest = left if lowest is None else min(lowest, left)
        if left != account.token_days_left:
            await services.tables.merge(ACCOUNTS, Row(account.account, "", {"token_days_left": left}))
            before = account.token_days_left if account.token_days_left is not None else INACTIVITY_DAYS
            if left <= WARN_DAYS < before:
                # Refreshing did not help (it failed, or the grant cannot be used): the SaaS hears it once.
                await owe(services, account.account, "token_expiring", {
                    "account": account.account, "external_ref": account.external_ref, "days_left": left})
    if not more_left:
        await repo.put_app_state(STATE, {"ran_at": now})
    if refreshed or failed:
        await services.journal.record(None, JournalEntry(
            "keepalive", "error" if failed else "ok",
            counts={"accounts": accounts, "refreshed": refreshed, "failed": failed}))
    return KeepAlive(True, accounts, refreshed, failed, lowest)


async def _refresh(services: Services, broker: TokenBroker, account: Account) -> bool:
    """Force a refresh-token grant (the broker writes the rotated token and the refresh time). A dead
    grant turns the account needs_reconnect there; anything else is retried by tomorrow's pass."""
    broker.forget(account.account)
    try:
        await broker.access_token(account.account)
    except Exception as exc:  # one account's failure must not stop the pass
        log.warning("keep-alive refresh failed for account %s: %s", account.account, type(exc).__name__)
        await services.journal.record(account.account, JournalEntry(
            "keepalive", "error", stage="refresh", error_class=type(exc).__name__))
        return False
    await services.journal.record(account.account, JournalEntry("keepalive", "ok", stage="refresh"))
    return True
