"""The TableStore contract, run against the in-memory store and Azurite through azure-data-tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import EntityTooLarge, RowNotFound, StorageConflict, TransactionTooLarge
from shared.store.ports import Row, TableOp

NASTY_KEY = "cal/AAMk+a\\b#c?d%e\x01f"


async def rows_of(store, table, partition, **kw) -> list[Row]:
    return [r async for r in store.query(table, partition, **kw)]


async def test_get_missing_row_is_none(table_store, table_name):
    assert await table_store.get(table_name, "p", "r") is None


async def test_values_round_trip_with_their_types(table_store, table_name):
    when = datetime(2026, 3, 8, 9, 30, 15, 123000, tzinfo=UTC)
    data: dict[str, Any] = {"text": "héllo", "small": 7, "big": 2**40, "ratio": 0.25, "flag": True, "off": False,
            "when": when, "blob": b"\x00\x01\xff"}
    written = await table_store.insert(table_name, Row("p", "r", data))
    assert written.etag
    row = await table_store.get(table_name, "p", "r")
    assert row is not None
    assert {k: row.data[k] for k in data} == data
    assert isinstance(row.data["big"], int)
    assert row.etag == written.etag


async def test_none_values_are_not_stored(table_store, table_name):
    await table_store.insert(table_name, Row("p", "r", {"a": "x", "b": None}))
    row = await table_store.get(table_name, "p", "r")
    assert "b" not in row.data


async def test_insert_of_existing_row_conflicts(table_store, table_name):
    await table_store.insert(table_name, Row("p", "r", {"v": 1}))
    with pytest.raises(StorageConflict):
        await table_store.insert(table_name, Row("p", "r", {"v": 2}))
    assert (await table_store.get(table_name, "p", "r")).data["v"] == 1


async def test_merge_with_fresh_etag_merges_and_stale_etag_conflicts(table_store, table_name):
    first = await table_store.insert(table_name, Row("p", "r", {"a": 1, "b": 1}))
    second = await table_store.merge(table_name, Row("p", "r", {"b": 2}), etag=first.etag)
    assert second.etag != first.etag
    with pytest.raises(StorageConflict):
        await table_store.merge(table_name, Row("p", "r", {"b": 3}), etag=first.etag)
    row = await table_store.get(table_name, "p", "r")
    assert (row.data["a"], row.data["b"]) == (1, 2)


async def test_replace_drops_properties_not_sent(table_store, table_name):
    first = await table_store.insert(table_name, Row("p", "r", {"a": 1, "b": 1}))
    await table_store.replace(table_name, Row("p", "r", {"b": 5}), etag=first.etag)
    row = await table_store.get(table_name, "p", "r")
    assert "a" not in row.data
    assert row.data["b"] == 5


async def test_merge_or_replace_of_missing_row_raises_row_not_found(table_store, table_name):
    with pytest.raises(RowNotFound):
        await table_store.merge(table_name, Row("p", "missing", {"a": 1}))
    with pytest.raises(RowNotFound):
        await table_store.replace(table_name, Row("p", "missing", {"a": 1}))


async def test_upsert_creates_then_replaces(table_store, table_name):
    await table_store.upsert(table_name, Row("p", "r", {"a": 1}))
    await table_store.upsert(table_name, Row("p", "r", {"b": 2}))
    row = await table_store.get(table_name, "p", "r")
    assert dict(row.data) == {"b": 2}


async def test_delete_is_idempotent_and_conditional_when_an_etag_is_given(table_store, table_name):
    await table_store.delete(table_name, "p", "never-there")
    first = await table_store.insert(table_name, Row("p", "r", {"v": 1}))
    await table_store.merge(table_name, Row("p", "r", {"v": 2}))
    with pytest.raises(StorageConflict):
        await table_store.delete(table_name, "p", "r", etag=first.etag)
    assert await table_store.get(table_name, "p", "r") is not None
    await table_store.delete(table_name, "p", "r")
    assert await table_store.get(table_name, "p", "r") is None
    # A row someone else already deleted is gone either way: no error (the SDK, too, answers 404 with None).
    await table_store.delete(table_name, "p", "r", etag=first.etag)


async def test_forbidden_key_characters_round_trip(table_store, table_name):
    await table_store.insert(table_name, Row(NASTY_KEY, NASTY_KEY, {"v": 1}))
    row = await table_store.get(table_name, NASTY_KEY, NASTY_KEY)
    assert row is not None
    assert (row.partition, row.row) == (NASTY_KEY, NASTY_KEY)
    assert [r.row for r in await rows_of(table_store, table_name, NASTY_KEY, prefix="cal/AAMk")] == [NASTY_KEY]


async def test_query_prefix_range_limit_and_order(table_store, table_name):
    keys = ["ev:a/1", "ev:a/2", "ev:b", "ev:a#3", "feed:0001", "feed:0002", "lease"]
    await table_store.bulk_write(table_name, [TableOp.upsert(Row("acct", k, {"k": k})) for k in keys])
    await table_store.insert(table_name, Row("other", "ev:zzz", {}))
    events = [r.row for r in await rows_of(table_store, table_name, "acct", prefix="ev:")]
    # Both stores order by the escaped key ('#' escapes to %23, '/' to %2F).
    assert events == ["ev:a#3", "ev:a/1", "ev:a/2", "ev:b"]
    feed = [r.row for r in await rows_of(table_store, table_name, "acct", start="feed:0002", end="lease")]
    assert feed == ["feed:0002"]
    limited = [r.row for r in await rows_of(table_store, table_name, "acct", prefix="ev:", limit=2)]
    assert limited == ["ev:a#3", "ev:a/1"]


async def test_scan_finds_a_row_prefix_across_partitions(table_store, table_name):
    await table_store.bulk_write(table_name, [TableOp.upsert(Row(p, k, {})) for p in ("a1", "b/2", "c3")
                                              for k in ("", "gen:000001", "gen:000002", "lease")])
    found = [(r.partition, r.row) async for r in table_store.scan(table_name, prefix="gen:")]
    assert found == [("a1", "gen:000001"), ("a1", "gen:000002"), ("b/2", "gen:000001"), ("b/2", "gen:000002"),
                     ("c3", "gen:000001"), ("c3", "gen:000002")]
    assert len([r async for r in table_store.scan(table_name)]) == 12
    from_start = [(r.partition, r.row) async for r in table_store.scan(table_name, start="gen:000002")]
    assert from_start == [(p, k) for p in ("a1", "b/2", "c3") for k in ("gen:000002", "lease")]
    both = [(r.partition, r.row) async for r in table_store.scan(table_name, prefix="gen:", start="gen:000002")]
    assert both == [("a1", "gen:000002"), ("b/2", "gen:000002"), ("c3", "gen:000002")]


async def test_transaction_is_atomic(table_store, table_name):
    await table_store.insert(table_name, Row("p", "exists", {}))
    with pytest.raises(StorageConflict):
        await table_store.transact(table_name, [TableOp.insert(Row("p", "new", {})),
                                                TableOp.insert(Row("p", "exists", {}))])
    assert await table_store.get(table_name, "p", "new") is None


async def test_transaction_deleting_a_missing_row_fails_whole(table_store, table_name):
    with pytest.raises(RowNotFound):
        await table_store.transact(table_name, [TableOp.upsert(Row("p", "a", {})),
                                                TableOp.delete("p", "missing")])
    assert await table_store.get(table_name, "p", "a") is None


async def test_transaction_lease_merge_fences_a_stale_holder(table_store, table_name):
    lease = await table_store.insert(table_name, Row("acct", "lease", {"holder": "a", "seq": 0}))
    await table_store.merge(table_name, Row("acct", "lease", {"holder": "b"}), etag=lease.etag)
    with pytest.raises(StorageConflict):
        await table_store.transact(table_name, [
            TableOp.merge(Row("acct", "lease", {"seq": 1}), etag=lease.etag),
            TableOp.upsert(Row("acct", "ev:cal:1", {"subject": "x"})),
            TableOp.insert(Row("acct", "feed:1", {"kind": "created"})),
        ])
    assert [r.row for r in await rows_of(table_store, table_name, "acct")] == ["lease"]


async def test_transaction_returns_new_etags_in_op_order(table_store, table_name):
    lease = await table_store.insert(table_name, Row("acct", "lease", {"seq": 0}))
    etags = await table_store.transact(table_name, [
        TableOp.merge(Row("acct", "lease", {"seq": 1}), etag=lease.etag),
        TableOp.upsert(Row("acct", "ev:1", {})),
    ])
    assert len(etags) == 2
    assert etags[0] == (await table_store.get(table_name, "acct", "lease")).etag
    # The returned ETag is usable for the next fenced write.
    await table_store.merge(table_name, Row("acct", "lease", {"seq": 2}), etag=etags[0])


async def test_transaction_dedupes_repeated_rows_last_wins(table_store, table_name):
    etags = await table_store.transact(table_name, [
        TableOp.upsert(Row("p", "a", {"v": 1})),
        TableOp.upsert(Row("p", "b", {"v": 1})),
        TableOp.upsert(Row("p", "a", {"v": 2})),
    ])
    assert len(etags) == 2
    assert (await table_store.get(table_name, "p", "a")).data["v"] == 2


async def test_transaction_refuses_repeated_conditional_row(table_store, table_name):
    lease = await table_store.insert(table_name, Row("p", "lease", {}))
    with pytest.raises(TransactionTooLarge):
        await table_store.transact(table_name, [
            TableOp.merge(Row("p", "lease", {"seq": 1}), etag=lease.etag),
            TableOp.upsert(Row("p", "lease", {"seq": 2})),
        ])


async def test_transaction_over_100_rows_is_refused_not_split(table_store, table_name):
    ops = [TableOp.upsert(Row("p", f"r{i:03}", {})) for i in range(101)]
    with pytest.raises(TransactionTooLarge, match="101 rows"):
        await table_store.transact(table_name, ops)
    assert await rows_of(table_store, table_name, "p") == []


async def test_transaction_over_4_mib_is_refused_not_split(table_store, table_name):
    # 80 rows of two 30,000-character properties: ~4.6 MiB of JSON, under 100 rows.
    text = "x" * 30_000
    ops = [TableOp.upsert(Row("p", f"r{i:03}", {"a": text, "b": text})) for i in range(80)]
    with pytest.raises(TransactionTooLarge, match="4 MiB"):
        await table_store.transact(table_name, ops)
    assert await rows_of(table_store, table_name, "p") == []


async def test_transaction_across_partitions_is_refused(table_store, table_name):
    with pytest.raises(TransactionTooLarge, match="partitions"):
        await table_store.transact(table_name, [TableOp.upsert(Row("p1", "r", {})),
                                                TableOp.upsert(Row("p2", "r", {}))])


async def test_bulk_write_splits_by_partition_count_and_size_and_dedupes(table_store, table_name):
    text = "y" * 30_000
    ops = [TableOp.upsert(Row(f"p{i % 2}", f"r{i:03}", {"i": i})) for i in range(250)]
    ops += [TableOp.upsert(Row("big", f"r{i:03}", {"a": text, "b": text})) for i in range(90)]
    ops.append(TableOp.upsert(Row("p0", "r000", {"i": -1})))  # a later version of an earlier row
    written = await table_store.bulk_write(table_name, ops)
    assert written == 340
    assert len(await rows_of(table_store, table_name, "p0")) == 125
    assert len(await rows_of(table_store, table_name, "p1")) == 125
    assert len(await rows_of(table_store, table_name, "big")) == 90
    assert (await table_store.get(table_name, "p0", "r000")).data["i"] == -1


async def test_bulk_write_deletes_rows_including_missing_ones(table_store, table_name):
    await table_store.bulk_write(table_name, [TableOp.upsert(Row("p", f"r{i}", {})) for i in range(5)])
    written = await table_store.bulk_write(
        table_name, [TableOp.delete("p", f"r{i}") for i in range(7)])
    assert written == 7
    assert await rows_of(table_store, table_name, "p") == []


async def test_oversized_string_property_is_refused(table_store, table_name):
    with pytest.raises(EntityTooLarge, match="64 KiB"):
        await table_store.transact(table_name, [TableOp.upsert(Row("p", "r", {"body": "z" * 40_000}))])
