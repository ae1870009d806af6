"""The ``poison`` table's rows: one per poisoned message, in the partition of its queue, keyed by the host's
message id, with an index row per account (``account:{account}`` / ``{queue}:{id}``) so an account's rows
are found without a scan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.api import iso_utc
from shared.store.ports import Row

State = Literal["held", "replayed", "discarded"]
STATES: tuple[State, ...] = ("held", "replayed", "discarded")
HELD: State = "held"

ACCOUNT_PARTITION_PREFIX = "account:"
# A string property holds 64 KiB, counted in UTF-16: the payload keeps at most 60,000 bytes of it.
MAX_PAYLOAD_BYTES = 60_000
MAX_DETAIL_CHARS = 500
MAX_ATTEMPTS = 5


def cap_utf16(text: str, max_bytes: int = MAX_PAYLOAD_BYTES) -> str:
    """The longest start of ``text`` whose UTF-16 form (Table Storage's count) fits ``max_bytes``."""
    encoded = text.encode("utf-16-le")
    if len(encoded) <= max_bytes:
        return text
    # A cut inside a surrogate pair leaves half a character, which the decoder drops.
    return encoded[:max_bytes - max_bytes % 2].decode("utf-16-le", "ignore")


def account_partition(account: str) -> str:
    return f"{ACCOUNT_PARTITION_PREFIX}{account}"


def index_key(queue: str, message_id: str) -> str:
    return f"{queue}:{message_id}"


@dataclass(frozen=True)
class Attempt:
    """One failed delivery as the journal holds it (shared/dispatch.py ``_journal_failure``)."""

    at: float | None
    error_class: str | None
    detail: str | None
    http_status: int | None = None
    graph_error_code: str | None = None
    dequeue_count: int | None = None


def attempts_of(row: Row) -> list[dict[str, Any]]:
    text = row.get("attempts")
    if not isinstance(text, str):
        return []
    items = json.loads(text)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def to_json(row: Row) -> dict[str, Any]:
    """A row as the API shows it: times as ISO 8601 UTC strings."""
    last_error = None
    if row.get("last_error_class") or row.get("last_error_detail"):
        last_error = {"error_class": row.get("last_error_class"), "detail": row.get("last_error_detail")}
    return {
        "queue": row.partition, "id": row.row, "state": row.get("state"),
        "kind": row.get("kind"), "account": row.get("account"), "reason": row.get("reason"),
        "degraded": bool(row.get("degraded", False)),
        "payload": row.get("payload", ""), "payload_truncated": bool(row.get("payload_truncated", False)),
        "parse_error": row.get("parse_error"),
        "dequeue_count": row.get("dequeue_count"),
        "enqueued_at": _time(row.data, "enqueued_at"), "poisoned_at": _time(row.data, "poisoned_at"),
        "held_at": _time(row.data, "held_at"), "updated_at": _time(row.data, "updated_at"),
        "replayed_at": _time(row.data, "replayed_at"), "discarded_at": _time(row.data, "discarded_at"),
        "last_error": last_error,
        "attempts": [{**a, "at": iso_utc(a["at"]) if isinstance(a.get("at"), int | float) else a.get("at")}
                     for a in attempts_of(row)],
    }


def _time(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return iso_utc(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else None
