"""Signed callbacks (shared/accounts/outbox.py, shared/pushes/worker.py) with in-memory parts: what is owed,
signed so that the verification example of docs/callbacks.md (run here as the SaaS would copy it) accepts
it, deleted on a 2xx, sent again with a doubling wait otherwise, queued again by the reconciler when its
message was lost, and nothing sent when callbacks are off. Through Azurite and a real HTTP receiver:
tests/integration/test_callbacks_azurite.py."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.accounts.outbox import owe, owe_changes
from shared.config import Settings
from shared.ids import new_account_id
from shared.messages import Callback, Sync, parse_message
from shared.pushes.worker import CallbackWorker, requeue_unacknowledged
from shared.store.ports import OUTBOX
from shared.wiring import in_memory_services
from tests.fakes import FakeClock
from tests.integration.conftest import SAMPLE
from tests.unit.delta_fake import FakeMailbox, event

SECRET = base64.b64encode(b"s" * 32).decode()
ENABLED = {**SAMPLE, "SAAS_CALLBACK_URL": "https://saas.example.com/hooks", "SAAS_CALLBACK_SECRET": SECRET}
ACCOUNT = new_account_id()
DOC = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"


def documented_verify() -> Any:
    """The ten-line example of docs/callbacks.md, run as written."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)
    return scope["verify"]


class Receiver:
    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.got: list[tuple[str, bytes, dict[str, str]]] = []

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.got.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def services():
    return in_memory_services(Settings.from_env(ENABLED), FakeClock(1_790_000_000.0))


def queued(services) -> list[Callback]:
    return [m for m in map(parse_message, services.queue.all_bodies("callbacks")) if isinstance(m, Callback)]


async def test_a_push_is_signed_as_documented_and_acknowledged_by_a_2xx(services, monkeypatch):
    row = await owe(services, ACCOUNT, "account_status", {"account": ACCOUNT, "status": "active"})
    (message,) = queued(services)
    receiver = Receiver(204)
    await CallbackWorker(services, receiver).handle(message)
    ((url, body, headers),) = receiver.got
    assert url == "https://saas.example.com/hooks"
    assert json.loads(body) == {"id": row, "type": "account_status", "account": ACCOUNT, "status": "active"}
    verify = documented_verify()
    monkeypatch.setattr("time.time", services.clock)
    assert verify(body, headers["X-Signature"], SECRET)
    assert not verify(body + b" ", headers["X-Signature"], SECRET)
    assert not verify(body, headers["X-Signature"], base64.b64encode(b"x" * 32).decode())
    services.clock.advance(301)
    assert not verify(body, headers["X-Signature"], SECRET)  # a replay after the window
    assert services.tables.rows(OUTBOX) == []
    await CallbackWorker(services, receiver).handle(message)  # delivered twice by the queue: sent once
    assert len(receiver.got) == 1


async def test_no_acknowledgement_is_retried_with_a_doubling_wait_until_one_comes(services):
    await owe(services, ACCOUNT, "account_status", {"account": ACCOUNT})
    receiver = Receiver(500, httpx.ConnectError("refused"), 404, 503, 200)
    waits = []
    for _ in range(5):
        await CallbackWorker(services, receiver).handle(queued(services)[-1])  # the latest send
        rows = services.tables.rows(OUTBOX)
        if rows:
            waits.append(rows[0].get("next_attempt_at") - services.clock())
            services.clock.advance(waits[-1])
    assert waits == [10, 20, 40, 80]
    assert services.tables.rows(OUTBOX) == []
    assert len(receiver.got) == 5


async def test_the_wait_is_capped(services):
    await owe(services, ACCOUNT, "account_status", {})
    receiver = Receiver(*([500] * 12))
    for _ in range(12):
        row = services.tables.rows(OUTBOX)[0]
        await CallbackWorker(services, receiver).handle(Callback(account=ACCOUNT, row=row.row))
    (row,) = services.tables.rows(OUTBOX)
    assert (row.get("attempts"), row.get("last_status")) == (12, 500)
    assert row.get("next_attempt_at") - services.clock() == 3600


async def test_a_lost_message_is_queued_again_by_the_reconciler(services):
    await owe(services, ACCOUNT, "account_status", {})
    services.queue.clear("callbacks")  # the message is lost
    assert await requeue_unacknowledged(services) == 0  # not overdue yet
    services.clock.advance(601)
    assert await requeue_unacknowledged(services) == 1
    assert len(queued(services)) == 1
    assert await requeue_unacknowledged(services) == 0  # queued again just now


