"""Accounts: one connected mailbox each, its status, and its connection generations.

The status matrix (docs/architecture.md, "Account statuses") lives here, once, as data: what each
status does to notifications, inbound sync, the subscription and outbound writes. Every other module
asks this table instead of comparing status names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.store.ports import Row


class Status(StrEnum):
    PENDING = "pending"                  # connected, not yet confirmed by the SaaS: nothing runs
    ACTIVE = "active"
    DEGRADED = "degraded"                # reason breaker or poison
    NEEDS_RECONNECT = "needs_reconnect"  # the grant is dead: the user must connect again
    UNSUPPORTED = "unsupported"          # the mailbox cannot be synced (reconnecting cannot fix it)
    DISCONNECTED = "disconnected"        # terminal: connecting that mailbox again makes a new account


class SubscriptionPolicy(StrEnum):
    NONE = "none"            # never created
    KEEP = "keep"
    LET_EXPIRE = "let_expire"
    DELETE = "delete"


class TokenUse(StrEnum):
    NONE = "none"          # no access token at all
    CLEANUP = "cleanup"    # only to delete what the account left at Graph (its subscriptions)
    FULL = "full"          # sync, writes, subscriptions


@dataclass(frozen=True)
class StatusRules:
    accepts_notifications: bool
    runs_inbound_sync: bool
    subscription: SubscriptionPolicy
    runs_outbound: bool
    cleared_by: str
    token_use: TokenUse


# A subscription the matrix deletes needs a token to delete it, hence CLEANUP for unsupported and
# disconnected; needs_reconnect has no working grant, so its subscription is left to expire.
STATUS_MATRIX: dict[Status, StatusRules] = {
    Status.PENDING: StatusRules(False, False, SubscriptionPolicy.NONE, False, "the SaaS's confirm", TokenUse.NONE),
    Status.ACTIVE: StatusRules(True, True, SubscriptionPolicy.KEEP, True, "-", TokenUse.FULL),
    # Degraded keeps running; what a `breaker` or `poison` reason pauses is decided by the sync engine.
    Status.DEGRADED: StatusRules(True, True, SubscriptionPolicy.KEEP, True,
                                 "a confirming full round, an operator's replay or discard", TokenUse.FULL),
    Status.NEEDS_RECONNECT: StatusRules(False, False, SubscriptionPolicy.LET_EXPIRE, False,
                                        "a reconnect confirmed by the SaaS", TokenUse.NONE),
    Status.UNSUPPORTED: StatusRules(False, False, SubscriptionPolicy.DELETE, False, "an operator's re-check",
                                    TokenUse.CLEANUP),
    Status.DISCONNECTED: StatusRules(False, False, SubscriptionPolicy.DELETE, False, "- (terminal)",
                                     TokenUse.CLEANUP),
}

ACCOUNT_ROW = ""
GENERATION_PREFIX = "gen:"


def generation_row_key(generation: int) -> str:
    return f"{GENERATION_PREFIX}{generation:06d}"


def secret_name(account: str, generation: int) -> str:
    """Key Vault secret of one connection generation. A new generation never reuses a name, so a
    reconnect after a disconnect never meets a soft-deleted secret."""
    return f"acct-{account}-g{generation}"


@dataclass(frozen=True)
class Identity:
    """Who signed in, as Entra ID and Graph report it."""

    tenant: str
    user: str               # the user's object id (oid)
    username: str           # preferred_username / userPrincipalName
    display_name: str = ""
    mailbox: str = ""       # primary SMTP address, when Graph gives one


def secret_tags(account: str, generation: int, identity: Identity) -> dict[str, str]:
    """The Key Vault tags of a connection's secret: whose it is, findable without reading it."""
    return {"account": account, "generation": str(generation), "tenant": identity.tenant, "user": identity.user}


@dataclass(frozen=True)
class Account:
    account: str
    identity: Identity
    status: Status
    generation: int
    scopes: tuple[str, ...] = ()
    consented_at: float = 0.0
    external_ref: str | None = None
    reason: str | None = None
    status_changed_at: float = 0.0
    last_token_refresh: float | None = None
    token_days_left: int | None = None       # before the refresh token's inactivity limit, as the reconciler saw it
    purge_requested_at: float | None = None  # personal data scrubbed; rows being deleted
    purged_at: float | None = None           # every row of the account deleted
    etag: str | None = field(default=None, compare=False)

    @property
    def rules(self) -> StatusRules:
        return STATUS_MATRIX[self.status]

    @property
    def secret_name(self) -> str:
        return secret_name(self.account, self.generation)

    def to_row(self) -> Row:
        return Row(self.account, ACCOUNT_ROW, {
            **_identity_data(self.identity),
            "status": self.status.value, "reason": self.reason, "generation": self.generation,
            "scopes": " ".join(self.scopes), "consented_at": self.consented_at,
            "external_ref": self.external_ref, "status_changed_at": self.status_changed_at,
            "last_token_refresh": self.last_token_refresh, "token_days_left": self.token_days_left,
            "purge_requested_at": self.purge_requested_at, "purged_at": self.purged_at,
        }, self.etag)

    @classmethod
    def from_row(cls, row: Row) -> Account:
        return cls(
            account=row.partition, identity=_identity(row), status=Status(row.get("status")),
            generation=int(row.get("generation", 0)), scopes=tuple(str(row.get("scopes", "")).split()),
            consented_at=float(row.get("consented_at", 0.0)), external_ref=row.get("external_ref"),
            reason=row.get("reason"), status_changed_at=float(row.get("status_changed_at", 0.0)),
            last_token_refresh=row.get("last_token_refresh"), token_days_left=row.get("token_days_left"),
            purge_requested_at=row.get("purge_requested_at"), purged_at=row.get("purged_at"), etag=row.etag)


@dataclass(frozen=True)
class PendingGeneration:
    """A new connection for a mailbox, waiting for the SaaS's confirm beside the live account."""

    account: str
    generation: int
    identity: Identity
    scopes: tuple[str, ...]
    consented_at: float
    external_ref: str          # the reference of the connect session that produced it
    expires_at: float
    etag: str | None = field(default=None, compare=False)

    @property
    def secret_name(self) -> str:
        return secret_name(self.account, self.generation)

    def to_row(self) -> Row:
        return Row(self.account, generation_row_key(self.generation), {
            **_identity_data(self.identity), "generation": self.generation, "scopes": " ".join(self.scopes),
            "consented_at": self.consented_at, "external_ref": self.external_ref, "expires_at": self.expires_at,
        }, self.etag)

    @classmethod
    def from_row(cls, row: Row) -> PendingGeneration:
        return cls(account=row.partition, generation=int(row.get("generation")), identity=_identity(row),
                   scopes=tuple(str(row.get("scopes", "")).split()), consented_at=float(row.get("consented_at")),
                   external_ref=str(row.get("external_ref")), expires_at=float(row.get("expires_at")),
                   etag=row.etag)


def _identity_data(identity: Identity) -> dict[str, Any]:
    return {"tenant": identity.tenant, "user": identity.user, "username": identity.username,
            "display_name": identity.display_name, "mailbox": identity.mailbox}


def _identity(row: Row) -> Identity:
    return Identity(tenant=str(row.get("tenant")), user=str(row.get("user")), username=str(row.get("username", "")),
                    display_name=str(row.get("display_name", "")), mailbox=str(row.get("mailbox", "")))
