"""The webhook and lifecycle receivers through the local runner over HTTP, queueing on Azurite."""

from __future__ import annotations

import json

import pytest

from shared.config import get_settings
from shared.ids import new_account_id
from shared.messages import parse_message
from shared.wiring import get_work_queue
from tests.unit.test_webhook import notification


async def queued(queue_name: str, account: str) -> list:
    return [m for m in (parse_message(b) for b in await get_work_queue().peek(queue_name)) if m.account == account]


@pytest.mark.disabled_functions("event_writer")  # the test reads the sync queue itself
async def test_handshake_batch_and_forgery_through_the_runner(stack, monkeypatch):
    url = f"{stack.base}/api/notifications"
    token = "Validation: Testing client application reachability <b>1</b>"
    handshake = await stack.http.post(url, params={"validationToken": token}, content=b"",
                                      headers={"content-type": "text/plain; charset=utf-8"})
    assert (handshake.status_code, handshake.text) == (200, token)
    assert handshake.headers["content-type"].startswith("text/plain")

    monkeypatch.setenv("COALESCE_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    key = get_settings().client_state_keys[0]
    a, b = new_account_id(), new_account_id()
    items = [notification(a, key=key, change="created"), notification(a, key=key), notification(b, key=key)]
    response = await stack.http.post(url, content=json.dumps({"value": items}),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 202
    assert len(await queued("sync", a)) == 1
    assert len(await queued("sync", b)) == 1

    forged = notification(new_account_id(), key=key)
    forged["clientState"] = forged["clientState"][:-3] + "abc"
    probe = await stack.http.post(url, content=json.dumps({"value": [forged]}),
                                  headers={"content-type": "application/json"})
    assert probe.status_code == 202  # a probe learns nothing
    assert await queued("sync", forged["clientState"].split(".")[1]) == []

    bad = await stack.http.post(url, content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    wrong_type = await stack.http.post(url, content=b"{}", headers={"content-type": "text/html"})
    assert wrong_type.status_code == 415


@pytest.mark.disabled_functions("subscription_worker", "event_writer")  # it reads both queues itself
async def test_lifecycle_events_through_the_runner(stack, monkeypatch):
    monkeypatch.setenv("COALESCE_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    key = get_settings().client_state_keys[0]
    account = new_account_id()
    items = [dict(notification(account, key=key), lifecycleEvent="reauthorizationRequired"),
             dict(notification(account, key=key), lifecycleEvent="subscriptionRemoved")]
    response = await stack.http.post(f"{stack.base}/api/lifecycle", content=json.dumps({"value": items}),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 202
    kinds = sorted(m.kind for m in await queued("subscriptions", account))
    assert kinds == ["reauthorize", "subscribe"]
    assert [m.reason for m in await queued("sync", account)] == ["lifecycle"]
