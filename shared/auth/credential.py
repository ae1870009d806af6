"""Access tokens for Graph, per account: kept in process memory, refreshed through the
IdentityProvider from the token state in the vault, one refresh at a time per account within an
instance, with claims challenges (Continuous Access Evaluation) passed through.

Which statuses may get a token at all is the status matrix's ``token_use``: active and degraded accounts
for everything; unsupported and disconnected ones only for cleanup (deleting their subscriptions, which the
matrix says must go); pending and needs_reconnect ones never.

A dead grant turns the account ``needs_reconnect``, but only while the connection whose grant died is
still the live one: a reconnect confirmed during the refresh is not undone, and the refresh is tried again
with the new connection. A refused application credential raises the app alarm. Both errors are raised on
to the caller, which lets its message fail or drops it as the error's disposition says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken as AzureAccessToken

from shared.accounts.model import Account, TokenUse, secret_tags
from shared.accounts.repository import AccountRepository
from shared.accounts.status import clear_app_alarm, mark_needs_reconnect, raise_app_alarm
from shared.auth.ports import AccessToken, IdentityProvider, TokenVault
from shared.context import Services
from shared.errors import AccountAuthError, AppAuthError, StorageConflict
from shared.store.ports import ACCOUNTS, Row

# Refresh this long before an access token expires, so a long request never carries a stale one.
EXPIRY_MARGIN_SECONDS = 300


@dataclass
class TokenBroker:
    services: Services
    identity: IdentityProvider
    vault: TokenVault
    _tokens: dict[str, AccessToken] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def credential(self, account: str, *, cleanup: bool = False) -> AccountCredential:
        """A credential for msgraph-sdk; ``cleanup`` also serves accounts whose status allows a token only
        to delete what they left at Graph."""
        return AccountCredential(self, account, cleanup=cleanup)

    def forget(self, account: str) -> None:
        self._tokens.pop(account, None)

    async def access_token(self, account_id: str, *, claims: str | None = None, cleanup: bool = False) -> AccessToken:
        cached = self._fresh(account_id, claims)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            # Concurrent callers wait here and reuse the token the first one fetched.
            cached = self._fresh(account_id, claims)
            if cached is not None:
                return cached
            token = await self._refresh(account_id, claims, cleanup)
            self._tokens[account_id] = token
            return token

    def _fresh(self, account_id: str, claims: str | None) -> AccessToken | None:
        token = self._tokens.get(account_id)
        if claims is None and token is not None and token.expires_at - EXPIRY_MARGIN_SECONDS > self.services.clock():
            return token
        return None

    async def _refresh(self, account_id: str, claims: str | None, cleanup: bool) -> AccessToken:
        repo = AccountRepository(self.services.tables)
        account = await repo.get(account_id)
        for _ in range(2):
            if account is None or not _may_use_token(account, cleanup):
                raise AccountAuthError("account_not_active")
            try:
                return await self._refresh_generation(account, claims)
            except AccountAuthError as exc:
                self.forget(account_id)
                if await mark_needs_reconnect(self.services, account_id, exc, generation=account.generation):
                    raise
                current = await repo.get(account_id)
                if current is None or current.generation == account.generation:
                    raise  # not a live status (cleanup, or already needs_reconnect): nothing to change
                account = current  # reconnected meanwhile: the new connection's grant is the one to use
        raise StorageConflict(f"account {account_id} was reconnected twice during one token refresh; retry")

    async def _refresh_generation(self, account: Account, claims: str | None) -> AccessToken:
        secret = await self.vault.get(account.secret_name)
        try:
            if secret is None:
                raise AccountAuthError("token_state_missing")
            token = await self.identity.refresh(secret.value, claims_challenge=claims)
        except AppAuthError as exc:
            await raise_app_alarm(self.services, exc)
            raise
        # The application's credential just worked: an alarm any process raised is over (one point read).
        await clear_app_alarm(self.services)
        now = self.services.clock()
        write_age = self.services.settings.token_write_age_hours * 3600
        if token.token_state is not None and now - secret.updated_on >= write_age:
            # A rotated refresh token is written only when the stored one is old enough: the previous
            # one stays valid, and a busy mailbox would otherwise write a secret version per hour.
            await self.vault.put(account.secret_name, token.token_state, expires_on=None,
                                 tags=secret_tags(account.account, account.generation, account.identity))
        await self.services.tables.merge(ACCOUNTS, Row(account.account, "", {"last_token_refresh": now}))
        return token


def _may_use_token(account: Account, cleanup: bool) -> bool:
    use = account.rules.token_use
    return use is TokenUse.FULL or (cleanup and use is TokenUse.CLEANUP)


class AccountCredential:
    """An azure-core async credential for one account, handed to msgraph-sdk."""

    def __init__(self, broker: TokenBroker, account: str, *, cleanup: bool = False) -> None:
        self._broker = broker
        self._account = account
        self._cleanup = cleanup

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AzureAccessToken:
        token = await self._broker.access_token(self._account, claims=claims, cleanup=self._cleanup)
        return AzureAccessToken(token.token, int(token.expires_at))

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AccountCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
