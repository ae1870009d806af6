"""$batch against the simulator, through msgraph-sdk's BatchRequestContent and raw httpx (the SDK reads neither
JSON item bodies nor dependsOn, see below): Combine multiple HTTP requests using JSON batching
(https://learn.microsoft.com/en-us/graph/json-batching), the Outlook limits for JSON batching in Microsoft Graph
service-specific throttling limits (https://learn.microsoft.com/en-us/graph/throttling-limits) and "Throttling and
batching" in Microsoft Graph throttling guidance (https://learn.microsoft.com/en-us/graph/throttling)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from tests.devstack.subscribing import app_token
from tests.devstack.test_events import a_token, lunch, sdk_event
from tests.devstack.world import World

JSON = {"Content-Type": "application/json"}


def batch(world: World, token: str, requests: list[dict[str, Any]]) -> httpx.Response:
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=30) as client:
        return client.post(f"{world.sim.graph_url}/$batch", json={"requests": requests},
                           headers={"Authorization": f"Bearer {token}"})


def by_id(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def create(i: int) -> dict[str, Any]:
    return {"id": str(i), "method": "POST", "url": "/me/events", "headers": JSON, "body": lunch(subject=f"b{i}")}


def events_of(world: World, user: str) -> list[str]:
    with world.state.lock:
        return [e.props.get("subject", "") for e in world.state.events.events.values() if e.mailbox_id == user]


async def test_a_batch_through_the_sdk(world: World):
    """JSON batching: the batch answers 200 and each request its own status and headers; a failed request (404)
    does not fail the others. Every request ran as a request of its own (the request log names the batch)."""
    client = world.graph(a_token(world, world.alice))
    items = [BatchRequestItem(request_information=client.me.events.to_post_request_information(sdk_event(f"s{i}")))
             for i in range(3)]
    unknown = client.me.events.by_event_id("AAMkAnope").to_get_request_information()
    missing = BatchRequestItem(request_information=unknown)
    content = BatchRequestContent({item.id: item for item in [*items, missing]})
    answer = await client.batch.post(batch_request_content=content)
    statuses = answer.get_response_status_codes()
    assert statuses == {**{item.id: 201 for item in items}, missing.id: 404}
    for item in items:
        response = answer.get_response_by_id(item.id)
        assert response is not None
        assert response.content_type is not None
        assert response.content_type.startswith("application/json")
    assert sorted(events_of(world, world.alice)) == ["s0", "s1", "s2"]
    with world.state.lock:
        batch_request = next(r for r in world.state.requests if r.path == "/v1.0/$batch")
        inner = [r for r in world.state.requests if r.batch == batch_request.request_id]
    assert sorted((r.method, r.status) for r in inner) == [("GET", 404), ("POST", 201), ("POST", 201),
                                                          ("POST", 201)]


async def test_each_response_has_id_status_headers_and_body(world: World):
    """JSON batching: responses carry id, status, headers and body (a JSON object); a 204 has no body; ids are
    matched case-insensitively and each request's own headers (Prefer) apply to it alone."""
    token = a_token(world, world.alice)
    first = by_id(batch(world, token, [create(1)]))["1"]
    event_id = first["body"]["id"]
    assert first["status"] == 201
    assert first["headers"]["Content-Type"].startswith("application/json")
    assert first["body"]["subject"] == "b1"
    answers = by_id(batch(world, token, [
        {"id": "get", "method": "GET", "url": f"me/events/{event_id}",
         "headers": {"Prefer": 'outlook.timezone="Tokyo Standard Time"'}},
        {"id": "plain", "method": "GET", "url": f"/me/events/{event_id}"},
        {"id": "del", "method": "DELETE", "url": f"/me/events/{event_id}", "dependsOn": ["GET", "plain"]},
    ]))
    assert answers["get"]["body"]["start"]["timeZone"] == "Tokyo Standard Time"
    assert answers["get"]["headers"]["Preference-Applied"] == 'outlook.timezone="Tokyo Standard Time"'
    assert answers["plain"]["body"]["start"]["timeZone"] == "UTC"
    assert answers["del"]["status"] == 204
    assert "body" not in answers["del"]
    assert events_of(world, world.alice) == []


def test_malformed_batches_are_400(world: World):
    """JSON batching: at most 20 requests; ids unique (not case-sensitive), else the batch is 400; a body needs a
    Content-Type header (the page's rules; messages assumed). A dependency must come earlier in the array
    (reported, msgraph-sdk-dotnet-core#891). The batch itself needs a valid token."""
    token = a_token(world, world.alice)
    assert batch(world, token, [create(i) for i in range(20)]).status_code == 200
    too_many = batch(world, token, [create(i) for i in range(21)])
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "BadRequest"
    assert batch(world, token, [{"id": "a", "method": "GET", "url": "/me"},
                                {"id": "A", "method": "GET", "url": "/me"}]).status_code == 400
    no_type = {"id": "1", "method": "POST", "url": "/me/events", "body": lunch()}
    assert batch(world, token, [no_type]).status_code == 400
    later: list[dict[str, Any]] = [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["2"]},
                                   {"id": "2", "method": "GET", "url": "/me"}]
    assert batch(world, token, later).status_code == 400
    assert batch(world, "not-a-token", [{"id": "1", "method": "GET", "url": "/me"}]).status_code == 401
    assert len(events_of(world, world.alice)) == 20  # only the valid batch wrote


