from __future__ import annotations

import pytest

from shared.errors import (
    AccountAuthError,
    AppAuthError,
    BadMessage,
    Disposition,
    GraphRequestRejected,
    MailboxUnsupported,
    NotFound,
    ResyncRequired,
    StorageConflict,
    Throttled,
    TransactionTooLarge,
    TransientGraphError,
    disposition,
)


@pytest.mark.parametrize(("error", "expected"), [
    (Throttled("slow down", retry_after=12.0, status=429), Disposition.RETRY),
    (TransientGraphError("bad gateway", status=502), Disposition.RETRY),
    (StorageConflict("etag"), Disposition.RETRY),
    (ResyncRequired("gone", status=410, code="SyncStateNotFound"), Disposition.RETRY),
    (AccountAuthError("invalid_grant", aad_code="AADSTS700082"), Disposition.NEEDS_RECONNECT),
    (AppAuthError("invalid_client", aad_code="AADSTS7000222"), Disposition.APP_ALARM),
    (MailboxUnsupported("MailboxNotEnabledForRESTAPI", status=404), Disposition.UNSUPPORTED),
    (BadMessage("bad"), Disposition.POISON),
    (TransactionTooLarge("big"), Disposition.POISON),
    (GraphRequestRejected("bad request", status=400), Disposition.POISON),
    (NotFound("gone", status=404), Disposition.DROP),
    (RuntimeError("unexpected"), Disposition.RETRY),
])
def test_dispositions(error, expected):
    assert disposition(error).disposition is expected


def test_throttled_carries_retry_after_and_request_ids():
    error = Throttled("throttled", retry_after=7.5, status=429, code="TooManyRequests", request_id="rid-1")
    assert disposition(error).retry_after == 7.5
    assert "request-id=rid-1" in str(error)
    assert error.retryable
