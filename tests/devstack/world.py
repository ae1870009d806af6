"""A seeded test tenant and the helpers that drive the simulator the way the product and a browser do:
msal with a CA-trusting session, the consent page by GET + form POST, msgraph-sdk on a CA-trusting httpx."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msal
import requests
from azure.core.credentials import AccessToken
from kiota_abstractions.authentication import AnonymousAuthenticationProvider, AuthenticationProvider
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from devstack.m365.control import seed
from devstack.m365.server import Simulator

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "test-client-secret-value-0123456789"
PUBLIC_CLIENT_ID = "99999999-8888-7777-6666-555555555555"
REDIRECT_URI = "http://localhost:8400/callback"
TENANT_ID = "0a0a0a0a-1111-4222-8333-444444444444"
OTHER_TENANT_ID = "0b0b0b0b-1111-4222-8333-444444444444"
SCOPES = ["Calendars.ReadWrite", "User.Read"]
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@dataclass
class World:
    sim: Simulator
    session: requests.Session
    alice: str  # admin, owns "Calendar" (default) and "Projects"
    bob: str  # owns "Calendar" (default), shared with alice as read
    carol: str  # in another tenant
    alice_projects: str
    bob_default: str

    @property
    def state(self) -> Any:
        return self.sim.state

    def control(self, method: str, path: str, json: Any = None) -> Any:
        response = self.session.request(method, f"{self.sim.url}/_sim/{path}", json=json, timeout=10)
        response.raise_for_status()
        return response.json()

    def msal_app(self, tenant: str = "organizations", *, client_id: str = CLIENT_ID,
                 secret: str | None = CLIENT_SECRET) -> msal.ClientApplication:
        common: dict[str, Any] = dict(authority=f"{self.sim.url}/{tenant}", instance_discovery=False,
                                      http_client=self.session, token_cache=msal.SerializableTokenCache())
        if secret is None:
            return msal.PublicClientApplication(client_id, **common)
        return msal.ConfidentialClientApplication(client_id, client_credential=secret, **common)

    def browser(self, auth_uri: str, user: str | None, decision: str = "approve") -> dict[str, str]:
        return browser(self.session, self.sim.url, auth_uri, user, decision)

    def start_flow(self, app: msal.ClientApplication, scopes: list[str] | None = None,
                   redirect_uri: str = REDIRECT_URI) -> dict[str, Any]:
        flow: dict[str, Any] = app.initiate_auth_code_flow(scopes or SCOPES, redirect_uri=redirect_uri,
                                                           response_mode="form_post")
        return flow

    def sign_in(self, user: str, scopes: list[str] | None = None, app: msal.ClientApplication | None = None
                ) -> tuple[msal.ClientApplication, dict[str, Any]]:
        """The product's connect flow: msal auth-code flow through the consent page."""
        app = app or self.msal_app()
        flow = self.start_flow(app, scopes)
        result = app.acquire_token_by_auth_code_flow(flow, self.browser(flow["auth_uri"], user))
        assert "access_token" in result, result
        return app, result

    def graph(self, token: str | None) -> GraphServiceClient:
        return graph_client(self.sim, token)


def graph_client(sim: Simulator, token: str | None) -> GraphServiceClient:
    """msgraph-sdk pointed at the simulator, on an httpx client that trusts the local CA."""
    # msgraph's own options matter: they turn /users/me-token-to-replace into /me.
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=sim.certs.client_ssl_context(), timeout=10), options=graph_options)
    auth: AuthenticationProvider = AnonymousAuthenticationProvider() if token is None else \
        AzureIdentityAuthenticationProvider(StaticToken(token), scopes=[GRAPH_DEFAULT])
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = sim.graph_url
    return GraphServiceClient(request_adapter=adapter)


class StaticToken:
    """An azure-core async credential handing out one access token (what msal returned)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def browser(session: requests.Session, base_url: str, auth_uri: str, user: str | None,
            decision: str = "approve") -> dict[str, str]:
    """Open the consent page, pick ``user``, press approve or deny; return what reaches the redirect URI."""
    page = session.get(auth_uri, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    request_id = re.search(r'name="request" value="([^"]+)"', page.text)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert request_id, page.text
    assert action, page.text
    answer = session.post(f"{base_url}{action.group(1)}", allow_redirects=False, timeout=10,
                          data={"request": request_id.group(1), "user": user or "", "decision": decision})
    if answer.status_code == 302:
        return dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    # response_mode=form_post: the page posts these fields to the redirect URI.
    assert answer.status_code == 200, answer.text
    return dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", answer.text))


def build_world(sim: Simulator, session: requests.Session) -> World:
    created = seed(sim.state, {
        "tenants": [
            {"id": TENANT_ID, "name": "Fabrikam", "domain": "fabrikam.test", "users": [
                {"upn": "alice@fabrikam.test", "displayName": "Alice Archer", "isAdmin": True,
                 "calendars": [{"name": "Calendar", "isDefault": True}, {"name": "Projects"}]},
                {"upn": "bob@fabrikam.test", "displayName": "Bob Baker",
                 "calendars": [{"name": "Calendar", "isDefault": True}]},
            ]},
            {"id": OTHER_TENANT_ID, "name": "Northwind", "domain": "northwind.test", "users": [
                {"upn": "carol@northwind.test", "displayName": "Carol Cole", "isAdmin": True}]},
        ],
        "apps": [
            {"clientId": CLIENT_ID, "name": "Sync test app", "homeTenant": TENANT_ID, "redirectUris": [REDIRECT_URI],
             "secret": CLIENT_SECRET, "secretDays": 730, "delegated": SCOPES,
             "application": ["Calendars.Read", "User.Read.All"]},
            {"clientId": PUBLIC_CLIENT_ID, "name": "Public test app", "homeTenant": TENANT_ID,
             "redirectUris": [REDIRECT_URI], "publicClient": True, "delegated": SCOPES},
        ],
    })
    alice, bob, carol = created["users"]
    _alice_default, alice_projects, bob_default = created["calendars"]
    sim.state.share_calendar(bob_default, alice, "read")
    return World(sim, session, alice, bob, carol, alice_projects, bob_default)
