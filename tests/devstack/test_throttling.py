"""Outlook throttling per app and mailbox (Microsoft Graph service-specific throttling limits,
https://learn.microsoft.com/en-us/graph/throttling-limits: 4 concurrent requests, a request budget per 10-minute
window; Microsoft
Graph throttling guidance, https://learn.microsoft.com/en-us/graph/throttling: 429 with Retry-After, usage accrues
while throttled,
writes before reads) and injected faults (429/500/503/504, timeouts; Microsoft Graph error responses,
https://learn.microsoft.com/en-us/graph/errors)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from devstack.m365.graph import GraphError
from devstack.m365.throttling import Throttle
from tests.devstack.world import CLIENT_ID, World


def raw_client(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=world.sim.certs.client_ssl_context(), timeout=10, base_url=world.sim.graph_url)


def bearer(world: World, user: str) -> dict[str, str]:
    _, tokens = world.sign_in(user)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_more_than_four_concurrent_requests_get_429(world: World):
    """Microsoft Graph service-specific throttling limits (https://learn.microsoft.com/en-us/graph/throttling-limits):
    4 concurrent requests per app and mailbox; the 5th and 6th get 429 ApplicationThrottled
    ("MailboxConcurrency") with Retry-After, while another mailbox is not affected. Requests are held 0.5 s by
    a "delay" fault so that they overlap."""
    alice, bob = bearer(world, world.alice), bearer(world, world.bob)
    world.control("POST", "faults", {"path": "/v1.0/me/calendars", "status": "delay", "seconds": 0.5, "count": 7})
    async with raw_client(world) as http:
        # Open the connections first (/me is not throttled), so that the held requests overlap.
        await asyncio.gather(*[http.get("/me", headers=alice) for _ in range(7)])
        answers = await asyncio.gather(*[http.get("/me/calendars", headers=alice) for _ in range(6)],
                                       http.get("/me/calendars", headers=bob))
    statuses = sorted(a.status_code for a in answers[:6])
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert answers[6].status_code == 200
    throttled = [a for a in answers if a.status_code == 429]
    for answer in throttled:
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error"]["code"] == "ApplicationThrottled"
        assert answer.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert world.control("GET", "counters")["throttled"] == {f"{CLIENT_ID}|{world.alice}": 2}
    world.control("DELETE", "faults")
    async with raw_client(world) as http:
        assert (await http.get("/me/calendars", headers=alice)).status_code == 200  # slots were given back


async def test_concurrency_429_through_the_sdk(world: World):
    """The same limit seen by msgraph-sdk with its retry handler off: ODataError 429 ApplicationThrottled."""
    _, tokens = world.sign_in(world.alice)
    client = world.graph(tokens["access_token"])
    await client.me.get()  # connection opened
    world.control("POST", "faults", {"path": "/v1.0/me/calendars", "status": "delay", "seconds": 0.5, "count": 5})
    config: RequestConfiguration = RequestConfiguration(options=[RetryHandlerOption(max_retries=0,
                                                                                     should_retry=False)])
    answers = await asyncio.gather(*[client.me.calendars.get(request_configuration=config) for _ in range(5)],
                                   return_exceptions=True)
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], ODataError)
    assert errors[0].response_status_code == 429
    assert errors[0].error is not None
    assert errors[0].error.code == "ApplicationThrottled"


async def test_request_budget_per_window(world: World):
    """Microsoft Graph service-specific throttling limits (https://learn.microsoft.com/en-us/graph/throttling-limits);
    Microsoft Graph throttling guidance (https://learn.microsoft.com/en-us/graph/throttling): over the request budget
    (10,000 per 10 minutes, set to 3 by control) answers 429 with
    Retry-After until the window moves on (simulated clock); refused requests count too."""
    alice = bearer(world, world.alice)
    world.control("POST", "throttling", {"requests": 3})
    async with raw_client(world) as http:
        assert [(await http.get("/me/calendars", headers=alice)).status_code for _ in range(3)] == [200] * 3
        refused = await http.get("/me/calendars", headers=alice)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "ApplicationThrottled"
        assert 598 <= int(refused.headers["Retry-After"]) <= 600
        world.control("POST", "clock/advance", {"seconds": 300})
        assert (await http.get("/me/calendars", headers=alice)).status_code == 429
        world.control("POST", "clock/advance", {"seconds": 301})
        assert (await http.get("/me/calendars", headers=alice)).status_code == 200
        assert (await http.get("/me", headers=alice)).status_code == 200  # not an Outlook resource


def test_writes_are_throttled_before_reads(world: World):
    """Microsoft Graph throttling guidance (https://learn.microsoft.com/en-us/graph/throttling): writes can be
    throttled while reads pass: a write budget below the request budget (the same calls
    part 3's $batch items go through)."""
    world.control("POST", "throttling", {"requests": 10, "writes": 2})
    throttle = Throttle(world.state)
    for _ in range(2):
        throttle.release(throttle.admit(CLIENT_ID, world.alice, write=True))
    with pytest.raises(GraphError) as refused:
        throttle.admit(CLIENT_ID, world.alice, write=True)
    assert refused.value.status == 429
    assert "Retry-After" in refused.value.headers
    throttle.release(throttle.admit(CLIENT_ID, world.alice, write=False))


async def test_the_sdk_retries_after_retry_after(world: World):
    """Microsoft Graph throttling guidance (https://learn.microsoft.com/en-us/graph/throttling): the Graph SDK's retry
    handler waits Retry-After and retries: an injected 429 is invisible to the
    caller, the request log shows both."""
    _, tokens = world.sign_in(world.alice)
    world.control("POST", "faults", {"path": "/v1.0/me/calendars", "status": 429, "retryAfter": 1, "count": 1})
    page = await world.graph(tokens["access_token"]).me.calendars.get()
    assert page is not None
    logged = [r["status"] for r in world.control("GET", "requests")["requests"] if r["path"] == "/v1.0/me/calendars"]
    assert logged == [429, 200]


@pytest.mark.parametrize(("status", "code"), [(500, "generalException"), (503, "serviceNotAvailable"),
                                              (504, "UnknownError")])
async def test_faults_fail_the_next_requests(world: World, status: int, code: str):
    """Control faults: the next n requests to a path (glob, optional method) fail with the status and a Graph
    error body (Microsoft Graph error responses and resource types (https://learn.microsoft.com/en-us/graph/errors):
    503 may carry Retry-After); then the path works again."""
    alice = bearer(world, world.alice)
    world.control("POST", "faults", {"path": "/v1.0/me/calendar*", "status": status, "count": 2, "retryAfter": 3})
    async with raw_client(world) as http:
        first, second, third = [await http.get(path, headers=alice) for path in
                                ("/me/calendars", "/me/calendar", "/me/calendars")]
        assert (first.status_code, second.status_code, third.status_code) == (status, status, 200)
        assert first.json()["error"]["code"] == code
        assert first.headers["Retry-After"] == "3"
        assert "request-id" in first.headers


async def test_timeout_fault_hangs_then_504(world: World):
    """A "timeout" fault holds the request (seconds) and answers 504; a client with a shorter timeout gives
    up first."""
    alice = bearer(world, world.alice)
    world.control("POST", "faults", {"path": "/v1.0/me/calendars", "status": "timeout", "seconds": 0.4,
                                     "count": 2, "method": "GET"})
    async with raw_client(world) as http:
        started = time.monotonic()
        answer = await http.get("/me/calendars", headers=alice)
        assert answer.status_code == 504
        assert time.monotonic() - started >= 0.4
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/me/calendars", headers=alice, timeout=0.1)


async def test_counters_per_mailbox_and_route(world: World):
    """Control counters: requests per mailbox and route."""
    alice, bob = bearer(world, world.alice), bearer(world, world.bob)
    async with raw_client(world) as http:
        await http.get("/me/calendars", headers=alice)
        await http.get("/me/calendars", headers=alice)
        await http.get("/me/calendar", headers=bob)
    per_mailbox = world.control("GET", "counters")["mailboxRoutes"]
    assert per_mailbox == {world.alice: {"GET /v1.0/me/calendars": 2}, world.bob: {"GET /v1.0/me/calendar": 1}}
