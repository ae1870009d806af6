"""A reconnect heals the account's subscriptions: after the user's sessions are revoked, Graph holds the
subscription paused (its reauthorizationRequired could not be answered with a dead grant), and changes
made while it is paused are lost. Once the user reconnects and the SaaS confirms, every subscription of the
account is reauthorized with the new connection's token (or recreated), and a full sync is queued, so the
next change reaches the webhook.

Microsoft's pages: "Receive change notifications through webhooks" (lifecycle notifications,
https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events) and "subscription:
reauthorize" (https://learn.microsoft.com/en-us/graph/api/subscription-reauthorize)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.messages import parse_message
from shared.wiring import get_work_queue
from tests.devstack.conftest import until
from tests.e2e.test_connect import ADELE, account_status, connect
from tests.e2e.test_subscriptions import connect_and_subscribe, sim_subscriptions


async def _syncs(account: str, reason: str) -> list:
    messages = (parse_message(b) for b in await get_work_queue().peek("sync", 32))
    return [m for m in messages if m.account == account and getattr(m, "reason", None) == reason]


def _counters(stack) -> dict[str, Any]:
    response = stack.sim_session.get(f"{stack.sim_url}/_sim/counters", timeout=10)
    response.raise_for_status()
    return dict(response.json()["notifications"])


@pytest.mark.disabled_functions("event_writer")  # the test reads the sync queue itself
async def test_after_a_reconnect_the_paused_subscription_delivers_again(stack, monkeypatch):
    account, _ = await connect_and_subscribe(stack, monkeypatch)

    # The user's sessions are revoked: Graph pauses the subscription and asks for reauthorization, which
    # the worker cannot give with a dead grant, so the account waits for its user.
    stack.control(f"users/{ADELE}/revoke-sessions")
    stack.control("notifications/flush")
    await until(_status_is(stack, account, "needs_reconnect"), 30, "needs_reconnect after the revocation")
    assert [s["paused"] for s in sim_subscriptions(stack)] == [True]

    # The user reconnects from the link the SaaS shows; the SaaS confirms.
    described = await account_status(stack, account)
    again, reconfirmed = await connect(stack, link=described["reconnect_url"])
    assert again == account
    assert (reconfirmed.json()["status"], reconfirmed.json()["generation"]) == ("active", 2)
    assert await _syncs(account, "connect"), "a full sync is queued after the reconnect"
    healed: Any = await until(lambda: [s for s in sim_subscriptions(stack) if not s["paused"]], 30,
                              "a live subscription that is not paused")
    assert len(healed) == 1
    assert len(sim_subscriptions(stack)) == 1

    # The next change made in Outlook reaches the webhook as one sync.
    lost_before = _counters(stack).get("lost_while_paused", 0)
    stack.control("notifications/change", {"user": ADELE, "changeType": "updated"})
    stack.control("notifications/flush")
    await until(lambda: _syncs(account, "notification"), 10, "a sync message from the change")
    assert len(await _syncs(account, "notification")) == 1
    assert _counters(stack).get("lost_while_paused", 0) == lost_before


def _status_is(stack, account: str, status: str):
    async def check() -> bool:
        return bool((await account_status(stack, account))["status"] == status)
    return check
