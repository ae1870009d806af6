"""The webhook and lifecycle receivers: handshake, clientState, batches to messages, bad input."""

from __future__ import annotations

import base64
import json

import pytest

from shared.config import ClientStateKey
from shared.ids import new_account_id
from shared.messages import Reauthorize, Subscribe, Sync, parse_message
from shared.store.memory import InMemoryWorkQueue
from shared.webhook.client_state import MAX_LENGTH, make_client_state, verify_client_state
from shared.webhook.receiver import (
    enqueue,
    parse_batch,
    plan_lifecycle,
    plan_notifications,
    validation_response,
)
from tests.fakes import FakeClock

K1 = ClientStateKey("k1", b"1" * 32)
K2 = ClientStateKey("k2", b"2" * 32)
TENANT = "5e3f1d2c-0000-4000-8000-00000000de30"
OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444444444444"


def notification(account: str, *, key: ClientStateKey = K1, tenant: str = TENANT, change: str = "updated",
                 generation: int = 1, event_id: str = "AAMkAD=") -> dict:
    """A change notification shaped as "Receive change notifications through webhooks" shows
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks)."""
    return {
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2026-11-28T18:23:45.9356913Z",
        "clientState": make_client_state(key, account, generation, tenant),
        "changeType": change, "tenantId": tenant,
        "resource": f"Users/oid/Events/{event_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": f"Users/oid/Events/{event_id}",
                         "@odata.etag": 'W/"DwAAABYAAAA"', "id": event_id},
    }


# --- clientState (docs/architecture.md, "Notifications and subscriptions") ------------------------

def test_client_state_round_trips_and_stays_under_graphs_limit():
    account = new_account_id()
    value = make_client_state(K1, account, 12, TENANT)
    assert len(value) <= MAX_LENGTH  # subscription resource type: clientState is 128 characters at most
    claims = verify_client_state(value, TENANT, [K1])
    assert claims is not None
    assert (claims.account, claims.key_id, claims.generation) == (account, "k1", 12)
    assert verify_client_state(value, TENANT.upper(), [K1]) is not None  # tenant ids compare case-insensitively


def test_client_state_under_a_second_key_is_accepted_during_rotation_and_refused_after():
    account = new_account_id()
    old = make_client_state(K1, account, 1, TENANT)
    assert verify_client_state(old, TENANT, [K2, K1]) is not None
    assert verify_client_state(old, TENANT, [K2]) is None  # k1 retired


@pytest.mark.parametrize("tamper", [
    lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),            # MAC changed
    lambda v: v.replace(".1.", ".2.", 1),                          # generation changed
    lambda v: v.replace("v1.", "v2.", 1),                          # version
    lambda v: ".".join(v.split(".")[:4]),                          # MAC missing
    lambda v: v + "." + "x",                                       # extra part
    lambda v: "",
    lambda v: "x" * 200,
])
def test_tampered_client_state_is_refused(tamper):
    value = make_client_state(K1, new_account_id(), 1, TENANT)
    assert verify_client_state(tamper(value), TENANT, [K1]) is None


def test_a_valid_mac_with_another_tenants_id_is_refused():
    value = make_client_state(K1, new_account_id(), 1, TENANT)
    assert verify_client_state(value, OTHER_TENANT, [K1]) is None
    assert verify_client_state(value, None, [K1]) is None


def test_a_client_state_for_another_account_id_is_refused():
    a, b = new_account_id(), new_account_id()
    value = make_client_state(K1, a, 1, TENANT)
    assert verify_client_state(value.replace(a, b), TENANT, [K1]) is None


# --- handshake ("Receive change notifications through webhooks", notificationUrl validation) ---

def test_validation_token_is_echoed_as_plain_text_only():
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    result = validation_response({"validationToken": token})
    assert result is not None
    assert (result.status, result.body.decode(), result.content_type) == (200, token, "text/plain; charset=utf-8")
    assert validation_response({}) is None


