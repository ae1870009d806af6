"""The product's SubscriptionGateway on the Graph gateway (shared/subscriptions/msgraph.py) against the Microsoft
365 simulator's subscriptions, with an account connected through the real msal and Key Vault client and a
test webhook answering the validation handshake ("Receive change notifications through webhooks",
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks)."""

from __future__ import annotations

import pytest

from shared.errors import NotFound, TransientGraphError
from shared.graph.gateway import GraphGateway
from shared.graph.governor import MailboxGovernor
from shared.subscriptions.gateway import NewSubscription
from shared.subscriptions.msgraph import MsGraphSubscriptions
from tests.devstack.webhook import Webhook
from tests.integration.sync_world import Sleeps

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
        gateway = MsGraphSubscriptions(stack.auth.gateway)
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



async def test_a_create_is_not_sent_again_after_a_5xx_but_is_after_a_429(stack, certs):  # noqa: F811
    """A POST answered 503 may have been done: sending it again could make a second subscription. A 429 was
    refused before any work ("Microsoft Graph throttling guidance",
    https://learn.microsoft.com/en-us/graph/throttling), so the gateway sends it again."""
    hook = Webhook(certs).start()
    try:
        account, confirmed = await stack.connect()
        assert confirmed.status == 200
        sleeps = Sleeps()
        gateway = MsGraphSubscriptions(GraphGateway(stack.services, stack.auth.broker, MailboxGovernor(),
                                                    sleep=sleeps))
        request = NewSubscription(resource=f"users/{ADELE}/events", change_type="updated",
                                  notification_url=hook.url("notify"), lifecycle_url=hook.url("lifecycle"),
                                  expires_at=stack.sim.state.clock.now() + 60 * MINUTE, client_state="s")
        stack.control("faults", {"path": "/v1.0/subscriptions", "method": "POST", "status": 503, "count": 1})
        with pytest.raises(TransientGraphError):
            await gateway.create(account, request)
        stack.control("faults", {"path": "/v1.0/subscriptions", "method": "POST", "status": 429, "retryAfter": 1,
                                 "count": 1})
        assert (await gateway.create(account, request)).id
        posts = [r.status for r in stack.sim.state.requests if r.path == "/v1.0/subscriptions" and r.method == "POST"]
        assert posts == [503, 429, 201]
        assert sleeps == [1.0]
    finally:
        hook.stop()

@pytest.fixture
def hook(certs, app_env):
    """A webhook answering the handshake at PUBLIC_BASE_URL, set before the app reads its settings."""
    webhook = Webhook(certs).start()
    app_env.setenv("PUBLIC_BASE_URL", webhook.url("").rstrip("/"))
    try:
        yield webhook
    finally:
        webhook.stop()


def _allow_callback(stack) -> None:  # noqa: F811 - the stack fixture's name
    """The app registration accepts the callback under the webhook's PUBLIC_BASE_URL too."""
    settings = stack.services.settings
    stack.sim.state.apps[settings.client_id].redirect_uris.append(f"{settings.public_base_url}/api/oauth/callback")


def _graph_requests(stack, method: str, path: str) -> int:  # noqa: F811 - the stack fixture's name
    return sum(1 for r in stack.sim.state.requests if (r.method, r.path) == (method, path))


async def test_an_unsupported_account_deletes_its_subscription_with_a_cleanup_token(hook, stack):  # noqa: F811
    """Review finding 3: the broker refused every token to a non-live account, so the delete the status
    matrix asks for never happened and the subscription stayed live at Graph."""
    from shared.accounts.status import mark_unsupported
    from shared.dispatch import dispatch
    from shared.errors import MailboxUnsupported
    from shared.messages import Subscribe
    from shared.subscriptions.worker import SubscriptionWorker

    _allow_callback(stack)
    account, _ = await stack.connect()
    worker = SubscriptionWorker(stack.services, MsGraphSubscriptions(stack.auth.gateway))
    await worker.handle(Subscribe(account=account))
    (sub,) = [s for s in stack.sim.state.subscriptions.values() if s.mailbox_id == ADELE]
    await mark_unsupported(stack.services, account, MailboxUnsupported("gone", code="MailboxNotEnabledForRESTAPI"))
    stack.auth.broker.forget(account)  # another instance: no access token cached
    await dispatch(Subscribe(account=account).to_json(), worker.handle, stack.services)
    assert sub.id not in stack.sim.state.subscriptions
    assert _graph_requests(stack, "DELETE", f"/v1.0/subscriptions/{sub.id}") == 1


async def test_one_patch_per_subscription_per_renewal_window(hook, stack):  # noqa: F811
    """Review finding 4: the renewer queues a renew on every run until the expiry moves on; counted at the
    simulator, only the first of four reaches Graph."""
    import dataclasses
    import time

    from shared.messages import Renew, Subscribe
    from shared.subscriptions.renewer import plan_renewals
    from shared.subscriptions.worker import SubscriptionWorker

    _allow_callback(stack)
    account, _ = await stack.connect()
    gateway = MsGraphSubscriptions(stack.auth.gateway)
    await SubscriptionWorker(stack.services, gateway).handle(Subscribe(account=account))
    (sub,) = [s for s in stack.sim.state.subscriptions.values() if s.mailbox_id == ADELE]
    offset = 60 * 3600.0  # 60 hours on: within the renew margin of a 70.5-hour subscription
    stack.control("clock/advance", {"seconds": offset})
    stack.auth.broker.forget(account)  # its access token expired on the simulated clock
    queued = []
    for _ in range(4):  # four renewer runs, 15 minutes apart, while the first renew still waits out its delay
        later = dataclasses.replace(stack.services, clock=lambda at=offset: time.time() + at)
        queued += [m for m, _ in (await plan_renewals(later)).messages]
        offset += 15 * 60
    assert queued == 4 * [Renew(account=account, subscription=sub.id)]
    for message in queued:
        await SubscriptionWorker(later, gateway).handle(message)
    assert _graph_requests(stack, "PATCH", f"/v1.0/subscriptions/{sub.id}") == 1