def test_depends_on_gives_424_when_a_dependency_failed(world: World):
    """JSON batching, "Sequencing requests with the dependsOn property": a request whose dependency failed is 424
    Failed Dependency and does not run; its own dependants are 424 too; an independent request still runs."""
    token = a_token(world, world.alice)
    answers = by_id(batch(world, token, [
        {"id": "1", "method": "GET", "url": "/me/events/AAMkAnope"},
        {**create(2), "dependsOn": ["1"]},
        {**create(3), "dependsOn": ["2"]},
        create(4),
    ]))
    assert {k: v["status"] for k, v in answers.items()} == {"1": 404, "2": 424, "3": 424, "4": 201}
    assert answers["2"]["body"]["error"]["code"] == "FailedDependency"
    assert events_of(world, world.alice) == ["b4"]
    assert world.control("GET", "counters")["batches"]["failedDependency"] == 2


def test_a_throttled_request_is_429_while_the_batch_is_200(world: World):
    """Throttling guidance, "Throttling and batching": each request is evaluated against the limits on its own and
    fails with 429 and its own Retry-After while the batch answers 200 (here the write budget, throttle_writes)."""
    token = a_token(world, world.alice)
    world.control("POST", "throttling", {"writes": 2})
    answers = by_id(batch(world, token, [create(i) for i in range(4)]))
    statuses = sorted(a["status"] for a in answers.values())
    assert statuses == [201, 201, 429, 429]
    for throttled in (a for a in answers.values() if a["status"] == 429):
        assert int(throttled["headers"]["Retry-After"]) > 0
        assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
    assert len(events_of(world, world.alice)) == 2


def test_outlook_runs_four_requests_of_a_batch_at_a_time_across_mailboxes(world: World):
    """Throttling limits, "Outlook service limits for JSON batching": Graph sends Outlook at most four requests of
    a batch at a time, whatever mailboxes they target, so a batch stays within each mailbox's limit of four
    concurrent requests. Measured at the throttling gate (peakConcurrency in GET /_sim/counters), with each request
    held 0.3 s by a "delay" fault. With the limit raised (switch batch_outlook_concurrency) the same batch runs
    five at once against each mailbox, and the fifth of each gets MailboxConcurrency 429s."""
    token = app_token(world)
    reads = [{"id": str(i), "method": "GET", "url": f"/users/{user}/events"}
             for i, user in enumerate([world.alice, world.bob] * 5)]
    world.control("POST", "faults", {"path": "/v1.0/users/*/events", "status": "delay", "seconds": 0.3, "count": 10})
    started = time.monotonic()
    answers = by_id(batch(world, token, reads))
    assert time.monotonic() - started >= 0.85  # three rounds: 4 + 4 + 2
    assert sorted(a["status"] for a in answers.values()) == [200] * 10
    assert world.control("GET", "counters")["peakConcurrency"]["outlook"] == 4

    with world.state.lock:
        world.state.peak_concurrency.clear()
    world.control("PATCH", "switches", {"batch_outlook_concurrency": 10})
    world.control("POST", "faults", {"path": "/v1.0/users/*/events", "status": "delay", "seconds": 1.0, "count": 10})
    answers = by_id(batch(world, token, reads))
    assert sorted(a["status"] for a in answers.values()) == [200] * 8 + [429] * 2
    assert world.control("GET", "counters")["peakConcurrency"]["outlook"] == 8


def test_depends_on_runs_one_request_at_a_time(world: World):
    """Throttling limits, "Outlook service limits for JSON batching": with dependsOn, Graph sends Outlook one
    request at a time in the order given."""
    token = a_token(world, world.alice)
    world.control("POST", "faults", {"path": "/v1.0/me/events", "status": "delay", "seconds": 0.1, "count": 4})
    chain = [{**create(i), "dependsOn": [str(i - 1)] if i else []} for i in range(4)]
    answers = by_id(batch(world, token, chain))
    assert [answers[str(i)]["status"] for i in range(4)] == [201] * 4
    assert world.control("GET", "counters")["peakConcurrency"]["outlook"] == 1
    assert events_of(world, world.alice) == ["b0", "b1", "b2", "b3"]


def test_response_order_is_a_switch(world: World):
    """JSON batching: responses "might appear in a different order" than the requests; which order is the switch
    batch_response_order (assumed: completion, request or reversed), so a client that pairs by position fails."""
    token = a_token(world, world.alice)
    reads = [{"id": f"r{i}", "method": "GET", "url": "/me"} for i in range(5)]
    world.control("PATCH", "switches", {"batch_response_order": "reversed"})
    assert [r["id"] for r in batch(world, token, reads).json()["responses"]] == ["r4", "r3", "r2", "r1", "r0"]
    world.control("PATCH", "switches", {"batch_response_order": "request"})
    assert [r["id"] for r in batch(world, token, reads).json()["responses"]] == ["r0", "r1", "r2", "r3", "r4"]


def test_an_absolute_url_fails_on_its_first_segment(world: World):
    """JSON batching: a request's url is relative to the version ("/users", not https://graph.microsoft.com/...);
    an absolute one fails with 400 "Resource not found for the segment" while the batch is 200 (reported:
    msgraph-sdk-python#1015). A batch inside a batch is refused (assumed)."""
    token = a_token(world, world.alice)
    answers = by_id(batch(world, token, [
        {"id": "abs", "method": "GET", "url": f"{world.sim.graph_url}/me"},
        {"id": "nested", "method": "POST", "url": "/$batch", "headers": JSON, "body": {"requests": []}},
        {"id": "ok", "method": "GET", "url": "me"},
    ]))
    assert answers["abs"]["status"] == 400
    assert answers["abs"]["body"]["error"]["message"] == "Resource not found for the segment 'https:'."
    assert answers["nested"]["status"] == 400
    assert answers["ok"]["status"] == 200
    assert answers["ok"]["body"]["userPrincipalName"] == "alice@fabrikam.test"
