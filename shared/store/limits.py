"""Table Storage's rules, as pure functions both store versions share: key escaping, entity and
request sizes, and how writes are deduplicated and chunked into transactions.

Limits (Azure Table Storage docs, "Understanding the Table service data model" and "Performing
entity group transactions"): keys up to 1 KiB without ``/ \\ # ?`` or control characters; a string
property up to 64 KiB; an entity up to 1 MiB; a transaction up to 100 entities and a 4 MiB
payload, all in one partition, each entity once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime

from shared.errors import EntityTooLarge, RowNotFound, TransactionTooLarge
from shared.store.ports import Row, TableOp, Value

MAX_BATCH_OPS = 100
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_STRING_BYTES = 64 * 1024
MAX_KEY_CHARS = 1024
# Multipart framing per operation (boundary, headers, request line); measured batches stay well under.
_OP_OVERHEAD_BYTES = 512

# What Table Storage forbids in keys ('/', '\\', '#', '?', control characters) and '%', the escape itself.
_NEEDS_ESCAPE = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")


def escape_key(key: str) -> str:
    """Percent-escape what Table Storage forbids in keys (and '%', the escape character itself).
    Character by character, so a prefix of a key escapes to a prefix of the escaped key."""
    return _NEEDS_ESCAPE.sub(lambda match: f"%{ord(match.group()):02X}", key)


def unescape_key(key: str) -> str:
    if "%" not in key:
        return key
    out: list[str] = []
    i = 0
    while i < len(key):
        if key[i] == "%":
            out.append(chr(int(key[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(key[i])
            i += 1
    return "".join(out)


def _value_size(value: Value) -> int:
    # The service's own accounting: strings count UTF-16 code units, two bytes each.
    if isinstance(value, str):
        return 4 + len(value.encode("utf-16-le"))
    if isinstance(value, bytes):
        return 4 + len(value)
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    return 0


def entity_size(row: Row) -> int:
    """Size as Table Storage counts it: 4 + 2 * key characters + per property 8 + 2 * name + value."""
    size = 4 + 2 * (len(row.partition) + len(row.row))
    for name, value in row.data.items():
        if value is not None:
            size += 8 + 2 * len(name) + _value_size(value)
    return size


def check_row(row: Row) -> None:
    """:raises EntityTooLarge: a key, string property or the entity is over the service's limit."""
    for label, key in (("partition key", row.partition), ("row key", row.row)):
        if len(escape_key(key)) > MAX_KEY_CHARS:
            raise EntityTooLarge(f"{label} is over {MAX_KEY_CHARS} characters")
    for name, value in row.data.items():
        if isinstance(value, str | bytes) and _value_size(value) - 4 > MAX_STRING_BYTES:
            raise EntityTooLarge(f"property {name!r} is over 64 KiB")
        if name in ("PartitionKey", "RowKey", "Timestamp", "etag", "odata.etag"):
            raise EntityTooLarge(f"property name {name!r} is reserved")
    if entity_size(row) > MAX_ENTITY_BYTES:
        raise EntityTooLarge(f"row {row.row!r} is over 1 MiB")


def op_payload_size(op: TableOp) -> int:
    """Upper estimate of one operation's share of a batch request body (JSON plus framing)."""
    body = {k: (v.isoformat() if isinstance(v, datetime) else v.hex() if isinstance(v, bytes) else v)
            for k, v in op.row.data.items() if v is not None}
    return _OP_OVERHEAD_BYTES + 2 * (len(op.row.partition) + len(op.row.row)) + len(
        json.dumps(body).encode("utf-8"))


def dedupe(ops: Iterable[TableOp], *, atomic: bool) -> list[TableOp]:
    """Collapse repeated writes of one row to the last, keeping first-seen order.

    In an atomic transaction a repeat where either write carries an ETag is refused: dropping
    a condition would silently remove a fencing check."""
    latest: dict[tuple[str, str], TableOp] = {}
    for op in ops:
        previous = latest.get(op.key)
        if previous is not None and atomic and (previous.etag or op.etag):
            raise TransactionTooLarge(f"row {op.key[1]!r} is written twice with an ETag condition")
        if previous is not None:
            del latest[op.key]  # move to the end: the surviving write goes where the last one was
        latest[op.key] = op
    return list(latest.values())


def plan_transaction(ops: Sequence[TableOp]) -> list[TableOp]:
    """Validate an atomic transaction and return its deduplicated ops.

    :raises TransactionTooLarge: empty, mixed partitions, over 100 rows or 4 MiB.
    :raises EntityTooLarge: a row over the service's limits."""
    unique = dedupe(ops, atomic=True)
    if not unique:
        raise TransactionTooLarge("a transaction needs at least one operation")
    partitions = {op.row.partition for op in unique}
    if len(partitions) > 1:
        raise TransactionTooLarge(f"a transaction spans {len(partitions)} partitions; it must stay in one")
    if len(unique) > MAX_BATCH_OPS:
        raise TransactionTooLarge(f"a transaction of {len(unique)} rows exceeds {MAX_BATCH_OPS}")
    for op in unique:
        check_row(op.row)
    size = sum(op_payload_size(op) for op in unique)
    if size > MAX_BATCH_BYTES:
        raise TransactionTooLarge(f"a transaction of about {size // 1024} KiB exceeds 4 MiB")
    return unique


def chunk_for_bulk(ops: Iterable[TableOp]) -> Iterator[list[TableOp]]:
    """Split writes into transactions: one partition each, at most 100 rows and 4 MiB.

    Deduplicated first (last version of a row wins), so no chunk repeats a row."""
    by_partition: dict[str, list[TableOp]] = {}
    for op in dedupe(ops, atomic=False):
        check_row(op.row)
        by_partition.setdefault(op.row.partition, []).append(op)
    for partition_ops in by_partition.values():
        chunk: list[TableOp] = []
        size = 0
        for op in partition_ops:
            op_size = op_payload_size(op)
            if chunk and (len(chunk) == MAX_BATCH_OPS or size + op_size > MAX_BATCH_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(op)
            size += op_size
        if chunk:
            yield chunk


async def bulk_write_with(ops: Iterable[TableOp], submit: Callable[[list[TableOp]], Awaitable[object]],
                          write_one: Callable[[TableOp], Awaitable[object]]) -> int:
    """The bulk-write algorithm both stores share: chunked transactions; a chunk that fails only
    because a row to delete is already gone is written row by row (a lone delete of a missing row
    is fine, inside a transaction it fails the whole transaction)."""
    written = 0
    for chunk in chunk_for_bulk(ops):
        try:
            await submit(chunk)
        except RowNotFound:
            for op in chunk:
                await write_one(op)
        written += len(chunk)
    return written
