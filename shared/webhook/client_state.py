"""clientState: who a notification is for, verifiable with no storage read (docs/architecture.md,
"Notifications and subscriptions").

``v1.{account}.{key id}.{generation}.{mac}``: the account id, the id of the key that signed it, the
subscription generation, and an HMAC-SHA256 truncated to 128 bits over those and the tenant id. The
tenant is not in the string: a notification's ``tenantId`` must be the one the MAC was made for, so a
valid clientState replayed with another tenant's id fails. About 70 characters, under Graph's 128.
Keys rotate by staging: a new key goes first in CLIENT_STATE_KEYS, the old one stays accepted until
every subscription has been recreated under the new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from shared.config import ClientStateKey
from shared.ids import is_account_id

PREFIX = "v1"
MAX_LENGTH = 128
_MAC_BYTES = 16


@dataclass(frozen=True)
class ClientState:
    account: str
    key_id: str
    generation: int


def _mac(key: bytes, account: str, key_id: str, generation: int, tenant: str) -> str:
    message = f"{PREFIX}|{account}|{key_id}|{generation}|{tenant.lower()}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_client_state(key: ClientStateKey, account: str, generation: int, tenant: str) -> str:
    value = f"{PREFIX}.{account}.{key.key_id}.{generation}.{_mac(key.key, account, key.key_id, generation, tenant)}"
    assert len(value) <= MAX_LENGTH
    return value


def verify_client_state(value: object, tenant: object, keys: Sequence[ClientStateKey]) -> ClientState | None:
    """The claims of a genuine clientState for ``tenant``, or None (forged, retired key, other tenant,
    malformed). Constant-time comparison of the MAC."""
    if not isinstance(value, str) or not isinstance(tenant, str) or len(value) > MAX_LENGTH:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        return None
    _, account, key_id, generation_text, mac = parts
    if not is_account_id(account) or not generation_text.isdigit() or len(generation_text) > 9:
        return None
    key = next((k for k in keys if k.key_id == key_id), None)
    if key is None:
        return None
    generation = int(generation_text)
    expected = _mac(key.key, account, key_id, generation, tenant)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    return ClientState(account, key_id, generation)
