"""The wire format of a Table Storage entity group transaction, written and read directly.

azure-data-tables builds and parses a transaction's multipart body with Python's ``email`` package, which
costs about 1.3 ms of CPU per row on the machines this runs on: most of what a first sync spends on storage
(docs/architecture.md, "Storage", measured). The format is small and documented ("Performing entity group
transactions", https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions):
one changeset of HTTP requests inside one batch, answered by one changeset of HTTP responses (only the
failing one when the transaction fails). The request still goes through the SDK's own pipeline (its
authentication, retries and headers); only the body is made and read here. Entities are serialized by the
SDK's own property serializer, so types (Edm.Int64, Edm.DateTime, Edm.Binary) are exactly what it sends.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.data.tables._serialize import _add_entity_properties

from shared.store.ports import TableOp

_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n")
_ETAG = re.compile(rb"(?im)^etag:\s*([^\r\n]+)")
_CODE = re.compile(rb'"code"\s*:\s*"([^"]*)"')
_COMMON = ("Accept: application/json;odata=minimalmetadata", "DataServiceVersion: 3.0")


@dataclass(frozen=True)
class PartResult:
    status: int
    etag: str | None
    error_code: str | None


def encode(endpoint: str, table: str, ops: Sequence[tuple[TableOp, Mapping[str, Any]]]) -> tuple[bytes, str]:
    """The body and Content-Type of a transaction of ``ops`` (each with its entity dict)."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = []
    for op, entity in ops:
        method, url, headers, body = _request(endpoint, table, op, entity)
        head = [f"--{changeset}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
                f"{method} {url} HTTP/1.1", *_COMMON, *headers]
        parts.append("\r\n".join(head) + "\r\n\r\n" + body + "\r\n")
    text = (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n" + "".join(parts)
            + f"--{changeset}--\r\n--{batch}--\r\n")
    return text.encode("utf-8"), f"multipart/mixed; boundary={batch}"


def _request(endpoint: str, table: str, op: TableOp, entity: Mapping[str, Any]) -> tuple[str, str, list[str], str]:
    keyed = (f"{endpoint}/{table}(PartitionKey='{_key(entity['PartitionKey'])}',"
             f"RowKey='{_key(entity['RowKey'])}')")
    if_match = [f"If-Match: {op.etag or '*'}"]
    if op.kind == "delete":
        return "DELETE", keyed, if_match, ""
    body = json.dumps(_add_entity_properties(dict(entity)), separators=(",", ":"))
    typed = ["Content-Type: application/json", "Prefer: return-no-content"]
    if op.kind == "insert":
        return "POST", f"{endpoint}/{table}", typed, body
    if op.kind == "upsert":
        return "PUT", keyed, typed, body  # no If-Match: insert or replace
    return ("PATCH" if op.kind == "merge" else "PUT"), keyed, typed + if_match, body


def _key(value: str) -> str:
    # OData string literal (quotes doubled), then URL-encoded as the SDK's request builders do.
    return quote(value.replace("'", "''"), safe="")


def decode(body: bytes) -> list[PartResult]:
    """The results of a transaction's parts, in order (a failed transaction answers only its failing part)."""
    results = []
    matches = list(_STATUS.finditer(body))
    for i, match in enumerate(matches):
        status = int(match.group(1))
        etag = _ETAG.search(match.group(2))
        error_code = None
        if status >= 300:
            end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
            code = _CODE.search(body, match.end(), end)
            error_code = code.group(1).decode() if code else None
        results.append(PartResult(status, etag.group(1).decode().strip() if etag else None, error_code))
    return results
