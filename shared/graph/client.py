"""msgraph-sdk clients pointed at GRAPH_BASE_URL, trusting LOCAL_CA_BUNDLE when set (TLS is verified
either way). Import this module only off the webhook path: msgraph-sdk costs seconds on a cold start."""

from __future__ import annotations

import ssl
import time
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


def http_client(settings: Settings) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if settings.local_ca_bundle:
        verify = ssl.create_default_context(cafile=settings.local_ca_bundle)
    # msgraph's own options matter: without them /me goes out as /users/me-token-to-replace.
    client: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=verify, timeout=30.0), options=graph_options)
    return client


def graph_client(settings: Settings, credential: Any) -> GraphServiceClient:
    """A client whose token comes from ``credential`` (an azure-core async credential)."""
    # allowed_hosts stays empty: with graph.microsoft.com listed, requests to the local simulator would
    # silently go out without a token (platform notes §7).
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
    adapter = GraphRequestAdapter(auth, client=http_client(settings))
    adapter.base_url = settings.graph_base_url
    return GraphServiceClient(request_adapter=adapter)


class StaticTokenCredential:
    """An access token already in hand (just redeemed at the callback) as an azure-core credential."""

    def __init__(self, token: str, expires_at: float | None = None) -> None:
        self._token = token
        self._expires_at = int(expires_at or time.time() + 300)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, self._expires_at)

    async def close(self) -> None:
        return None
