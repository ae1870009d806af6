"""Index rows in other partitions (docs/architecture.md, "Storage"): Table Storage has no secondary indexes and
no cross-partition transactions, so an index row is written first, then the row it points to.
A crash between the two leaves a dangling index row, never an unindexed row; readers verify the
target and ignore a dangling index, and a sweep repairs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.store.ports import Row, TableOp, TableStore

TARGET_PARTITION = "target_pk"
TARGET_ROW = "target_rk"


def index_row(partition: str, row: str, target: Row, **extra: str) -> Row:
    """An index entry at (partition, row) pointing at ``target``'s keys."""
    return Row(partition, row, {TARGET_PARTITION: target.partition, TARGET_ROW: target.row, **extra})


async def write_indexed(store: TableStore, table: str, target: Row, indexes: Sequence[Row]) -> Row:
    """Upsert the index rows, then the target (inserted when it has no ETag, else replaced If-Match).

    :raises StorageConflict: the target changed since it was read; index rows may then dangle,
        which readers tolerate."""
    await store.bulk_write(table, [TableOp.upsert(ix) for ix in indexes])
    if target.etag is None:
        return await store.insert(table, target)
    return await store.replace(table, target, etag=target.etag)


async def read_indexed(store: TableStore, table: str, partition: str, row: str,
                       matches: Callable[[Row], bool]) -> Row | None:
    """Follow an index row to its target; None when the index is missing or dangling (the target is
    absent, or no longer has the indexed value, as ``matches`` tells)."""
    ix = await store.get(table, partition, row)
    if ix is None:
        return None
    target_pk, target_rk = ix.get(TARGET_PARTITION), ix.get(TARGET_ROW)
    if not isinstance(target_pk, str) or not isinstance(target_rk, str):
        return None
    target = await store.get(table, target_pk, target_rk)
    if target is None or not matches(target):
        return None
    return target
