"""Graph status codes and error codes to the project's errors, in one function (house style)."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import (
    GraphError,
    GraphRequestRejected,
    MailboxUnsupported,
    NotFound,
    ResyncRequired,
    Throttled,
    TransientGraphError,
)

# Error codes that mean the mailbox cannot be synced through Graph at all ("Microsoft Graph error responses",
# https://learn.microsoft.com/en-us/graph/errors, and the codes Exchange Online returns for such mailboxes).
MAILBOX_UNSUPPORTED_CODES = {"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI",
                             "ErrorNonExistentMailbox", "ResourceNotFound.MailboxNotFound"}
# Delta tokens that died ("Use delta query to track changes in Microsoft Graph data",
# https://learn.microsoft.com/en-us/graph/delta-query-overview); compared case-insensitively.
# A 403 with ErrorAccessDenied whose message names one of these is the tenant shutting the app out of the
# mailbox (an application access policy, or REST access disabled for the mailbox): nothing an account's
# user can fix by reconnecting ("Limiting application permissions to specific Exchange Online mailboxes",
# https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access).
ACCESS_POLICY_MARKERS = ("access policy", "accesspolicy", "access to odata is disabled")
RESYNC_CODES = {"syncstatenotfound", "resyncrequired", "invaliddeltatoken", "syncstateinvalid"}


def graph_error(status: int | None, code: str | None, *, headers: Mapping[str, str] | None = None,
                request_id: str | None = None, client_request_id: str | None = None,
                message: str | None = None) -> GraphError:
    """The project's error for a Graph answer. ``message`` (Graph's error message) only classifies; it is
    never copied into the error's text."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    request_id = request_id or lowered.get("request-id")
    client_request_id = client_request_id or lowered.get("client-request-id")

    def make(cls: type[GraphError], message: str) -> GraphError:
        return cls(message, status=status, code=code, request_id=request_id, client_request_id=client_request_id)

    retry_after = _seconds(lowered.get("retry-after"))
    if code in MAILBOX_UNSUPPORTED_CODES:
        return make(MailboxUnsupported, "the mailbox cannot be reached through Graph")
    if status == 403 and code == "ErrorAccessDenied" and \
            any(marker in (message or "").lower() for marker in ACCESS_POLICY_MARKERS):
        return make(MailboxUnsupported, "the tenant's access policy keeps the app out of this mailbox")
    if status == 410 or (code or "").lower() in RESYNC_CODES:
        return make(ResyncRequired, "the delta token is no longer valid")
    if status == 429 or (status in (503, 504) and retry_after is not None):
        return Throttled("Graph throttled the request", retry_after=retry_after, status=status, code=code,
                         request_id=request_id, client_request_id=client_request_id)
    if status is None or status >= 500:
        return make(TransientGraphError, "Graph failed to answer")
    if status == 404:
        return make(NotFound, "not found at Graph")
    if status == 401:
        # A fresh token refused: the credential refreshes and the caller retries; not a dead grant.
        return make(TransientGraphError, "Graph refused the access token")
    return make(GraphRequestRejected, "Graph rejected the request")


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
