"""msgraph-sdk clients pointed at GRAPH_BASE_URL, trusting LOCAL_CA_BUNDLE when set (TLS is verified
either way), all on one pooled HTTP client per process and event loop. Import this module only off the
webhook path: msgraph-sdk costs seconds on a cold start.

Why one pool: a new httpx client per call pays a new TLS context, a TCP and TLS handshake and a new
middleware chain every time, and leaks the connection when nobody closes it. The Python worker runs async
functions on one event loop, and an httpx client's connections belong to the loop that opened them, so
the pool is kept per loop.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from typing import Any

import httpx
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from shared.config import Settings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Graph keeps requests open for up to a few minutes under load; anything longer is a lost connection.
TIMEOUT_SECONDS = 30.0
# Enough for the subscription worker's and (later) the sync engine's concurrent calls on one instance.
MAX_CONNECTIONS = 64

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, httpx.AsyncClient]] = \
    weakref.WeakKeyDictionary()


def pooled_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one httpx client (with Graph's middleware) of this event loop, built on first use."""
    per_loop = _pools.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(settings.local_ca_bundle)
    if client is None or client.is_closed:
        client = per_loop[settings.local_ca_bundle] = _new_http_client(settings)
    return client


def _new_http_client(settings: Settings) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if settings.local_ca_bundle:
        verify = ssl.create_default_context(cafile=settings.local_ca_bundle)
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    # msgraph's own options matter: without them /me goes out as /users/me-token-to-replace.
    client: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=verify, timeout=TIMEOUT_SECONDS, limits=limits), options=graph_options)
    return client


async def close_pooled_http_clients() -> None:
    """Close this loop's pooled clients (at shutdown, and between tests that change settings)."""
    for client in _pools.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


def graph_client(settings: Settings, credential: Any) -> GraphServiceClient:
    """A client whose token comes from ``credential`` (an azure-core async credential), on the pool."""
    # allowed_hosts stays empty: with graph.microsoft.com listed, requests to the local simulator would
    # silently go out without a token (kiota's AzureIdentityAuthenticationProvider sends the token only to
    # the hosts it lists, when it lists any).
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
    adapter = GraphRequestAdapter(auth, client=pooled_http_client(settings))
    adapter.base_url = settings.graph_base_url
    return GraphServiceClient(request_adapter=adapter)


class StaticTokenCredential:
    """An access token already in hand (just redeemed at the callback) as an azure-core credential."""

    def __init__(self, token: str, expires_at: float) -> None:
        self._token = token
        self._expires_at = int(expires_at)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, self._expires_at)

    async def close(self) -> None:
        return None
