"""Short-lived sealed tokens (connect links, connect results): encrypted and authenticated, stateless.

What they carry (the SaaS's external reference, its return URL, account ids) travels in URLs, so in
browser history, proxies and referrers: it must not be readable there. Each token is AES-256-GCM
under a key derived with HKDF-SHA256 from CONNECT_SIGNING_KEY and the token's purpose, with the
purpose as associated data too, so a token minted for one purpose cannot be opened as another.

Format: ``st1.`` + base64url(12-byte random nonce + ciphertext + 16-byte tag), the plaintext a JSON
object of the claims with ``iat`` and ``exp``. The ``st1.`` prefix lets the log redaction recognise
one (shared/redaction.py) and leaves room for a later format.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.errors import InvalidToken

PREFIX = "st1."
MAX_TOKEN_LENGTH = 8192
_NONCE_BYTES = 12


@lru_cache(maxsize=16)
def _key(secret: bytes, purpose: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=f"outlook-sync connect token v1 {purpose}".encode()).derive(secret)
    return AESGCM(derived)


def seal_token(secret: bytes, purpose: str, claims: Mapping[str, Any], *, now: float, ttl_seconds: int) -> str:
    payload = json.dumps({**claims, "iat": int(now), "exp": int(now + ttl_seconds)}, separators=(",", ":"))
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + _key(secret, purpose).encrypt(nonce, payload.encode(), purpose.encode())
    return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def open_token(secret: bytes, purpose: str, token: str, *, now: float) -> dict[str, Any]:
    """The claims of a valid token for ``purpose``.

    :raises InvalidToken: malformed, tampered, for another purpose or key, or expired (``expired`` tells)."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        raise InvalidToken("the token is missing or malformed")
    body = token[len(PREFIX):]
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("the token is missing or malformed") from None
    if len(sealed) <= _NONCE_BYTES + 16:
        raise InvalidToken("the token is missing or malformed")
    try:
        plain = _key(secret, purpose).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], purpose.encode())
    except InvalidTag:
        raise InvalidToken("the token is not valid") from None
    claims: dict[str, Any] = json.loads(plain)
    if claims["exp"] <= now:
        raise InvalidToken("the token has expired", expired=True)
    return claims
