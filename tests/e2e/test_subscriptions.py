"""The notification layer end to end: connect through the runner, the subscription worker (a queue
trigger on the runner) creates the subscription at the simulator after a live handshake, a change fired
in the simulator reaches the webhook as one sync per account, lifecycle events trigger their jobs, and
the renewer renews ahead of expiry."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shared.config import get_settings
from shared.messages import Renew, parse_message
from shared.subscriptions.renewer import plan_renewals
from shared.subscriptions.worker import SubscriptionWorker
from shared.wiring import get_auth, get_services, get_work_queue
from tests.devstack.conftest import until
from tests.e2e.test_connect import ADELE, connect


def sim_subscriptions(stack) -> list[dict]:
    response = stack.sim_session.get(f"{stack.sim_url}/_sim/subscriptions", timeout=10)
    response.raise_for_status()
    return [s for s in response.json()["subscriptions"] if s.get("mailbox") == ADELE]


async def syncs(account: str) -> list:
    return [m for m in (parse_message(b) for b in await get_work_queue().peek("sync")) if m.account == account]


def sim_patch_switches(stack, **switches) -> None:
    stack.sim_session.patch(f"{stack.sim_url}/_sim/switches", json=switches, timeout=10).raise_for_status()


async def connect_and_subscribe(stack, monkeypatch) -> tuple[str, dict[str, Any]]:
    """Connect Adele (no coalescing delay); the runner's subscription worker takes the queued subscribe
    and creates her subscription at the simulator. Returns (account, the subscription)."""
    monkeypatch.setenv("COALESCE_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    sim_patch_switches(stack, allow_http_loopback_urls=True)  # the runner serves http on 127.0.0.1
    account, confirmed = await connect(stack)
    assert confirmed.status_code == 200, confirmed.text
    found: Any = await until(lambda: sim_subscriptions(stack), 30, "the subscription at the simulator")
    (created,) = found
    return account, created


@pytest.mark.disabled_functions("event_writer")  # the test reads the sync queue itself
async def test_subscribe_notify_lifecycle_and_renew_through_the_stack(stack, monkeypatch):
    account, created = await connect_and_subscribe(stack, monkeypatch)
    assert created["idType"] == "ImmutableId"
    counters = stack.sim_session.get(f"{stack.sim_url}/_sim/counters", timeout=10).json()["notifications"]
    assert counters["validations_passed"] >= 2  # both URLs answered the handshake

    # A change in Outlook: created + updated notifications, one sync message for the account.
    before = len(await syncs(account))
    stack.control("notifications/change", {"user": ADELE, "changeType": "created"})
    stack.control("notifications/flush")
    await until(lambda: _more(account, before), 10, "a sync message from the notification")
    await _settle()
    assert len(await syncs(account)) == before + 1

    # reauthorizationRequired -> the worker reauthorizes at Graph.
    stack.control(f"subscriptions/{created['id']}/lifecycle", {"event": "reauthorizationRequired"})
    stack.control("notifications/flush")
    await until(lambda: _requested(stack, f"POST /v1.0/subscriptions/{created['id']}/reauthorize"), 20,
                "the reauthorize call")

    # subscriptionRemoved -> a new subscription, and a sync to catch up.
    stack.control(f"subscriptions/{created['id']}/lifecycle", {"event": "subscriptionRemoved"})
    stack.control("notifications/flush")
    found: Any = await until(lambda: [s for s in sim_subscriptions(stack) if s["id"] != created["id"]], 30,
                             "the recreated subscription")
    (recreated,) = found
    assert [s["id"] for s in sim_subscriptions(stack)] == [recreated["id"]]

    # The renewer, 60 hours on: the subscription is within the renew margin and gets renewed.
    services = get_services()
    later = dataclasses.replace(services, clock=lambda: services.clock() + 60 * 3600)
    planned = [m for m, _ in (await plan_renewals(later)).messages]
    assert Renew(account=account, subscription=recreated["id"]) in planned
    before_expiry = recreated["expirationDateTime"]
    stack.control("clock/advance", {"seconds": 60 * 3600})  # the simulator's clock moves on with it
    get_auth().broker.forget(account)  # its access token expired on the simulated clock
    await SubscriptionWorker(later, get_auth().subscriptions).handle(
        Renew(account=account, subscription=recreated["id"]))
    (renewed,) = sim_subscriptions(stack)
    assert renewed["id"] == recreated["id"]
    assert renewed["expirationDateTime"] >= before_expiry
    assert _requested(stack, f"PATCH /v1.0/subscriptions/{recreated['id']}")


async def _more(account: str, before: int) -> bool:
    return len(await syncs(account)) > before


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(0.5)  # a second (wrong) message would have arrived by now


def _requested(stack, route: str) -> bool:
    log = stack.sim_session.get(f"{stack.sim_url}/_sim/requests", timeout=10).json()
    entries = log.get("requests", log) if isinstance(log, dict) else log
    return any(f"{e.get('method')} {e.get('path')}" == route for e in entries)
