"""Subscriptions through the real msgraph-sdk against the simulator, with a test webhook answering the
validation handshake (Create subscription,
https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions; subscription
resource type, https://learn.microsoft.com/en-us/graph/api/resources/subscription; Update subscription,
https://learn.microsoft.com/en-us/graph/api/subscription-update)."""

from __future__ import annotations

import httpx
import jwt
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription

from devstack.azurite import free_port
from tests.devstack.subscribing import (
    MINUTE,
    app_token,
    create_error,
    delegated_client,
    minutes_ahead,
    new_subscription,
    subscribe,
)
from tests.devstack.webhook import Webhook
from tests.devstack.world import CLIENT_ID, TENANT_ID, World


async def test_create_runs_the_handshake_on_both_urls(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): POST {url}?validationToken=…
    with an empty text/plain body to notificationUrl and
    lifecycleNotificationUrl; 201 with the subscription when the endpoint echoes the decoded token."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    assert [v.path for v in hook.validations] == ["/notify", "/lifecycle"]
    first = hook.validations[0]
    assert first.body == b""
    assert first.content_type.startswith("text/plain")
    assert " " in first.query["validationToken"]  # a token that only survives if decoded
    assert (created.resource, created.change_type, created.client_state) == ("me/events", "created,updated,deleted",
                                                                              "state-1")
    assert created.application_id == "11111111-2222-3333-4444-555555555555"
    assert created.creator_id == world.alice
    assert created.expiration_date_time is not None
    assert abs(created.expiration_date_time.timestamp() - minutes_ahead(world, 4000).timestamp()) < 5
    fetched = await client.subscriptions.by_subscription_id(created.id or "").get()
    assert fetched is not None
    assert fetched.id == created.id
    listed = await client.subscriptions.get()
    assert listed is not None
    assert [s.id for s in listed.value or []] == [created.id]


async def test_same_url_for_both_gets_two_validation_requests(world: World, hook: Webhook):
    """Lifecycle docs: when lifecycleNotificationUrl equals notificationUrl, the endpoint is validated twice."""
    client = delegated_client(world, world.alice)
    await subscribe(world, hook, client, lifecycle_notification_url=hook.url("notify"))
    assert [v.path for v in hook.validations] == ["/notify", "/notify"]


@pytest.mark.parametrize("mode", ["encoded", "json", "status", "hang"])
async def test_failing_handshake_is_400(world: World, hook: Webhook, mode: str):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): anything but 200 text/plain with
    the decoded token within the time limit fails the create with 400
    (the time limit shortened by its switch); no subscription is left behind."""
    world.control("PATCH", "switches", {"validation_timeout_seconds": 0.3})
    hook.validation, hook.hang_seconds = mode, 1.0
    status, code, message = await create_error(world, hook, delegated_client(world, world.alice))
    assert (status, code) == (400, "InvalidRequest")
    assert message is not None
    assert message.startswith("Subscription validation request failed")
    assert world.control("GET", "subscriptions")["subscriptions"] == []


async def test_a_failing_lifecycle_url_fails_the_create(world: World, hook: Webhook):
    """Receive change notifications through webhooks
    (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks); Reduce missing subscriptions and
    change notifications (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events): the
    lifecycleNotificationUrl is validated too."""
    nobody = f"https://127.0.0.1:{free_port()}/lifecycle"  # nothing listens there
    status, code, _ = await create_error(world, hook, delegated_client(world, world.alice),
                                         lifecycle_notification_url=nobody)
    assert (status, code) == (400, "InvalidRequest")


async def test_create_rules(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview) changeType values, subscription
    resource type (https://learn.microsoft.com/en-us/graph/api/resources/subscription) clientState ≤ 128, Outlook
    change notifications overview (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview)
    https only; an event path is not a resource."""
    client = delegated_client(world, world.alice)
    assert (await create_error(world, hook, client, change_type="created,moved"))[0] == 400
    assert (await create_error(world, hook, client, client_state="x" * 129))[0] == 400
    assert (await subscribe(world, hook, client, client_state="x" * 128)).client_state == "x" * 128
    plain = "http://example.test/notify"
    assert (await create_error(world, hook, client, notification_url=plain))[0] == 400
    assert (await create_error(world, hook, client, lifecycle_notification_url=plain))[0] == 400
    status, code, message = await create_error(world, hook, client, resource="me/events/AAMkAGevent")
    assert (status, code) == (400, "ExtensionError")
    assert "of parameter 'Resource' is not supported" in (message or "")


