"""The sign-in and token-storage interfaces the product codes against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.accounts.model import Identity


@dataclass(frozen=True)
class AuthStart:
    """A started auth-code flow: where to send the browser, and the flow to keep server side (it
    holds the PKCE verifier and nonce)."""

    auth_uri: str = field(repr=False)
    state: str
    flow: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """A redeemed code: who signed in, what was granted, and what refreshing needs."""

    identity: Identity
    scopes: tuple[str, ...]
    access_token: str = field(repr=False)
    expires_at: float = 0.0
    token_state: str = field(default="", repr=False)  # what msal needs to refresh; goes to the vault only


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: float
    #: the refreshed token state when msal rotated the refresh token, else None
    token_state: str | None = field(default=None, repr=False)


class IdentityProvider(Protocol):
    async def start(self, redirect_uri: str, *, login_hint: str | None = None) -> AuthStart:
        """Begin msal's auth-code flow with state, nonce and PKCE for the configured scopes."""
        ...

    async def redeem(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> Grant:
        """Redeem the code the browser brought back.

        :raises AccountAuthError: the IdP refused this user's code or consent.
        :raises AppAuthError: the IdP refused the application's credential.
        :raises InvalidToken: the response does not belong to the flow (state or nonce)."""
        ...

    async def refresh(self, token_state: str, *, claims_challenge: str | None = None) -> AccessToken:
        """An access token for Graph from the stored token state.

        :raises AccountAuthError: the grant is dead (expired, revoked, consent withdrawn, interaction needed).
        :raises AppAuthError: the application's credential is refused."""
        ...


@dataclass(frozen=True)
class StoredSecret:
    value: str = field(repr=False)
    updated_on: float
    expires_on: float | None


class TokenVault(Protocol):
    """One secret per account connection (Key Vault in Azure)."""

    async def put(self, name: str, value: str, *, tags: Mapping[str, str], expires_on: float | None) -> None:
        ...

    async def get(self, name: str) -> StoredSecret | None:
        """The latest value, or None when absent, deleted or expired."""
        ...

    async def clear_expiry(self, name: str) -> None:
        """Make a pending connection's secret permanent."""
        ...

    async def delete(self, name: str) -> None:
        """Delete (soft delete in Key Vault); absent is fine."""
        ...


@dataclass(frozen=True)
class Profile:
    display_name: str
    mailbox: str
    username: str


class MailboxDirectory(Protocol):
    async def profile(self, access_token: str) -> Profile:
        """The signed-in user's profile, after checking the mailbox can be synced.

        :raises MailboxUnsupported: the mailbox is not reachable through Graph (on-premises, not enabled)."""
        ...
