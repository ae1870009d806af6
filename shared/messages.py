"""Queue messages: small versioned JSON that carries ids only, never tokens or event bodies.

Every message has ``v`` (the version), ``kind`` and ``account``. ``read_message`` turns text into one
of the dataclasses below or raises ``BadMessage`` naming what is wrong, so a malformed message fails
loudly and the host retries it into the poison queue, where it is kept for an operator.

Fields this code does not know are ignored and counted, never refused: during a rolling deploy, instances
still running the previous release read messages that the new one wrote with a new optional field. An
unknown version, or a known field that is missing or mistyped, is still refused. So: a new field must be
optional with a default that means "as before", and anything else takes a new version.

Two envelope fields travel with any kind (shared/dispatch.py sets them when it re-sends a throttled
message): ``enqueued_at``, the epoch time the first copy was enqueued, and ``throttled``, how many times it
was re-sent because Graph asked to wait. Both are left out of the JSON while unset, and of equality, so
that a re-sent message is still the same message to coalescing and deduplication.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, get_args

from shared.config import CALLBACKS_QUEUE, OUTBOUND_QUEUE, SUBSCRIPTIONS_QUEUE, SYNC_QUEUE
from shared.errors import BadMessage
from shared.ids import is_account_id

VERSION = 1
log = logging.getLogger("shared.messages")

SyncReason = Literal["notification", "timer", "lifecycle", "connect", "continue", "manual", "breaker"]


@dataclass(frozen=True)
class Message:
    kind: ClassVar[str]
    queue: ClassVar[str]
    account: str
    enqueued_at: float | None = field(default=None, compare=False)
    throttled: int = field(default=0, compare=False)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k not in _ENVELOPE or v != _ENVELOPE[k]}
        return json.dumps({"v": VERSION, "kind": self.kind, **data}, separators=(",", ":"))


@dataclass(frozen=True)
class Sync(Message):
    """Run (a slice of) the account's delta round."""

    kind: ClassVar[str] = "sync"
    queue: ClassVar[str] = SYNC_QUEUE
    reason: SyncReason = "notification"
    full: bool = False


@dataclass(frozen=True)
class Subscribe(Message):
    """Make sure the account has its subscriptions (create what is missing)."""

    kind: ClassVar[str] = "subscribe"
    queue: ClassVar[str] = SUBSCRIPTIONS_QUEUE


@dataclass(frozen=True)
class Renew(Message):
    """Extend one subscription's expiry (recreate it when Graph answers 404)."""

    kind: ClassVar[str] = "renew"
    queue: ClassVar[str] = SUBSCRIPTIONS_QUEUE
    subscription: str = ""


@dataclass(frozen=True)
class Reauthorize(Message):
    """Answer a reauthorizationRequired lifecycle event for one subscription."""

    kind: ClassVar[str] = "reauthorize"
    queue: ClassVar[str] = SUBSCRIPTIONS_QUEUE
    subscription: str = ""


@dataclass(frozen=True)
class Unsubscribe(Message):
    """Delete the account's subscriptions at Graph (disconnect, unsupported)."""

    kind: ClassVar[str] = "unsubscribe"
    queue: ClassVar[str] = SUBSCRIPTIONS_QUEUE


@dataclass(frozen=True)
class Purge(Message):
    """Delete a purged account's rows, one slice per message (shared/accounts/purge.py)."""

    kind: ClassVar[str] = "purge"
    queue: ClassVar[str] = SUBSCRIPTIONS_QUEUE  # account-level work, beside unsubscribe


@dataclass(frozen=True)
class Outbound(Message):
    """Carry one booking's desired version to Outlook."""

    kind: ClassVar[str] = "outbound"
    queue: ClassVar[str] = OUTBOUND_QUEUE
    booking: str = ""
    version: int = 0


@dataclass(frozen=True)
class Callback(Message):
    """Deliver one outbox row to the SaaS (shared/pushes/worker.py)."""

    kind: ClassVar[str] = "callback"
    queue: ClassVar[str] = CALLBACKS_QUEUE
    row: str = ""


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.kind: cls for cls in (Sync, Subscribe, Renew, Reauthorize, Unsubscribe, Purge, Outbound, Callback)
}

# Fields that must be non-empty strings beyond `account`.
_REQUIRED_TEXT = {"subscription", "booking", "row"}
# Envelope fields and their "unset" values, which stay out of the JSON.
_ENVELOPE: dict[str, object] = {"enqueued_at": None, "throttled": 0}

#: Unknown fields seen by this process, by name (a rolling deploy shows up here and in the log).
ignored_fields: Counter[str] = Counter()


@dataclass(frozen=True)
class ReadMessage:
    message: Message
    ignored: tuple[str, ...]  # names of fields this code does not know


def parse_message(text: str | bytes) -> Message:
    """Parse a queue message body (unknown fields ignored).

    :raises BadMessage: for invalid JSON, an unknown version or kind, a missing or mistyped field.
    """
    return read_message(text).message


def read_message(text: str | bytes) -> ReadMessage:
    """Parse a queue message body, telling which unknown fields were ignored.

    :raises BadMessage: for invalid JSON, an unknown version or kind, a missing or mistyped field.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"message is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise BadMessage("message is not a JSON object")
    if data.get("v") != VERSION:
        raise BadMessage(f"unknown message version {data.get('v')!r} (this code reads v{VERSION})")
    kind = data.get("kind")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadMessage(f"unknown message kind {kind!r}")
    if not is_account_id(data.get("account")):
        raise BadMessage(f"{kind} message has no valid account id")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.name in _REQUIRED_TEXT:
                raise BadMessage(f"{kind} message misses {f.name!r}")
            continue
        value = data[f.name]
        _check_type(cls.kind, f.name, value, f.type)
        values[f.name] = value
    unknown = tuple(sorted(set(data) - {f.name for f in fields(cls)} - {"v", "kind"}))
    if unknown:
        # Names only: a value could be anything a newer release put there.
        ignored_fields.update(unknown)
        log.warning("%s message: ignored unknown fields %s (written by a newer release?)", kind, list(unknown))
    return ReadMessage(cls(**values), unknown)


def _check_type(kind: str, name: str, value: object, annotation: object) -> None:
    expected = str(annotation)
    ok: bool
    if expected == "bool":
        ok = isinstance(value, bool)
    elif expected == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif expected == "SyncReason":
        ok = value in get_args(SyncReason)
    elif expected == "float | None":
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    else:
        ok = isinstance(value, str) and (bool(value) or name not in _REQUIRED_TEXT)
    if not ok:
        raise BadMessage(f"{kind} message has an invalid {name!r}")