def test_validation_token_holding_markup_stays_inert_text():
    hostile = "<script>alert(1)</script>"
    result = validation_response({"validationToken": hostile})
    assert result is not None
    assert result.content_type.startswith("text/plain")
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert result.body == hostile.encode()


# --- batches -----------------------------------------------------------------------------------------

def body(*items) -> bytes:
    return json.dumps({"value": list(items)}).encode()


@pytest.mark.parametrize(("raw", "content_type", "status"), [
    (b"{not json", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'{"value": []}', "application/json", 400),
    (b'{"value": {}}', "application/json", 400),
    (b'{"value": [1]}', "text/plain", 415),
    (b"x" * (1024 * 1024 + 1), "application/json", 413),
    (json.dumps({"value": [{}] * 1001}).encode(), "application/json", 413),
])
def test_malformed_batches_get_a_clear_4xx(raw, content_type, status):
    result = parse_batch(raw, content_type)
    assert not isinstance(result, list)
    assert result.status == status


def test_one_sync_per_account_whatever_the_number_of_items():
    a, b = new_account_id(), new_account_id()
    items = [notification(a, change="created"), notification(a, change="updated")] * 50 + [notification(b)]
    parsed = parse_batch(body(*items), "application/json; charset=utf-8")
    assert isinstance(parsed, list)
    receipt = plan_notifications(parsed, [K1])
    assert receipt.messages == (Sync(account=a, reason="notification"), Sync(account=b, reason="notification"))
    assert (receipt.items, receipt.forged) == (101, 0)


def test_forged_and_foreign_items_are_dropped_and_counted():
    a = new_account_id()
    forged = notification(a)
    forged["clientState"] = forged["clientState"][:-2] + "zz"
    foreign = notification(new_account_id(), tenant=TENANT)
    foreign["tenantId"] = OTHER_TENANT
    missing = notification(a)
    del missing["clientState"]
    receipt = plan_notifications([forged, foreign, missing, "not an object", notification(a)], [K1])
    assert receipt.messages == (Sync(account=a, reason="notification"),)
    assert receipt.forged == 4


def test_lifecycle_events_become_their_jobs():
    a = new_account_id()
    items = [dict(notification(a), lifecycleEvent="reauthorizationRequired", subscriptionId="sub-1"),
             dict(notification(a), lifecycleEvent="reauthorizationRequired", subscriptionId="sub-1"),
             dict(notification(a), lifecycleEvent="subscriptionRemoved"),
             dict(notification(a), lifecycleEvent="missed"),
             dict(notification(a), lifecycleEvent="somethingNew")]
    receipt = plan_lifecycle(items, [K1])
    assert receipt.messages == (Reauthorize(account=a, subscription="sub-1"), Subscribe(account=a),
                                Sync(account=a, reason="lifecycle"))


async def test_enqueue_delays_syncs_to_coalesce_and_answers_202():
    clock = FakeClock()
    queue = InMemoryWorkQueue(clock)
    a = new_account_id()
    receipt = plan_lifecycle([dict(notification(a), lifecycleEvent="subscriptionRemoved")], [K1])
    result = await enqueue(receipt, queue, sync_delay=5)
    assert result.status == 202
    assert [parse_message(m) for m in await queue.peek("subscriptions")] == [Subscribe(account=a)]
    assert await queue.peek("sync") == []  # the sync waits for the burst to settle
    clock.advance(5)
    assert [parse_message(m) for m in await queue.peek("sync")] == [Sync(account=a, reason="lifecycle")]


async def test_a_failed_enqueue_answers_503_so_graph_retries():
    class BrokenQueue:
        async def send(self, message, *, delay_seconds=0.0):
            raise ConnectionError("storage down")

    receipt = plan_notifications([notification(new_account_id())], [K1])
    result = await enqueue(receipt, BrokenQueue(), sync_delay=5)  # type: ignore[arg-type]
    assert result.status == 503


def test_key_material_is_not_in_the_client_state():
    value = make_client_state(K1, new_account_id(), 1, TENANT)
    assert base64.b64encode(K1.key).decode() not in value
