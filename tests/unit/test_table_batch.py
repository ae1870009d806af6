"""The entity group transaction's wire format ("Performing entity group transactions",
https://learn.microsoft.com/en-us/rest/api/storageservices/performing-entity-group-transactions), as written
and read by shared/store/table_batch.py. The same code runs against Azurite in tests/contract."""

from __future__ import annotations

from shared.store.ports import Row, TableOp
from shared.store.table_batch import decode, encode


def test_each_op_becomes_its_documented_request():
    ops = [TableOp.insert(Row("p", "a", {"n": 1})), TableOp.upsert(Row("p", "o'b/c", {})),
           TableOp.merge(Row("p", "c", {}), etag='W/"1"'), TableOp.delete("p", "d")]
    body, content_type = encode("https://acct.table.core.windows.net", "mailbox",
                                [(op, {"PartitionKey": op.row.partition, "RowKey": op.row.row, **op.row.data})
                                 for op in ops])
    text = body.decode()
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    assert "POST https://acct.table.core.windows.net/mailbox HTTP/1.1" in text
    assert "PUT https://acct.table.core.windows.net/mailbox(PartitionKey='p',RowKey='o%27%27b%2Fc') HTTP/1.1" in text
    assert "PATCH https://acct.table.core.windows.net/mailbox(PartitionKey='p',RowKey='c') HTTP/1.1" in text
    assert "If-Match: W/\"1\"" in text
    assert "DELETE https://acct.table.core.windows.net/mailbox(PartitionKey='p',RowKey='d') HTTP/1.1" in text
    assert '"n":1' in text
    assert '"n@odata.type"' not in text


def test_answers_are_read_in_order_and_a_failure_names_its_code():
    ok = (b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
          b"--changesetresponse_2\r\nContent-Type: application/http\r\n\r\n"
          b"HTTP/1.1 204 No Content\r\nETag: W/\"datetime'1'\"\r\n\r\n\r\n"
          b"--changesetresponse_2\r\nContent-Type: application/http\r\n\r\n"
          b"HTTP/1.1 204 No Content\r\nDataServiceVersion: 1.0;\r\n\r\n\r\n--changesetresponse_2--\r\n")
    first, second = decode(ok)
    assert (first.status, first.etag, second.status, second.etag) == (204, "W/\"datetime'1'\"", 204, None)
    failed = (b"--batchresponse_1\r\n\r\nHTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n"
              b'{"odata.error":{"code":"EntityAlreadyExists","message":{"value":"0:The entity exists."}}}\r\n')
    (part,) = decode(failed)
    assert (part.status, part.error_code) == (409, "EntityAlreadyExists")
