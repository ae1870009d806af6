"""Event writes through Graph and a person's actions through the control API fire change notifications with the
right changeType (Receive change notifications through webhooks,
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks); Exchange's invitations and
attendee copies (switches, assumed); a generated large mailbox."""

from __future__ import annotations

import time
from typing import Any

import httpx
from kiota_abstractions.base_request_configuration import RequestConfiguration

from tests.devstack.subscribing import delegated_client, new_subscription, subscribe
from tests.devstack.test_events import a_token, lunch, raw
from tests.devstack.webhook import Webhook
from tests.devstack.world import World


def changes(world: World, hook: Webhook) -> list[tuple[str, str]]:
    world.control("POST", "notifications/flush", {"seconds": 5})
    return [(i["changeType"], i["resourceData"]["id"]) for i in hook.items()]


async def test_graph_writes_notify_created_updated_deleted(world: World, hook: Webhook):
    """A create notifies created (and updated: switch create_also_updated), a PATCH updated, a DELETE deleted,
    each with the event's id."""
    await subscribe(world, hook, delegated_client(world, world.alice))
    token = a_token(world, world.alice)
    event = raw(world, "POST", "/me/events", token, lunch()).json()
    raw(world, "PATCH", f"/me/events/{event['id']}", token, {"subject": "later"})
    raw(world, "DELETE", f"/me/events/{event['id']}", token)
    assert changes(world, hook) == [("created", event["id"]), ("updated", event["id"]), ("updated", event["id"]),
                                    ("deleted", event["id"])]


async def test_user_actions_notify_and_a_move_carries_the_ids_each_subscription_asked_for(world: World,
                                                                                          hook: Webhook):
    """Control user actions (create, edit, move to another calendar, delete) notify like Graph writes; a move is
    deleted + created (switch move_notifications, assumed), with the new REST id, or the unchanged immutable id
    for a subscription made with Prefer: IdType="ImmutableId" (Obtain immutable identifiers for Outlook resources,
    https://learn.microsoft.com/en-us/graph/outlook-immutable-id)."""
    client = delegated_client(world, world.alice)
    await subscribe(world, hook, client)
    world.control("PATCH", "switches", {"create_also_updated": False})
    made = world.control("POST", f"users/{world.alice}/events", lunch())
    world.control("PATCH", f"users/{world.alice}/events/{made['id']}", {
        "start": {"dateTime": "2030-04-16T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-04-16T13:00:00", "timeZone": "UTC"}})
    moved = world.control("POST", f"users/{world.alice}/events/{made['id']}/move",
                          {"calendar": world.alice_projects})
    world.control("DELETE", f"users/{world.alice}/events/{moved['restId']}")
    assert changes(world, hook) == [("created", made["id"]), ("updated", made["id"]), ("deleted", made["id"]),
                                    ("created", moved["restId"]), ("deleted", moved["restId"])]


async def test_immutable_subscription_hears_immutable_ids(world: World, hook: Webhook):
    """A subscription created with Prefer: IdType="ImmutableId" is notified with immutable ids (outlook-immutable-id
    docs above)."""
    client = delegated_client(world, world.alice)
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId"')
    await client.subscriptions.post(new_subscription(world, hook, "me/events"), config)
    world.control("PATCH", "switches", {"create_also_updated": False})
    made = world.control("POST", f"users/{world.alice}/events", lunch())
    world.control("POST", f"users/{world.alice}/events/{made['id']}/move", {"calendar": world.alice_projects})
    assert changes(world, hook) == [("created", made["immutableId"]), ("deleted", made["immutableId"]),
                                    ("created", made["immutableId"])]


async def test_invitations_attendee_copies_and_replies(world: World):
    """Create event: the server sends invitations to the attendees (counted per organizer mailbox, so a test can
    prove none went out); an attendee who is a simulated mailbox gets a copy and accepts it, which sets the
    organizer's attendee status and moves its change key (switches send_invitations, attendee_copies,
    change_key_on_reply, assumed); event: accept (https://learn.microsoft.com/en-us/graph/api/event-accept)."""
    alice = a_token(world, world.alice)
    raw(world, "POST", "/me/events", alice, lunch())
    assert world.control("GET", "counters")["invitations"] == {}
    meeting = raw(world, "POST", "/me/events", alice, lunch(attendees=[
        {"emailAddress": {"address": "bob@fabrikam.test", "name": "Bob Baker"}, "type": "required"},
        {"emailAddress": {"address": "someone@elsewhere.test"}, "type": "optional"}])).json()
    assert world.control("GET", "counters")["invitations"] == {world.alice: 2}
    bob = a_token(world, world.bob)
    [copy] = raw(world, "GET", "/me/events", bob).json()["value"]
    assert (copy["isOrganizer"], copy["iCalUId"], copy["responseStatus"]["response"]) == \
        (False, meeting["iCalUId"], "notResponded")
    assert raw(world, "POST", f"/me/events/{copy['id']}/accept", bob, {"sendResponse": True}).status_code == 202
    after = raw(world, "GET", f"/me/events/{meeting['id']}", alice).json()
    assert after["attendees"][0]["status"]["response"] == "accepted"
    assert after["changeKey"] != meeting["changeKey"]
    world.control("POST", f"users/{world.bob}/events/{copy['id']}/respond", {"response": "decline"})
    assert raw(world, "GET", f"/me/events/{meeting['id']}", alice).json()["attendees"][0]["status"][
        "response"] == "declined"
    world.control("PATCH", "switches", {"send_invitations": False})
    raw(world, "POST", "/me/events", alice, lunch(attendees=[{"emailAddress": {"address": "x@y.test"}}]))
    assert world.control("GET", "counters")["invitations"] == {world.alice: 2}


async def test_exchange_write_switches(world: World):
    """What Exchange does to a write, each a switch (assumed): the location name trimmed, a text body kept as text
    when text_body_as_html is off."""
    token = a_token(world, world.alice)
    trimmed = raw(world, "POST", "/me/events", token, lunch()).json()
    assert trimmed["location"]["displayName"] == "Harry's Bar"
    world.control("PATCH", "switches", {"trim_location": False, "text_body_as_html": False})
    kept = raw(world, "POST", "/me/events", token, lunch(body={"contentType": "text", "content": "plain"})).json()
    assert kept["location"]["displayName"] == "  Harry's Bar "
    assert kept["body"] == {"contentType": "text", "content": "plain"}


def test_a_generated_mailbox_pages_fast(world: World):
    """Scale: 100,000 events from one control call in seconds; a page of 50 through Graph (List events,
    https://learn.microsoft.com/en-us/graph/api/user-list-events) stays quick (docs/devstack.md has the median
    measured)."""
    started = time.perf_counter()
    made = world.control("POST", f"users/{world.bob}/events/generate", {"count": 100_000, "seed": 7})
    assert made["created"] == 100_000
    assert time.perf_counter() - started < 20
    token = a_token(world, world.bob)
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        timings = []
        for skip in range(0, 99_951, 5_000):
            t0 = time.perf_counter()
            page = http.get(f"{world.sim.graph_url}/me/events", params={"$top": "50", "$skip": str(skip)})
            timings.append(time.perf_counter() - t0)
            assert page.status_code == 200
            assert len(page.json()["value"]) == 50
        timings.sort()
        assert timings[len(timings) // 2] < 0.2  # a loose bound for a shared 2-core machine; docs give the median