async def test_nothing_is_sent_when_callbacks_are_off():
    services = in_memory_services(Settings.from_env(SAMPLE), FakeClock())
    await owe(services, ACCOUNT, "account_status", {})
    await owe_changes(services, ACCOUNT, 7)
    assert queued(services) == []
    assert [r.get("kind") for r in services.tables.rows(OUTBOX)] == ["account_status"]  # type: ignore[attr-defined]  # the record stays
    assert await requeue_unacknowledged(services) == 0


async def test_a_round_with_changes_owes_one_changes_ping_with_the_latest_cursor(services):
    from shared.accounts.model import Account, Identity, Status
    from shared.sync.writer import EventWriter

    await services.tables.upsert("accounts", Account(ACCOUNT, Identity("t", "u", "u@contoso.test"),
                                                     Status.ACTIVE, 1).to_row())
    mailbox = FakeMailbox(page_size=50)
    for n in range(3):
        mailbox.put(event(n))
    writer = EventWriter(services, mailbox, mailbox)
    await writer.handle(Sync(account=ACCOUNT, reason="connect"))
    (row,) = [r for r in services.tables.rows(OUTBOX) if r.row == "changes"]
    assert json.loads(row.get("payload")) == {"account": ACCOUNT, "cursor": 3}
    mailbox.put(event(9))
    services.clock.advance(60)
    await writer.handle(Sync(account=ACCOUNT, reason="notification"))
    (row,) = [r for r in services.tables.rows(OUTBOX) if r.row == "changes"]
    assert json.loads(row.get("payload"))["cursor"] == 4
    services.clock.advance(60)
    await writer.handle(Sync(account=ACCOUNT, reason="notification"))  # nothing changed: no new ping
    assert len([m for m in queued(services) if m.row == "changes"]) == 2


async def test_status_changes_and_an_expiring_token_are_owed(services):
    from shared.accounts.model import Account, Identity, Status
    from shared.accounts.status import set_status
    from shared.auth.credential import TokenBroker
    from shared.auth.memory import InMemoryTokenVault
    from shared.connect.keepalive import keep_tokens_alive
    from tests.fakes import FakeIdentityProvider

    await services.tables.upsert("accounts", Account(ACCOUNT, Identity("t", "u", "u@contoso.test"), Status.ACTIVE,
                                                     1, consented_at=services.clock(), external_ref="ref-1").to_row())
    await set_status(services, ACCOUNT, Status.DEGRADED, "breaker")
    kinds = [json.loads(r.get("payload")) | {"kind": r.get("kind")} for r in services.tables.rows(OUTBOX)]
    assert [(k["kind"], k["status"], k["external_ref"]) for k in kinds] == [("account_status", "degraded", "ref-1")]

    # Its refresh cannot work (no token stored): 80 days on, the keep-alive fails and the SaaS is told, once.
    broker = TokenBroker(services, FakeIdentityProvider(), InMemoryTokenVault(services.clock))
    services.clock.advance(80 * 86400)
    await keep_tokens_alive(services, broker)
    expiring = [json.loads(r.get("payload")) for r in services.tables.rows(OUTBOX) if r.get("kind") == "token_expiring"]
    assert expiring == [{"account": ACCOUNT, "external_ref": "ref-1", "days_left": 10}]


def test_the_demo_saas_page_verifies_with_the_documented_example_verbatim():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    demo = (Path(__file__).resolve().parents[2] / "devstack" / "demo_verify.py").read_text()
    assert code.group(1).strip() in demo


async def test_a_slice_that_dies_before_its_ping_pings_on_its_next_run(services, monkeypatch):
    from shared.accounts.model import Account, Identity, Status
    from shared.sync.writer import EventWriter

    await services.tables.upsert("accounts", Account(ACCOUNT, Identity("t", "u", "u@contoso.test"),
                                                     Status.ACTIVE, 1).to_row())
    mailbox = FakeMailbox(page_size=50)
    mailbox.put(event(1))

    async def dies(*args: Any) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr("shared.sync.writer.owe_changes", dies)
    with pytest.raises(RuntimeError):
        await EventWriter(services, mailbox, mailbox).handle(Sync(account=ACCOUNT, reason="connect"))
    assert [r for r in services.tables.rows(OUTBOX) if r.row == "changes"] == []
    monkeypatch.setattr("shared.sync.writer.owe_changes", owe_changes)
    services.clock.advance(services.settings.lease_seconds + 1)  # the dead worker's lease runs out
    await EventWriter(services, mailbox, mailbox).handle(Sync(account=ACCOUNT, reason="continue"))
    (row,) = [r for r in services.tables.rows(OUTBOX) if r.row == "changes"]
    assert json.loads(row.get("payload"))["cursor"] == 1
