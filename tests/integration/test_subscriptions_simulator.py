"""The product's SubscriptionGateway on msgraph-sdk (shared/subscriptions/msgraph.py) against the Microsoft
365 simulator's subscriptions, with an account connected through the real msal and Key Vault client and a
test webhook answering the validation handshake (graph-notes §2.4, §2.8)."""

from __future__ import annotations

import pytest

from shared.errors import NotFound
from shared.subscriptions.gateway import NewSubscription
from shared.subscriptions.msgraph import MsGraphSubscriptions
from tests.devstack.webhook import Webhook

# The connected-account stack of the connect tests (a fixture defined in that module).
from tests.integration.test_connect_real_clients import ADELE, stack  # noqa: F401

MINUTE = 60


async def test_create_renew_reauthorize_list_delete(stack, certs):  # noqa: F811
    """The gateway's calls as the simulator answers them: Prefer: IdType="ImmutableId" recorded on create,
    PATCH renews, reauthorize, list finds the subscription, delete twice is fine, renew after expiry is
    NotFound (recreate)."""
    hook = Webhook(certs).start()
    try:
        account, confirmed = await stack.connect()
        assert confirmed.status == 200
        gateway = MsGraphSubscriptions(stack.services.settings, stack.auth.broker)
        now = stack.sim.state.clock.now()
        created = await gateway.create(account, NewSubscription(
            resource=f"users/{ADELE}/events", change_type="created,updated,deleted",
            notification_url=hook.url("notify"), lifecycle_url=hook.url("lifecycle"),
            expires_at=now + 4230 * MINUTE, client_state="state-1"))
        assert [v.path for v in hook.validations] == ["/notify", "/lifecycle"]
        assert abs(created.expires_at - (now + 4230 * MINUTE)) < 1
        assert stack.sim.state.subscriptions[created.id].id_type == "ImmutableId"
        renewed = await gateway.renew(account, created.id, now + 5000 * MINUTE)
        assert abs(renewed.expires_at - (now + 5000 * MINUTE)) < 1
        await gateway.reauthorize(account, created.id)
        assert [s.id for s in await gateway.list(account)] == [created.id]
        await gateway.delete(account, created.id)
        await gateway.delete(account, created.id)
        assert await gateway.list(account) == []

        again = await gateway.create(account, NewSubscription(
            resource=f"users/{ADELE}/events", change_type="updated", notification_url=hook.url("notify"),
            lifecycle_url=hook.url("lifecycle"), expires_at=now + 60 * MINUTE, client_state="state-2"))
        stack.control("clock/advance", {"seconds": 61 * MINUTE})
        stack.auth.broker.forget(account)  # its cached access token expired on the simulated clock
        with pytest.raises(NotFound):
            await gateway.renew(account, again.id, now + 4000 * MINUTE)
    finally:
        hook.stop()