async def test_http_loopback_urls_need_the_switch(world: World):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview) requires https; the assumed switch
    allow_http_loopback_urls admits the local runner's
    http://127.0.0.1 URL."""
    plain = Webhook().start()
    try:
        client = delegated_client(world, world.alice)
        assert (await create_error(world, plain, client))[0] == 400
        world.control("PATCH", "switches", {"allow_http_loopback_urls": True})
        created = await subscribe(world, plain, client)
        assert (created.notification_url or "").startswith("http://127.0.0.1:")
    finally:
        plain.stop()


async def test_lifetime_limits(world: World, hook: Webhook):
    """subscription resource type (https://learn.microsoft.com/en-us/graph/api/resources/subscription): over the
    maximum (10,080 or 4,230 minutes, a setting) is refused with Graph's ExtensionError, or
    clamped under the assumed switch; under 45 minutes becomes 45 minutes (subscription resource)."""
    client = delegated_client(world, world.alice)
    world.control("PATCH", "switches", {"subscription_max_minutes": 4230})
    status, code, message = await create_error(world, hook, client, expiration_date_time=minutes_ahead(world, 4300))
    assert (status, code, message) == (400, "ExtensionError",
                                       "Subscription expiration can only be 4230 minutes in the future.")
    world.control("PATCH", "switches", {"subscription_over_max": "clamp"})
    clamped = await subscribe(world, hook, client, expiration_date_time=minutes_ahead(world, 9000))
    assert clamped.expiration_date_time is not None
    assert abs(clamped.expiration_date_time.timestamp() - minutes_ahead(world, 4230).timestamp()) < 5
    short = await subscribe(world, hook, client, expiration_date_time=minutes_ahead(world, 5))
    assert short.expiration_date_time is not None
    assert abs(short.expiration_date_time.timestamp() - minutes_ahead(world, 45).timestamp()) < 5


async def test_resources_and_permissions(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): users/{id}/events and me/events
    need Calendars.Read or ReadWrite (delegated or application);
    users/{id}/calendars/{id}/events is behind an assumed switch; a delegated token watches only its own
    mailbox (assumed)."""
    alice = delegated_client(world, world.alice)
    assert (await subscribe(world, hook, alice, f"users/{world.alice}/events")).resource == \
        f"users/{world.alice}/events"
    per_calendar = f"users/{world.alice}/calendars/{world.alice_projects}/events"
    assert (await subscribe(world, hook, alice, per_calendar)).resource == per_calendar
    world.control("PATCH", "switches", {"per_calendar_subscriptions": False})
    assert (await create_error(world, hook, alice, per_calendar))[:2] == (400, "ExtensionError")
    assert (await create_error(world, hook, alice, f"users/{world.bob}/events"))[:2] == (403, "ExtensionError")
    reader = delegated_client(world, world.bob, scopes=["User.Read"])
    assert (await create_error(world, hook, reader))[:2] == (403, "ExtensionError")
    token = app_token(world)
    app = world.graph(token)
    # subscription resource type (https://learn.microsoft.com/en-us/graph/api/resources/subscription): under
    # application permissions creatorId is the app's service principal id, which the app token carries as oid.
    service_principal = jwt.decode(token, options={"verify_signature": False})["oid"]
    created_by_app = await subscribe(world, hook, app, f"users/{world.bob}/events")
    assert created_by_app.creator_id == service_principal
    assert created_by_app.creator_id != f"{CLIENT_ID}@{TENANT_ID}"
    assert (await create_error(world, hook, app, "me/events"))[0] == 400
    no_roles = world.graph(app_token(world, roles=["User.Read.All"]))
    assert (await create_error(world, hook, no_roles, f"users/{world.bob}/events"))[0] == 403


async def test_subscriptions_per_mailbox_limit(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): at most 1,000 per mailbox across
    apps (a switch; 2 here), then 403 with the reason."""
    world.control("PATCH", "switches", {"subscriptions_per_mailbox": 2})
    client = delegated_client(world, world.alice)
    await subscribe(world, hook, client)
    await subscribe(world, hook, client)
    status, _, message = await create_error(world, hook, client)
    assert status == 403
    assert "limit of 2 subscriptions" in (message or "")


