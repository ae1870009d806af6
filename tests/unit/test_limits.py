"""Table Storage rules as pure functions: key escaping, sizes, dedupe and chunking."""

from __future__ import annotations

import random

import pytest

from shared.errors import EntityTooLarge, TransactionTooLarge
from shared.store.limits import (
    MAX_BATCH_BYTES,
    check_row,
    chunk_for_bulk,
    dedupe,
    entity_size,
    escape_key,
    op_payload_size,
    plan_transaction,
    unescape_key,
)
from shared.store.ports import Row, TableOp

FORBIDDEN = "/\\#?\x00\x1f\x7f\x9f"


def test_escaping_round_trips_and_removes_forbidden_characters():
    rng = random.Random(7)
    alphabet = "ab%/\\#?:é\x00\x01\x1f\x7f\x9f\u2603-_=+"
    for _ in range(2000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        escaped = escape_key(key)
        assert unescape_key(escaped) == key
        assert not any(c in escaped for c in FORBIDDEN)


def test_escaping_keeps_prefixes():
    assert escape_key("ev:cal/1#x").startswith(escape_key("ev:cal/"))
    assert escape_key("plain-key") == "plain-key"


def test_entity_size_follows_the_service_formula():
    row = Row("pk", "rk", {"s": "abc", "n": 1, "b": True})
    # 4 + 2*(2+2) + (8+2+4+6) + (8+2+8) + (8+2+1)
    assert entity_size(row) == 4 + 8 + 20 + 18 + 11


def test_check_row_limits():
    check_row(Row("p", "r", {"s": "x" * 32_000}))
    with pytest.raises(EntityTooLarge, match="64 KiB"):
        check_row(Row("p", "r", {"s": "x" * 33_000}))
    with pytest.raises(EntityTooLarge, match="1 MiB"):
        check_row(Row("p", "r", {f"s{i}": "x" * 32_000 for i in range(17)}))
    with pytest.raises(EntityTooLarge, match="row key"):
        check_row(Row("p", "/" * 400, {}))
    with pytest.raises(EntityTooLarge, match="reserved"):
        check_row(Row("p", "r", {"PartitionKey": "x"}))


def test_dedupe_keeps_last_version_in_last_position():
    ops = [TableOp.upsert(Row("p", "a", {"v": 1})), TableOp.upsert(Row("p", "b", {})),
           TableOp.upsert(Row("p", "a", {"v": 2}))]
    out = dedupe(ops, atomic=False)
    assert [(o.row.row, o.row.data.get("v")) for o in out] == [("b", None), ("a", 2)]


def test_plan_transaction_refusals():
    with pytest.raises(TransactionTooLarge, match="at least one"):
        plan_transaction([])
    assert len(plan_transaction([TableOp.upsert(Row("p", f"r{i}", {})) for i in range(100)])) == 100


def test_bulk_chunks_respect_count_size_and_partition():
    text = "q" * 30_000
    ops = [TableOp.upsert(Row("a", f"r{i}", {})) for i in range(230)]
    ops += [TableOp.upsert(Row("b", f"r{i}", {"x": text, "y": text})) for i in range(150)]
    chunks = list(chunk_for_bulk(ops))
    assert sum(len(c) for c in chunks) == 380
    for chunk in chunks:
        assert len(chunk) <= 100
        assert len({op.row.partition for op in chunk}) == 1
        assert sum(op_payload_size(op) for op in chunk) <= MAX_BATCH_BYTES
    assert [len(c) for c in chunks if c[0].row.partition == "a"] == [100, 100, 30]
    assert len([c for c in chunks if c[0].row.partition == "b"]) >= 3
