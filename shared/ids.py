"""Short opaque identifiers.

An account id is 16 random bytes in lowercase base32 without padding: 26 characters of ``a-z2-7``,
safe in routes, queue messages, table keys and clientState, and revealing nothing about the tenant
or the user.
"""

from __future__ import annotations

import base64
import re
import secrets

ACCOUNT_ID_LENGTH = 26
_ACCOUNT_ID = re.compile(r"[a-z2-7]{26}")


def new_account_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def is_account_id(value: object) -> bool:
    return isinstance(value, str) and _ACCOUNT_ID.fullmatch(value) is not None


def new_opaque_id(nbytes: int = 16) -> str:
    """A random url-safe id for sessions, flows and the like."""
    return secrets.token_urlsafe(nbytes)
