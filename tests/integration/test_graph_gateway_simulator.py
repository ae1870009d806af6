"""The Graph gateway (shared/graph/gateway.py) through the real msgraph-sdk, msal and Key Vault client against
the Microsoft 365 simulator: retries on the same request honouring Retry-After ("Microsoft Graph throttling
guidance", https://learn.microsoft.com/en-us/graph/throttling), 5xx backoff ("Microsoft Graph error
responses and resource types", https://learn.microsoft.com/en-us/graph/errors), a refused token refreshed
once, and a journal entry per attempt carrying the ids the service logged."""

from __future__ import annotations

from typing import Any

import pytest

from shared.accounts.model import Status
from shared.auth.ports import AccessToken
from shared.errors import AccountAuthError, Throttled, TransientGraphError
from shared.graph.gateway import Call, GraphGateway
from shared.graph.governor import MailboxGovernor
from shared.ops.journal import JournalEntry
from shared.sync.source import GraphDeltaSource
from tests.integration.sync_world import Sleeps

# The connected-account stack of the connect tests (a fixture defined in that module).
from tests.integration.test_connect_real_clients import ADELE, stack  # noqa: F401

CALENDAR_PATH = f"/v1.0/users/{ADELE}/calendar"


@pytest.fixture
async def connected(stack):  # noqa: F811
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    sleeps = Sleeps()
    gateway = GraphGateway(stack.services, stack.auth.broker, MailboxGovernor(), sleep=sleeps)
    return stack, account, gateway, sleeps


async def graph_journal(world: Any, account: str) -> list[JournalEntry]:
    return [e for e in reversed(await world.services.journal.recent(account, limit=200)) if e.operation == "graph"]


def logged(world: Any, path: str) -> list[Any]:
    return [r for r in world.sim.state.requests if r.path == path]


async def test_a_call_is_journaled_with_the_ids_graph_logged(connected):
    world, account, gateway, _ = connected
    calendar_id = await GraphDeltaSource(gateway, 50).primary_calendar(account, ADELE)
    assert calendar_id
    (entry,) = await graph_journal(world, account)
    (request,) = logged(world, CALENDAR_PATH)
    assert (entry.graph_request_id, entry.client_request_id) == (request.request_id, request.client_request_id)
    assert entry.stage == "calendar"
    assert entry.http_status == 200
    assert entry.detail == f"GET {CALENDAR_PATH}: 200, attempt 1"


async def test_a_429_is_retried_after_its_retry_after(connected):
    world, account, gateway, sleeps = connected
    world.control("faults", {"path": CALENDAR_PATH, "status": 429, "retryAfter": 2, "count": 1})
    assert await GraphDeltaSource(gateway, 50).primary_calendar(account, ADELE)
    assert sleeps == [2.0]
    assert [r.status for r in logged(world, CALENDAR_PATH)] == [429, 200]
    first, second = await graph_journal(world, account)
    assert (first.outcome, first.http_status, first.error_class) == ("error", 429, "Throttled")
    assert second.detail == f"GET {CALENDAR_PATH}: 200, attempt 2"


async def test_5xx_backs_off_and_gives_up_after_four_attempts(connected):
    world, account, gateway, sleeps = connected
    world.control("faults", {"path": CALENDAR_PATH, "status": 503, "count": 4})
    with pytest.raises(TransientGraphError):
        await GraphDeltaSource(gateway, 50).primary_calendar(account, ADELE)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(logged(world, CALENDAR_PATH)) == 4


async def test_a_long_retry_after_is_left_to_the_queue(connected):
    """Longer than THROTTLE_INLINE_MAX_SECONDS: raised at once, for dispatch to re-send the message later."""
    world, account, gateway, sleeps = connected
    world.control("faults", {"path": CALENDAR_PATH, "status": 429, "retryAfter": 120, "count": 1})
    with pytest.raises(Throttled) as caught:
        await GraphDeltaSource(gateway, 50).primary_calendar(account, ADELE)
    assert caught.value.retry_after == 120
    assert sleeps == []


async def test_a_refused_token_is_refreshed_once(connected):
    world, account, gateway, _ = connected
    world.auth.broker._tokens[account] = AccessToken("not-a-token", expires_at=world.services.clock() + 3600)
    assert await GraphDeltaSource(gateway, 50).primary_calendar(account, ADELE)
    assert [r.status for r in logged(world, CALENDAR_PATH)] == [401, 200]
    *_, last = await graph_journal(world, account)
    assert last.detail == f"GET {CALENDAR_PATH}: 200, attempt 2 after a token refresh"


async def test_a_401_after_a_refresh_turns_the_account_needs_reconnect(connected, monkeypatch):
    world, account, gateway, _ = connected

    async def refused(account_id, **kwargs):
        return AccessToken("still-not-a-token", expires_at=world.services.clock() + 3600)

    monkeypatch.setattr(world.auth.broker, "access_token", refused)
    with pytest.raises(AccountAuthError):
        await gateway.send(Call(account, "calendar"), lambda c: c.users.by_user_id(ADELE).calendar
                           .to_get_request_information())
    assert (await world.repo.get(account)).status is Status.NEEDS_RECONNECT
    assert [r.status for r in logged(world, CALENDAR_PATH)] == [401, 401]


async def test_a_sign_in_token_refused_is_not_refreshed(connected):
    """Connect's profile check runs on the sign-in's own token: there is no grant yet to refresh from."""
    from shared.graph.directory import GraphMailboxDirectory

    world, _, gateway, _ = connected
    before = len(world.sim.state.requests)
    with pytest.raises(AccountAuthError):
        await GraphMailboxDirectory(gateway, world.services.clock).profile("not-a-token")
    assert [(r.path, r.status) for r in world.sim.state.requests[before:]] == [("/v1.0/me", 401)]
