"""Write faults on demand (POST /_sim/faults), what a writer meets in production: the create applied but its answer
lost (connection closed, or held past the client's timeout), a 201 whose id answers 404 for a while, 429/503/504 on
writes only, and a write applied twice by a client's retry. Through msgraph-sdk (whose retry handler retries 429, 503
and 504, POST included) and raw httpx. Create event (https://learn.microsoft.com/en-us/graph/api/user-post-events);
event resource type, transactionId (https://learn.microsoft.com/en-us/graph/api/resources/event); Microsoft Graph
error responses (https://learn.microsoft.com/en-us/graph/errors: 503, 504); Microsoft Graph throttling guidance
(https://learn.microsoft.com/en-us/graph/throttling: 429, Retry-After)."""

from __future__ import annotations

import httpx
import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from tests.devstack.test_batch import batch, by_id, create, events_of
from tests.devstack.test_events import a_token, lunch, raw, sdk_event
from tests.devstack.world import World


def fault(world: World, **spec: object) -> None:
    world.control("POST", "faults", {"path": "/v1.0/me/events", "method": "POST", "count": 1, **spec})


async def test_create_applied_but_the_connection_closes(world: World):
    """Fault "close" with "after": the event is created, then the connection closes without an answer, so the
    client cannot know; without "after" the connection closes before anything is written."""
    client = world.graph(a_token(world, world.alice))
    fault(world, status="close", after=True)
    with pytest.raises(httpx.TransportError):
        await client.me.events.post(sdk_event("lost answer"))
    assert events_of(world, world.alice) == ["lost answer"]
    fault(world, status="close")
    with pytest.raises(httpx.TransportError):
        await client.me.events.post(sdk_event("never written"))
    assert events_of(world, world.alice) == ["lost answer"]


def test_create_applied_but_the_answer_comes_after_the_client_gave_up(world: World):
    """Fault "timeout" with "after": the event is created and the answer held (here 2 s, then 504) past the
    client's timeout (0.5 s)."""
    token = a_token(world, world.alice)
    fault(world, status="timeout", after=True, seconds=2)
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=0.5) as client, \
            pytest.raises(httpx.ReadTimeout):
        client.post(f"{world.sim.graph_url}/me/events", json=lunch(subject="slow"),
                    headers={"Authorization": f"Bearer {token}"})
    assert events_of(world, world.alice) == ["slow"]


async def test_a_created_id_answers_404_for_the_next_reads(world: World):
    """Fault "hidden" (the reported "created id cannot be found"): the create answers 201 with an id that answers
    404 ErrorItemNotFound to the next `reads` reads by id (REST or immutable), then the event is found."""
    token = a_token(world, world.alice)
    client = world.graph(token)
    fault(world, status="hidden", reads=2)
    created = await client.me.events.post(sdk_event("eventually"))
    assert created is not None
    assert created.id
    with pytest.raises(ODataError) as raised:
        await client.me.events.by_event_id(created.id).get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "ErrorItemNotFound"
    immutable = raw(world, "GET", "/me/events?$top=1", token, Prefer='IdType="ImmutableId"').json()["value"][0]["id"]
    assert raw(world, "GET", f"/me/events/{immutable}", token).status_code == 404
    found = await client.me.events.by_event_id(created.id).get()
    assert found is not None
    assert found.subject == "eventually"


@pytest.mark.parametrize("status", [429, 503, 504])
def test_faults_on_writes_only(world: World, status: int):
    """"method": "writes": POST, PATCH and DELETE fail (429 with Retry-After: throttling guidance, "writes can be
    throttled while reads still succeed"; 503/504: error responses) while reads pass and do not use up the fault."""
    token = a_token(world, world.alice)
    event_id = raw(world, "POST", "/me/events", token, lunch()).json()["id"]
    world.control("POST", "faults", {"path": "/v1.0/me/events*", "method": "writes", "status": status, "count": 3,
                                     "retryAfter": 2})
    assert raw(world, "GET", f"/me/events/{event_id}", token).status_code == 200
    assert raw(world, "GET", "/me/events", token).status_code == 200
    answers = [raw(world, "POST", "/me/events", token, lunch()),
               raw(world, "PATCH", f"/me/events/{event_id}", token, {"subject": "x"}),
               raw(world, "DELETE", f"/me/events/{event_id}", token)]
    assert [a.status_code for a in answers] == [status] * 3
    assert {a.headers["Retry-After"] for a in answers} == {"2"}
    assert len(events_of(world, world.alice)) == 1
    assert raw(world, "PATCH", f"/me/events/{event_id}", token, {"subject": "x"}).status_code == 200


async def test_a_retry_without_transaction_id_writes_twice(world: World):
    """Fault 504 with "after": the create is applied, then answered 504; msgraph-sdk's retry handler sends it again
    (after Retry-After), so a writer without transactionId gets a real duplicate. With a transactionId the retry is
    a redundant create the server drops (event resource type), answered per transaction_duplicate (assumed)."""
    client = world.graph(a_token(world, world.alice))
    fault(world, status=504, after=True, retryAfter=1)
    created = await client.me.events.post(sdk_event("naive"))
    assert created is not None
    assert events_of(world, world.alice) == ["naive", "naive"]
    fault(world, status=504, after=True, retryAfter=1)
    event = sdk_event("careful")
    event.transaction_id = "sync-7f3a-careful"
    kept = await client.me.events.post(event)
    assert kept is not None
    assert kept.transaction_id == "sync-7f3a-careful"
    assert events_of(world, world.alice) == ["naive", "naive", "careful"]


def test_faults_inside_a_batch(world: World):
    """Faults match a batch's requests too (each runs as a request of its own): a closed connection is that
    request's 504 (assumed), the others in the batch succeed."""
    token = a_token(world, world.alice)
    world.control("POST", "faults", {"path": "/v1.0/me/events", "method": "POST", "status": "close", "count": 1,
                                     "after": True})
    answers = by_id(batch(world, token, [create(1), create(2)]))
    assert sorted(a["status"] for a in answers.values()) == [201, 504]
    assert sorted(events_of(world, world.alice)) == ["b1", "b2"]  # the lost answer's create was applied