async def test_renew_with_patch(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): PATCH {"expirationDateTime"}
    renews (200 with the subscription); a new notificationUrl is validated;
    other properties cannot change (lifecycleNotificationUrl only at creation: Reduce missing subscriptions and change
    notifications (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events))."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    item = client.subscriptions.by_subscription_id(created.id or "")
    renewed = await item.patch(Subscription(expiration_date_time=minutes_ahead(world, 9000)))
    assert renewed is not None
    assert renewed.expiration_date_time is not None
    assert abs(renewed.expiration_date_time.timestamp() - minutes_ahead(world, 9000).timestamp()) < 5
    moved = await item.patch(Subscription(notification_url=hook.url("moved")))
    assert moved is not None
    assert moved.notification_url == hook.url("moved")
    assert hook.validations[-1].path == "/moved"
    for change in (Subscription(lifecycle_notification_url=hook.url("other")), Subscription(client_state="new")):
        with pytest.raises(ODataError) as raised:
            await item.patch(change)
        assert raised.value.response_status_code == 400
    hook.validation = "status"
    with pytest.raises(ODataError) as failed:
        await item.patch(Subscription(notification_url=hook.url("broken")))
    assert failed.value.response_status_code == 400


async def test_delete_and_unknown_ids(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): DELETE answers 204; the
    subscription is then gone (404). Another user's subscription is not
    visible (404, assumed)."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    bob = delegated_client(world, world.bob)
    with pytest.raises(ODataError) as hidden:
        await bob.subscriptions.by_subscription_id(created.id or "").get()
    assert hidden.value.response_status_code == 404
    await client.subscriptions.by_subscription_id(created.id or "").delete()
    with pytest.raises(ODataError) as gone:
        await client.subscriptions.by_subscription_id(created.id or "").get()
    assert gone.value.response_status_code == 404


async def test_expiry_removes_an_unrenewed_subscription(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview): Graph deletes a subscription that
    was not renewed in time (on the simulator's clock)."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client, expiration_date_time=minutes_ahead(world, 60))
    world.control("POST", "clock/advance", {"seconds": 59 * MINUTE})
    assert world.control("GET", "subscriptions")["subscriptions"]
    world.control("POST", "clock/advance", {"seconds": 2 * MINUTE})
    assert world.control("GET", "subscriptions")["subscriptions"] == []
    assert world.control("GET", "counters")["notifications"]["subscriptions_expired"] == 1
    _, tokens = world.sign_in(world.alice)
    with pytest.raises(ODataError) as gone:
        await world.graph(tokens["access_token"]).subscriptions.by_subscription_id(created.id or "").get()
    assert gone.value.response_status_code == 404


async def test_reauthorize(world: World, hook: Webhook):
    """Reduce missing subscriptions and change notifications
    (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events): POST
    /subscriptions/{id}/reauthorize answers 204 and keeps the expiry."""
    client = delegated_client(world, world.alice)
    created = await subscribe(world, hook, client)
    await client.subscriptions.by_subscription_id(created.id or "").reauthorize.post()
    after = await client.subscriptions.by_subscription_id(created.id or "").get()
    assert after is not None
    assert after.expiration_date_time == created.expiration_date_time


async def test_immutable_id_preference_is_recorded(world: World, hook: Webhook):
    """Outlook change notifications overview
    (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview) (outlook-immutable-id): Prefer:
    IdType="ImmutableId" at creation is kept with the subscription."""
    client = delegated_client(world, world.alice)
    config: RequestConfiguration = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId"')
    created = await client.subscriptions.post(new_subscription(world, hook, "me/events"), request_configuration=config)
    plain = await subscribe(world, hook, client)
    assert created is not None
    kinds = {s["id"]: s["idType"] for s in world.control("GET", "subscriptions")["subscriptions"]}
    assert kinds == {created.id: "ImmutableId", plain.id: "RestId"}


def test_raw_create_without_a_token_is_401(world: World, hook: Webhook):
    """Every Graph route checks the bearer token first (InvalidAuthenticationToken)."""
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10) as http:
        response = http.post(f"{world.sim.graph_url}/subscriptions", json={})
    assert response.status_code == 401
    assert hook.validations == []
