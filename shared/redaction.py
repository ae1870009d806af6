"""Scrub secrets out of text before it reaches a log line, the journal or an exception text.

Defence in depth: code never logs tokens, codes or secrets on purpose; this catches the accident
(an SDK's debug line, an exception that quotes a URL with ``code=``). Known secret values (the
client secret, signing keys) are registered when settings load and replaced wherever they appear.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"

# What is redacted: secrets by their shape, registered secret values, and the values of names that always
# hold a secret. Never ordinary words: "status code: 503" and "code=syncStateNotFound" (Graph's error
# codes, which a support engineer needs) stay readable.
_ALWAYS_SECRET_NAMES = (
    "access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "code_verifier",
    "password", "clientstate", "validationtoken", "accountkey", "sharedaccesskey",
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON Web Tokens (access and id tokens).
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # The product's sealed connect tokens (shared/sealed.py).
    (re.compile(r"\bst1\.[A-Za-z0-9_-]{16,}"), REDACTED),
    # Entra ID refresh tokens and authorization codes ("0.A…", "1.A…").
    (re.compile(r"(?<![A-Za-z0-9._-])[01]\.A[A-Za-z0-9_-]{16,}[A-Za-z0-9._*!-]*"), REDACTED),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # name=value, name: value and "name": "value" (query strings, forms, JSON, connection strings).
    (re.compile(r"(?i)(\b(?:" + "|".join(_ALWAYS_SECRET_NAMES) + r")\b[\"']?\s*[=:]\s*[\"']?)([^\"'&\s,;}]+)"),
     r"\1" + REDACTED),
    # An OAuth authorization code and a SAS signature, as URL or form parameters only (after ?, & or at the
    # start of a form body): elsewhere "code" is Graph's error code, and "sig" just a word.
    (re.compile(r"(?im)((?:^|[?&])(?:code|sig)=)([^&\s\"']+)"), r"\1" + REDACTED),
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
