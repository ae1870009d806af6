"""The project's error taxonomy.

Code raises these; triggers map them to retries, HTTP statuses and account statuses (see
``disposition``). Messages carry ids, names and status codes only: never a token, code, secret or
request body, because exception texts end up in logs and in the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class SyncError(Exception):
    """Base of every error the project raises on purpose."""

    #: Whether retrying the same work later can succeed.
    retryable: bool = False


# --- configuration and input ---------------------------------------------------------------------


class ConfigError(SyncError):
    """Settings are missing or malformed. Raised on first use of the settings; the app cannot work
    until an operator fixes them, so callers let it propagate (health reports it)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings: " + "; ".join(self.problems))


class BadMessage(SyncError):
    """A queue message that is not valid JSON, or has an unknown kind or version, or misses a field.
    The trigger lets it fail, so the host retries it into the poison queue where it is kept."""


class InvalidToken(SyncError):
    """A connect link, result token or OAuth state that is malformed, tampered, replayed or expired.
    Answered with a 4xx page or body; nothing changes."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


# --- authentication ------------------------------------------------------------------------------


class AccountAuthError(SyncError):
    """One account's grant no longer works (invalid_grant variants, interaction_required, consent
    withdrawn). The account turns ``needs_reconnect``; retrying cannot help."""

    def __init__(self, reason: str, *, aad_code: str | None = None) -> None:
        self.reason = reason
        self.aad_code = aad_code
        super().__init__(f"account grant unusable: {reason}" + (f" ({aad_code})" if aad_code else ""))


class AppAuthError(SyncError):
    """The application itself cannot authenticate (invalid_client, expired client secret,
    unknown application). One application alarm, never a per-account status; retried later."""

    retryable = True

    def __init__(self, reason: str, *, aad_code: str | None = None) -> None:
        self.reason = reason
        self.aad_code = aad_code
        super().__init__(f"application credential rejected: {reason}" + (f" ({aad_code})" if aad_code else ""))


class IdentityUnavailable(SyncError):
    """Entra ID could not be reached or answered with a server-side error: retry later; no status
    changes because of it."""

    retryable = True


# --- Microsoft Graph -----------------------------------------------------------------------------


class GraphError(SyncError):
    """A Graph request failed. Carries the status, Graph's error code and the request ids that
    Microsoft support asks for."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, client_request_id: str | None = None) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id
        details = ", ".join(f"{k}={v}" for k, v in
                            (("status", status), ("code", code), ("request-id", request_id)) if v)
        super().__init__(f"{message} ({details})" if details else message)


class Throttled(GraphError):
    """429, or 503 with Retry-After: retry the same request after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, status: int | None = None,
                 code: str | None = None, request_id: str | None = None,
                 client_request_id: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, request_id=request_id,
                         client_request_id=client_request_id)


class TransientGraphError(GraphError):
    """5xx without guidance, timeouts, connection resets: retry with backoff."""

    retryable = True


class NotFound(GraphError):
    """404: the item is gone (an event, a subscription). Callers decide what that means."""


class ResyncRequired(GraphError):
    """410 Gone, syncStateNotFound, resyncRequired, InvalidDeltaToken: the delta token is dead;
    start a full round."""


class MailboxUnsupported(GraphError):
    """Permanent mailbox errors (MailboxNotEnabledForRESTAPI, user deleted, on-premises mailbox):
    the account turns ``unsupported``; reconnecting cannot fix it."""


class GraphRequestRejected(GraphError):
    """Any other 4xx: the request itself is wrong. Not retried; journaled for a developer."""


# --- storage -------------------------------------------------------------------------------------


class StorageConflict(SyncError):
    """A conditional write lost: the ETag no longer matches (412) or the row already exists (409).
    The caller reloads and decides again; another worker got there first."""

    retryable = True


class RowExists(StorageConflict):
    """The conflict was an insert of a row that already exists (409), not a stale ETag (412)."""


class RowNotFound(SyncError):
    """A conditional update or delete named a row that does not exist (anymore)."""


class TransactionTooLarge(SyncError):
    """An atomic table transaction would exceed 100 entities or 4 MiB, spans partitions, or writes
    one row twice with an ETag condition. It is refused, never silently split; the caller must
    size its transaction."""


class EntityTooLarge(SyncError):
    """A single entity or string property exceeds Table Storage's limits (1 MiB / 64 KiB)."""


# --- what a trigger does with an error -----------------------------------------------------------


class Disposition(Enum):
    RETRY = "retry"            # let the message fail: the host retries it after visibilityTimeout
    DROP = "drop"              # nothing more to do for this message (journaled)
    NEEDS_RECONNECT = "needs_reconnect"
    UNSUPPORTED = "unsupported"
    APP_ALARM = "app_alarm"
    POISON = "poison"          # will never succeed: fail it to the poison queue


@dataclass(frozen=True)
class Outcome:
    disposition: Disposition
    retry_after: float | None = None


def disposition(error: BaseException) -> Outcome:
    """Map an error to what the caller does with it. Unknown exceptions are retried (and end in
    the poison queue if they keep failing), never swallowed."""
    if isinstance(error, Throttled):
        return Outcome(Disposition.RETRY, error.retry_after)
    if isinstance(error, AccountAuthError):
        return Outcome(Disposition.NEEDS_RECONNECT)
    if isinstance(error, AppAuthError):
        return Outcome(Disposition.APP_ALARM)
    if isinstance(error, MailboxUnsupported):
        return Outcome(Disposition.UNSUPPORTED)
    if isinstance(error, BadMessage | TransactionTooLarge | EntityTooLarge | GraphRequestRejected):
        return Outcome(Disposition.POISON)
    if isinstance(error, NotFound):
        return Outcome(Disposition.DROP)
    return Outcome(Disposition.RETRY)
