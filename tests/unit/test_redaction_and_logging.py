"""No token, code or secret reaches a log line; context travels with every line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.ops.logging import install_redaction, log_context
from shared.redaction import REDACTED, redact, register_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
REFRESH = "1.AXoAabcdefghijklmnopqrstuvwxyz0123456789-_ABCDEF.AgABAAEAAAD"


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {JWT}",
    f"token response {{'access_token': '{JWT}', 'refresh_token': '{REFRESH}'}}",
    f"GET /api/oauth/callback?code={REFRESH}&state=abc",
    "redeemed code=0.ARwAplainopaquecodevalue123456&session_state=x",
    'posted {"client_secret": "s3cr3t-value-123"}',
    "client_secret=s3cr3t-value-123&grant_type=refresh_token",
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abcDEF123==;",
    f"raw id token {JWT}",
    "GET /api/oauth/callback?code=plain-opaque-code-XYZ&state=abc",
    "code=plain-opaque-code-XYZ&state=abc",
    "PUT https://acct.queue.core.windows.net/q?sv=2024&sig=sasSignatureValue%3D&se=2026",
    "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=abcDEF123==",
    "GET /api/connect/st1.q3NvbWUtc2VhbGVkLWJ5dGVzLWhlcmUtX2FuZC1tb3Jl HTTP/1.1",
    "302 to https://saas.test/back?connect_result=st1.AbCdEfGhIjKlMnOpQrStUv_-0123&account=x",
])
def test_patterns_are_redacted(text):
    out = redact(text)
    for secret in (JWT, REFRESH, "0.ARwAplainopaquecodevalue123456", "s3cr3t-value-123", "abcDEF123==",
                   "plain-opaque-code-XYZ", "sasSignatureValue"):
        assert secret not in out
    assert REDACTED in out


def test_ordinary_text_and_ids_survive():
    text = "sync account=abcdefghijklmnopqrstuvwxyz stage=delta event AAMkAGI2TG93AAA= status 429 code"
    assert redact(text) == text


@pytest.mark.parametrize("text", [
    "Graph answered 410 (status=410, code=syncStateNotFound, request-id=4f2e1c0a-1111-2222-3333-444455556666)",
    'body {"error": {"code": "MailboxConcurrency", "message": "Application is over its MailboxConcurrency limit."}}',
    "the host got status code: 503 from the queue",
    "journal acct1 delta error code=ErrorItemNotFound",
    "the sig field of the manifest, the token count, a secret handshake",
])
def test_diagnostics_survive_redaction(text):
    """Review finding 9: Graph's error codes and ordinary words are not secrets."""
    assert redact(text) == text


def test_registered_secrets_are_replaced_anywhere():
    register_secret("plain-words-secret-value")
    assert "plain-words-secret-value" not in redact("oops plain-words-secret-value leaked")


def test_log_records_are_redacted_and_carry_context(caplog):
    install_redaction()
    logger = logging.getLogger("shared.test")
    with caplog.at_level(logging.INFO, logger="shared.test"), log_context(account="acct1", stage="delta"):
        logger.info("refreshed with %s", REFRESH)
        try:
            raise RuntimeError(f"failed with {JWT}")
        except RuntimeError:
            logger.exception("boom")
    text = caplog.text
    assert REFRESH not in text
    assert JWT not in text
    assert "[account=acct1 stage=delta]" in text
    assert caplog.records[0].account == "acct1"


async def test_context_is_isolated_between_tasks(caplog):
    install_redaction()
    logger = logging.getLogger("shared.test")

    async def work(account: str) -> None:
        with log_context(account=account):
            await asyncio.sleep(0.01)
            logger.info("working")

    with caplog.at_level(logging.INFO, logger="shared.test"):
        await asyncio.gather(work("a1"), work("a2"))
    assert sorted(r.getMessage() for r in caplog.records) == ["working [account=a1]", "working [account=a2]"]


def test_unknown_context_field_is_refused():
    with pytest.raises(ValueError, match="unknown log context"), log_context(token="x"):
        pass


def test_a_failing_redaction_withholds_the_line(monkeypatch, caplog):
    import shared.ops.logging as logging_module

    install_redaction()

    def broken(text: str) -> str:
        raise ImportError("sys.meta_path is None, Python is likely shutting down")

    monkeypatch.setattr(logging_module, "redact", broken)
    with caplog.at_level(logging.INFO, logger="shared.test"):
        logging.getLogger("shared.test").info("token %s", JWT)
    assert JWT not in caplog.text
    assert "withheld" in caplog.text
