"""Access tokens for Graph, per account: kept in process memory, refreshed through the
IdentityProvider from the token state in the vault, one refresh at a time per account within an
instance, with claims challenges (Continuous Access Evaluation) passed through.

A dead grant turns the account ``needs_reconnect``; a refused application credential raises the app
alarm. Both are raised on to the caller, which lets its message fail or drops it as the error's
disposition says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken as AzureAccessToken

from shared.accounts.model import secret_tags
from shared.accounts.repository import AccountRepository
from shared.accounts.status import LIVE, mark_needs_reconnect, raise_app_alarm
from shared.auth.ports import AccessToken, IdentityProvider, TokenVault
from shared.errors import AccountAuthError, AppAuthError
from shared.services import Services
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

    def credential(self, account: str) -> AccountCredential:
        return AccountCredential(self, account)

    def forget(self, account: str) -> None:
        self._tokens.pop(account, None)

    async def access_token(self, account_id: str, *, claims: str | None = None) -> AccessToken:
        cached = self._fresh(account_id, claims)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            # Concurrent callers wait here and reuse the token the first one fetched.
            cached = self._fresh(account_id, claims)
            if cached is not None:
                return cached
            token = await self._refresh(account_id, claims)
            self._tokens[account_id] = token
            return token

    def _fresh(self, account_id: str, claims: str | None) -> AccessToken | None:
        token = self._tokens.get(account_id)
        if claims is None and token is not None and token.expires_at - EXPIRY_MARGIN_SECONDS > self.services.clock():
            return token
        return None

    async def _refresh(self, account_id: str, claims: str | None) -> AccessToken:
        account = await AccountRepository(self.services.tables).get(account_id)
        if account is None or account.status not in LIVE:
            raise AccountAuthError("account_not_active")
        secret = await self.vault.get(account.secret_name)
        try:
            if secret is None:
                raise AccountAuthError("token_state_missing")
            token = await self.identity.refresh(secret.value, claims_challenge=claims)
        except AccountAuthError as exc:
            self.forget(account_id)
            await mark_needs_reconnect(self.services, account_id, exc)
            raise
        except AppAuthError as exc:
            await raise_app_alarm(self.services, exc)
            raise
        now = self.services.clock()
        write_age = self.services.settings.token_write_age_hours * 3600
        if token.token_state is not None and now - secret.updated_on >= write_age:
            # A rotated refresh token is written only when the stored one is old enough: the previous
            # one stays valid, and a busy mailbox would otherwise write a secret version per hour.
            await self.vault.put(account.secret_name, token.token_state, expires_on=None,
                                 tags=secret_tags(account.account, account.generation, account.identity))
        await self.services.tables.merge(ACCOUNTS, Row(account.account, "", {"last_token_refresh": now}))
        return token


class AccountCredential:
    """An azure-core async credential for one account, handed to msgraph-sdk."""

    def __init__(self, broker: TokenBroker, account: str) -> None:
        self._broker = broker
        self._account = account

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AzureAccessToken:
        token = await self._broker.access_token(self._account, claims=claims)
        return AzureAccessToken(token.token, int(token.expires_at))

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AccountCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
