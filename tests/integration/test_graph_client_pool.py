"""One pooled HTTP client per process and event loop carries every Graph call (review finding 8): counted
at the Microsoft 365 simulator, which logs each request's client address and port, 100 calls through the
product's subscription gateway (msgraph-sdk with the token broker) open one connection, not 100."""

from __future__ import annotations

from shared.graph.client import pooled_http_client
from shared.subscriptions.msgraph import MsGraphSubscriptions

# The connected-account stack of the connect tests (a fixture defined in that module).
from tests.integration.test_connect_real_clients import stack  # noqa: F401


async def test_a_hundred_graph_calls_share_one_connection(stack):  # noqa: F811
    account, confirmed = await stack.connect()
    assert confirmed.status == 200
    gateway = MsGraphSubscriptions(stack.auth.gateway)
    before = len(stack.sim.state.requests)
    for _ in range(100):
        assert await gateway.list(account) == []
    calls = [r for r in stack.sim.state.requests[before:] if r.path == "/v1.0/subscriptions"]
    assert len(calls) == 100
    assert all(r.connection for r in calls)
    assert len({r.connection for r in calls}) == 1
    assert pooled_http_client(stack.services.settings) is pooled_http_client(stack.services.settings)
