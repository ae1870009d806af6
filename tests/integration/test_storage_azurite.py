"""The storage layer through the real SDKs against Azurite, beyond the contract suites."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue.aio import QueueClient

from shared.config import StorageSettings
from shared.ids import new_account_id
from shared.messages import Sync, parse_message
from shared.store.factory import QUEUE_API_VERSION, build_table_store, build_work_queue
from shared.store.index import index_row, read_indexed, write_indexed
from shared.store.ports import Row, TableOp

pytestmark = pytest.mark.azurite


@pytest.fixture
async def tables(storage_connection_string):
    store = build_table_store(StorageSettings(connection_string=storage_connection_string))
    yield store
    await store.close()


async def test_queue_messages_are_base64_as_the_host_reads_them(storage_connection_string):
    queue = build_work_queue(StorageSettings(connection_string=storage_connection_string))
    account = new_account_id()
    try:
        await queue.send(Sync(account=account, reason="manual"))
    finally:
        await queue.close()
    raw = QueueClient.from_connection_string(storage_connection_string, "sync", api_version=QUEUE_API_VERSION)
    async with raw:
        bodies = [m.content async for m in raw.receive_messages(max_messages=32, visibility_timeout=30)]
    (body,) = [b for b in bodies if account in base64.b64decode(b).decode()]
    decoded = base64.b64decode(body, validate=True).decode()
    assert json.loads(decoded) == {"v": 1, "kind": "sync", "account": account, "reason": "manual", "full": False}
    # The Python worker hands the host-decoded text to the function through this converter.
    message = QueueMessageInConverter.decode(Datum(decoded, "string"), trigger_metadata={
        "Id": Datum("id-1", "string"), "DequeueCount": Datum(1, "int")})
    assert parse_message(message.get_body()) == Sync(account=account, reason="manual")
    assert message.dequeue_count == 1


class RecordingStore:
    """Wraps a real store and records the order of writes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.writes: list[tuple[str, str]] = []

    async def bulk_write(self, table, ops):
        ops = list(ops)
        self.writes += [op.key for op in ops]
        return await self.inner.bulk_write(table, ops)

    async def insert(self, table, row):
        self.writes.append(row.key)
        return await self.inner.insert(table, row)

    async def replace(self, table, row, *, etag=None):
        self.writes.append(row.key)
        return await self.inner.replace(table, row, etag=etag)


async def test_cross_partition_index_rows_are_written_first_and_verified_on_read(tables):
    table = "ix" + uuid.uuid4().hex[:12]
    account = Row("acct-1", "", {"tenant": "t1", "user": "u1", "ref": "saas-42"})
    by_user = index_row("tu:t1", "u1", account)
    by_ref = index_row("ref:saas-42", "", account)
    recorder = RecordingStore(tables)
    await write_indexed(recorder, table, account, [by_user, by_ref])  # type: ignore[arg-type]
    assert recorder.writes == [("tu:t1", "u1"), ("ref:saas-42", ""), ("acct-1", "")]

    def is_t1_u1(row: Row) -> bool:
        return (row.get("tenant"), row.get("user")) == ("t1", "u1")

    found = await read_indexed(tables, table, "tu:t1", "u1", is_t1_u1)
    assert found is not None
    assert found.get("ref") == "saas-42"

    # The account moves to another user: the old index row now dangles and is ignored.
    current = await tables.get(table, "acct-1", "")
    await tables.replace(table, current.with_data(user="u2"), etag=current.etag)
    assert await read_indexed(tables, table, "tu:t1", "u1", is_t1_u1) is None
    # A crash between index and target leaves an index row to a missing target: ignored too.
    await tables.upsert(table, index_row("tu:t9", "u9", Row("acct-9", "")))
    assert await read_indexed(tables, table, "tu:t9", "u9", lambda r: True) is None
    assert await read_indexed(tables, table, "tu:none", "x", lambda r: True) is None


async def test_mailbox_transaction_with_in_partition_index_rows(tables):
    """Event rows and their time-bucket index rows travel in one transaction with the lease merge."""
    table = "mb" + uuid.uuid4().hex[:12]
    lease = await tables.insert(table, Row("acct", "lease", {"seq": 0}))
    event_id = "AAMkAGI2/ev+1=="
    await tables.transact(table, [
        TableOp.merge(Row("acct", "lease", {"seq": 1}), etag=lease.etag),
        TableOp.upsert(Row("acct", f"ev:cal:{event_id}", {"subject": "Standup"})),
        TableOp.upsert(Row("acct", f"tb:2026-03:cal:{event_id}", {"start": "2026-03-08T09:00:00Z"})),
        TableOp.insert(Row("acct", "feed:00000000000000000001", {"kind": "created", "id": event_id})),
    ])
    keys = [r.row async for r in tables.query(table, "acct")]
    assert keys == [f"ev:cal:{event_id}", "feed:00000000000000000001", "lease", f"tb:2026-03:cal:{event_id}"]


async def test_services_wire_the_azure_stores_from_settings(app_env):
    import shared.wiring as services_module

    services = services_module.get_services()
    assert services_module.get_services() is services
    account = new_account_id()
    await services.queue.send(Sync(account=account, reason="manual"), delay_seconds=0)
    assert any(account in body for body in await services.queue.peek("sync"))
    await services.tables.upsert("accounts", Row(account, "", {"status": "pending"}))
    stored = await services.tables.get("accounts", account, "")
    assert stored is not None
    assert stored.get("status") == "pending"
