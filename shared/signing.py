"""Short-lived signed tokens (connect links, connect results): HS256 JWTs under CONNECT_SIGNING_KEY.

The audience names the purpose, so a token minted for one purpose is refused for another. They are
JWTs on purpose: the log redaction recognises the shape, so one never lands in a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from shared.errors import InvalidToken

_ALGORITHM = "HS256"


def sign_token(key: bytes, purpose: str, claims: Mapping[str, Any], *, now: float, ttl_seconds: int) -> str:
    payload = {**claims, "aud": purpose, "iat": int(now), "exp": int(now + ttl_seconds)}
    return jwt.encode(payload, key, algorithm=_ALGORITHM)


def read_token(key: bytes, purpose: str, token: str, *, now: float) -> dict[str, Any]:
    """The claims of a valid token for ``purpose``.

    :raises InvalidToken: malformed, tampered, for another purpose, or expired (``expired`` tells)."""
    if not token or len(token) > 4096:
        raise InvalidToken("the token is missing or malformed")
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[_ALGORITHM], audience=purpose,
                                            options={"verify_exp": False, "require": ["exp", "aud"]})
    except jwt.InvalidTokenError:
        raise InvalidToken("the token is not valid") from None
    if claims["exp"] <= now:
        raise InvalidToken("the token has expired", expired=True)
    return claims
