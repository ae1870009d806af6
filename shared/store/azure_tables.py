"""TableStore on Azure Table Storage (and Azurite) through the async azure-data-tables SDK."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.errors import RowExists, RowNotFound, StorageConflict, TransactionTooLarge
from shared.store import table_batch
from shared.store.limits import bulk_write_with, escape_key, plan_transaction, unescape_key
from shared.store.ports import Row, TableOp, Value

_PAGE_SIZE = 1000


class AzureTableStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._clients: dict[str, TableClient] = {}
        self._created: set[str] = set()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        await self._service.close()

    def _client(self, table: str) -> TableClient:
        client = self._clients.get(table)
        if client is None:
            client = self._clients[table] = self._service.get_table_client(table)
        return client

    async def _table(self, table: str) -> TableClient:
        """The table's client, creating the table once per process on first use."""
        if table not in self._created:
            await self._ensure_table(table)
        return self._client(table)

    async def _ensure_table(self, table: str) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._service.create_table(table)
        self._created.add(table)

    async def get(self, table: str, partition: str, row: str) -> Row | None:
        try:
            entity = await (await self._table(table)).get_entity(escape_key(partition), escape_key(row))
        except ResourceNotFoundError:
            return None
        return _to_row(entity)

    async def query(self, table: str, partition: str, *, prefix: str = "", start: str | None = None,
                    end: str | None = None, limit: int | None = None) -> AsyncIterator[Row]:
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": escape_key(partition)}
        low = max(escape_key(prefix), escape_key(start)) if start is not None else escape_key(prefix)
        if low:
            clauses.append("RowKey ge @low")
            params["low"] = low
        highs = [h for h in (_prefix_end(escape_key(prefix)) if prefix else None,
                             escape_key(end) if end is not None else None) if h is not None]
        if highs:
            clauses.append("RowKey lt @high")
            params["high"] = min(highs)
        pages = (await self._table(table)).query_entities(
            " and ".join(clauses), parameters=params,
            results_per_page=min(limit, _PAGE_SIZE) if limit else _PAGE_SIZE)
        count = 0
        async for entity in pages:
            if limit is not None and count >= limit:
                break
            count += 1
            yield _to_row(entity)

    async def scan(self, table: str, *, prefix: str = "", start: str | None = None) -> AsyncIterator[Row]:
        client = await self._table(table)
        if prefix or start is not None:
            low = max(escape_key(prefix), escape_key(start or ""))
            query, parameters = "RowKey ge @low", {"low": low}
            if prefix:
                query += " and RowKey lt @high"
                parameters["high"] = _prefix_end(escape_key(prefix))
            pages = client.query_entities(query, results_per_page=_PAGE_SIZE, parameters=parameters)
        else:
            pages = client.list_entities(results_per_page=_PAGE_SIZE)
        async for entity in pages:
            yield _to_row(entity)

    async def insert(self, table: str, row: Row) -> Row:
        return await self._write_one(table, TableOp.insert(row))

    async def upsert(self, table: str, row: Row) -> Row:
        return await self._write_one(table, TableOp.upsert(row))

    async def merge(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        return await self._write_one(table, TableOp.merge(row, etag))

    async def replace(self, table: str, row: Row, *, etag: str | None = None) -> Row:
        return await self._write_one(table, TableOp.replace(row, etag))

    async def delete(self, table: str, partition: str, row: str, *, etag: str | None = None) -> None:
        op = TableOp.delete(partition, row, etag)
        kwargs = _condition(op)
        try:
            await (await self._table(table)).delete_entity(escape_key(partition), escape_key(row), **kwargs)
        except ResourceModifiedError:
            raise StorageConflict(f"row {row!r} changed since it was read (ETag mismatch)") from None
        except ResourceNotFoundError:
            pass  # already gone: the outcome the caller asked for

    async def _write_one(self, table: str, op: TableOp) -> Row:
        client = await self._table(table)
        entity = _to_entity(op.row)
        try:
            if op.kind == "insert":
                meta = await client.create_entity(entity)
            elif op.kind == "upsert":
                meta = await client.upsert_entity(entity, mode=UpdateMode.REPLACE)
            else:
                mode = UpdateMode.MERGE if op.kind == "merge" else UpdateMode.REPLACE
                meta = await client.update_entity(entity, mode=mode, **_condition(op))
        except ResourceExistsError:
            raise RowExists(f"row {op.row.row!r} already exists") from None
        except ResourceModifiedError:
            raise StorageConflict(f"row {op.row.row!r} changed since it was read (ETag mismatch)") from None
        except ResourceNotFoundError:
            raise RowNotFound(f"row {op.row.row!r} does not exist") from None
        return _written(op, meta.get("etag"))

    async def transact(self, table: str, ops: Sequence[TableOp]) -> list[str | None]:
        planned = plan_transaction(ops)
        return await self._submit(table, planned)

    async def bulk_write(self, table: str, ops: Iterable[TableOp]) -> int:
        async def submit(chunk: list[TableOp]) -> None:
            await self._submit(table, chunk)

        async def write_one(op: TableOp) -> None:
            if op.kind == "delete":
                await self.delete(table, op.row.partition, op.row.row, etag=op.etag)
            else:
                await self._write_one(table, op)

        return await bulk_write_with(ops, submit, write_one)

    async def _submit(self, table: str, ops: Sequence[TableOp]) -> list[str | None]:
        """One entity group transaction; its body made and read by shared/store/table_batch.py, sent through
        the SDK's pipeline (authentication, retries) as the SDK's own ``submit_transaction`` would."""
        client = await self._table(table)
        body, content_type = table_batch.encode(client.url, table, [(op, _to_entity(op.row)) for op in ops])
        request = HttpRequest("POST", f"{client.scheme}://{client._primary_hostname}/$batch", content=body, headers={
            "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": content_type, "Accept": "application/json"})
        # stream=True: the pipeline's content decoding does not read multipart answers.
        response = await client._client.send_request(request, stream=True)
        await response.read()
        if response.status_code == 413:
            raise TransactionTooLarge("Table Storage refused the transaction as too large; nothing was written")
        if response.status_code != 202:
            raise HttpResponseError(response=response)
        parts = table_batch.decode(response.content)
        failed = next((p for p in parts if p.status >= 300), None)
        if failed is not None:
            if failed.status == 409 or failed.error_code == "EntityAlreadyExists":
                raise RowExists("a transaction row already exists; nothing was written")
            if failed.status == 412 or failed.error_code == "UpdateConditionNotSatisfied":
                raise StorageConflict("a transaction row changed since it was read; nothing was written")
            if failed.status == 404 or failed.error_code == "ResourceNotFound":
                raise RowNotFound("a transaction row does not exist; nothing was written")
            raise HttpResponseError(f"Table Storage refused a transaction: {failed.status} {failed.error_code}")
        if len(parts) != len(ops):
            raise HttpResponseError(f"Table Storage answered {len(parts)} parts to a transaction of {len(ops)}")
        return [None if op.kind == "delete" else part.etag for op, part in zip(ops, parts, strict=True)]


def _written(op: TableOp, etag: str | None) -> Row:
    return Row(op.row.partition, op.row.row, {k: v for k, v in op.row.data.items() if v is not None}, etag)


def _prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _condition(op: TableOp) -> dict[str, Any]:
    if op.etag is None:
        return {"match_condition": MatchConditions.Unconditionally} if op.kind != "delete" else {}
    return {"etag": op.etag, "match_condition": MatchConditions.IfNotModified}


def _to_entity(row: Row) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": escape_key(row.partition), "RowKey": escape_key(row.row)}
    for name, value in row.data.items():
        if value is None:
            continue
        if isinstance(value, bool):
            entity[name] = value
        elif isinstance(value, int):
            # Always Int64: the SDK refuses Python ints beyond 32 bits unless told.
            entity[name] = EntityProperty(value, EdmType.INT64)
        elif isinstance(value, datetime) and value.tzinfo is None:
            entity[name] = value.replace(tzinfo=UTC)
        else:
            entity[name] = value
    return entity


def _to_row(entity: Any) -> Row:
    data: dict[str, Value] = {}
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        if isinstance(value, EntityProperty):
            value = value.value
        if isinstance(value, datetime):
            value = datetime.fromtimestamp(value.timestamp(), tz=UTC)
        data[name] = value
    return Row(unescape_key(entity["PartitionKey"]), unescape_key(entity["RowKey"]), data,
               entity.metadata.get("etag"))
