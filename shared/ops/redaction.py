"""Scrub secrets out of text before it reaches a log line, the journal or an exception text.

Defence in depth: code never logs tokens, codes or secrets on purpose; this catches the accident
(an SDK's debug line, an exception that quotes a URL with ``code=``). Known secret values (the
client secret, signing keys) are registered when settings load and replaced wherever they appear.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON Web Tokens (access and id tokens, signed result tokens).
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Entra ID refresh tokens and authorization codes ("0.A…", "1.A…").
    (re.compile(r"(?<![A-Za-z0-9._-])[01]\.A[A-Za-z0-9_-]{16,}[A-Za-z0-9._*!-]*"), REDACTED),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # name=value and "name": "value" pairs whose value is sensitive (query strings, forms, JSON).
    (re.compile(
        r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|client_assertion|code_verifier|"
        r"code|password|clientstate|validationtoken|accountkey|sig|secret|token)"
        r"\b[\"']?\s*[=:]\s*[\"']?)([^\"'&\s,;}]+)"), r"\1" + REDACTED),
)

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | bytes | None) -> None:
    """Replace this exact value wherever it appears from now on (values under 8 characters are too
    likely to collide with ordinary text to be worth it)."""
    if value is None:
        return
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if len(text) >= 8:
        with _lock:
            _known_secrets.add(text)


def redact(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
