"""Graph basics through the real msgraph-sdk (GraphServiceClient on an httpx client that trusts the local
CA, base_url set to the simulator), with tokens msal got from the simulator."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from tests.devstack.world import GRAPH_DEFAULT, TENANT_ID, World


def _raw(world: World, path: str, token: str | None, **headers: str) -> httpx.Response:
    """One plain request, to read status, headers and the raw body msgraph-sdk does not expose."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10) as client:
        return client.get(f"{world.sim.graph_url}{path}", headers=headers)


def _app_token(world: World) -> str:
    tenant = world.state.tenants[TENANT_ID]
    world.state.ensure_service_principal(TENANT_ID, "11111111-2222-3333-4444-555555555555")
    tenant.app_roles["11111111-2222-3333-4444-555555555555"] = ["Calendars.Read", "User.Read.All"]
    token: str = world.msal_app(TENANT_ID).acquire_token_for_client([GRAPH_DEFAULT])["access_token"]
    return token


async def test_me_with_a_delegated_token(world: World):
    """GET /me returns the signed-in user (User.Read)."""
    _, tokens = world.sign_in(world.alice)
    me = await world.graph(tokens["access_token"]).me.get()
    assert me is not None
    assert (me.id, me.user_principal_name, me.display_name) == (world.alice, "alice@fabrikam.test", "Alice Archer")


async def test_users_by_id_or_upn(world: World):
    """GET /users/{id | userPrincipalName}; another user's profile needs User.ReadBasic.All or more (403
    Authorization_RequestDenied with User.Read only)."""
    client = world.graph(_app_token(world))
    by_upn = await client.users.by_user_id("bob@fabrikam.test").get()
    by_id = await client.users.by_user_id(world.bob).get()
    assert by_upn is not None
    assert by_id is not None
    assert by_upn.id == by_id.id == world.bob
    _, alice = world.sign_in(world.alice)
    response = _raw(world, f"/users/{world.bob}", alice["access_token"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


async def test_calendars_list_and_get(world: World):
    """GET /users/{id}/calendars and /calendars/{id}: owner, canEdit, isDefaultCalendar (calendar resource)."""
    _, tokens = world.sign_in(world.alice)
    client = world.graph(tokens["access_token"])
    page = await client.users.by_user_id("alice@fabrikam.test").calendars.get()
    assert page is not None
    assert page.value is not None
    names = [(c.name, c.is_default_calendar, c.can_edit) for c in page.value]
    assert names == [("Calendar", True, True), ("Projects", False, True)]
    assert page.value[0].owner is not None
    assert page.value[0].owner.address == "alice@fabrikam.test"
    one = await client.users.by_user_id(world.alice).calendars.by_calendar_id(world.alice_projects).get()
    assert one is not None
    assert one.name == "Projects"
    default = await client.me.calendar.get()
    assert default is not None
    assert default.is_default_calendar


async def test_no_token_is_401_with_a_bearer_challenge(world: World):
    """401 InvalidAuthenticationToken and a WWW-Authenticate: Bearer challenge."""
    with pytest.raises(ODataError) as raised:
        await world.graph(None).users.by_user_id(world.alice).calendars.get()
    assert raised.value.response_status_code == 401
    assert raised.value.error is not None
    assert raised.value.error.code == "InvalidAuthenticationToken"
    response = _raw(world, f"/users/{world.alice}/calendars", None)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


async def test_a_forged_token_is_401(world: World):
    """Graph checks the signature: a token not signed by the key in JWKS is refused."""
    _, tokens = world.sign_in(world.alice)
    header, payload, _sig = tokens["access_token"].split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 256).rstrip(b'=').decode()}"
    with pytest.raises(ODataError) as raised:
        await world.graph(forged).me.get()
    assert raised.value.response_status_code == 401


async def test_expired_token_is_401(world: World):
    """Lifetime validation: an access token past exp is refused (tokens last an hour here)."""
    _, tokens = world.sign_in(world.alice)
    world.control("POST", "clock/advance", {"seconds": 3601})
    with pytest.raises(ODataError) as raised:
        await world.graph(tokens["access_token"]).me.get()
    assert raised.value.response_status_code == 401
    assert raised.value.error is not None
    assert "expired" in (raised.value.error.message or "")


async def test_missing_calendar_scope_is_403(world: World):
    """A token with User.Read only: 403 ErrorAccessDenied on calendars, /me still works."""
    _, tokens = world.sign_in(world.alice, scopes=["User.Read"])
    client = world.graph(tokens["access_token"])
    assert await client.me.get() is not None
    with pytest.raises(ODataError) as raised:
        await client.me.calendars.get()
    assert raised.value.response_status_code == 403
    assert raised.value.error is not None
    assert raised.value.error.code == "ErrorAccessDenied"


async def test_other_users_calendars_need_sharing_and_shared_scopes(world: World):
    """Get shared or delegated Outlook calendar and its events,
    https://learn.microsoft.com/en-us/graph/outlook-get-shared-events-calendars: another user's calendar needs .Shared
    scopes and a share; only shared ones show."""
    _, plain = world.sign_in(world.alice)
    with pytest.raises(ODataError) as raised:
        await world.graph(plain["access_token"]).users.by_user_id(world.bob).calendars.get()
    assert raised.value.response_status_code == 403
    _, shared = world.sign_in(world.alice, scopes=["Calendars.Read.Shared"])
    page = await world.graph(shared["access_token"]).users.by_user_id(world.bob).calendars.get()
    assert page is not None
    assert page.value is not None
    assert [(c.id, c.can_edit) for c in page.value] == [(world.bob_default, False)]


async def test_calendar_permissions_owner_sees_them_sharee_sees_none(world: World):
    """calendarPermissions: the owner sees the entries; a sharee gets an empty collection (Get shared or delegated
    Outlook calendar and its events, https://learn.microsoft.com/en-us/graph/outlook-get-shared-events-calendars)."""
    _, bob = world.sign_in(world.bob)
    client = world.graph(bob["access_token"])
    permissions = await client.me.calendars.by_calendar_id(world.bob_default).calendar_permissions.get()
    assert permissions is not None
    assert permissions.value is not None
    entries = {(p.email_address.address if p.email_address else None, str(p.role.value) if p.role else None)
               for p in permissions.value}
    assert entries == {(None, "freeBusyRead"), ("alice@fabrikam.test", "read")}
    _, alice = world.sign_in(world.alice, scopes=["Calendars.Read.Shared"])
    seen = await world.graph(alice["access_token"]).users.by_user_id(world.bob).calendars.by_calendar_id(
        world.bob_default).calendar_permissions.get()
    assert seen is not None
    assert seen.value == []


async def test_app_only_token_reads_any_mailbox_but_not_me(world: World):
    """Application Calendars.Read reaches every mailbox (Admin consent on the Microsoft identity platform,
    https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent); /me needs a delegated token."""
    client = world.graph(_app_token(world))
    page = await client.users.by_user_id(world.bob).calendars.get()
    assert page is not None
    assert page.value is not None
    assert len(page.value) == 1
    with pytest.raises(ODataError) as raised:
        await client.me.get()
    assert raised.value.response_status_code == 400


async def test_app_only_token_without_roles_is_403(world: World):
    """A client-credentials token without admin-granted roles cannot read calendars."""
    world.state.ensure_service_principal(TENANT_ID, "11111111-2222-3333-4444-555555555555")
    token = world.msal_app(TENANT_ID).acquire_token_for_client([GRAPH_DEFAULT])["access_token"]
    with pytest.raises(ODataError) as raised:
        await world.graph(token).users.by_user_id(world.bob).calendars.get()
    assert raised.value.response_status_code == 403


async def test_mailbox_not_enabled_for_rest(world: World):
    """Permanent mailbox error: 404 MailboxNotEnabledForRESTAPI (inactive, soft-deleted or on-premises)."""
    _, tokens = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/mailbox", {"state": "notEnabledForRestApi"})
    with pytest.raises(ODataError) as raised:
        await world.graph(tokens["access_token"]).me.calendars.get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "MailboxNotEnabledForRESTAPI"


async def test_deleted_user_is_404(world: World):
    """A deleted user: 404 Request_ResourceNotFound on the directory route, the switch's code
    (ErrorItemNotFound, assumed) on mailbox routes."""
    token = _app_token(world)
    world.control("POST", f"users/{world.bob}/delete")
    client = world.graph(token)
    with pytest.raises(ODataError) as user_error:
        await client.users.by_user_id(world.bob).get()
    assert user_error.value.response_status_code == 404
    assert user_error.value.error is not None
    assert user_error.value.error.code == "Request_ResourceNotFound"
    with pytest.raises(ODataError) as mailbox_error:
        await client.users.by_user_id(world.bob).calendars.get()
    assert mailbox_error.value.error is not None
    assert mailbox_error.value.error.code == "ErrorItemNotFound"


async def test_claims_challenge_then_a_fresh_token_passes(world: World):
    """Continuous access evaluation: 401 with error="insufficient_claims" and base64 claims in
    WWW-Authenticate; a token issued after the event is accepted (CAE docs)."""
    app, tokens = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/claims-challenge")
    response = _raw(world, "/me", tokens["access_token"])
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_claims"' in challenge
    claims = challenge.split('claims="')[1].split('"')[0]
    assert "access_token" in json.loads(base64.b64decode(claims))
    fresh = app.acquire_token_silent(["User.Read"], app.get_accounts()[0], claims_challenge=base64.b64decode(
        claims).decode(), force_refresh=True)
    assert fresh is not None
    assert _raw(world, "/me", fresh["access_token"]).status_code == 200


async def test_revocation_and_deletion_challenge_live_access_tokens(world: World):
    """CAE critical events (sessions revoked, user deleted) reject access tokens issued before them."""
    _, tokens = world.sign_in(world.alice)
    assert _raw(world, "/me", tokens["access_token"]).status_code == 200
    world.control("POST", f"users/{world.alice}/revoke-sessions")
    assert 'error="insufficient_claims"' in _raw(world, "/me", tokens["access_token"]).headers["WWW-Authenticate"]
    _, bob = world.sign_in(world.bob)
    world.control("POST", f"users/{world.bob}/delete")
    assert _raw(world, "/me", bob["access_token"]).status_code == 401


async def test_request_ids_and_error_body_shape(world: World):
    """Every response carries request-id and client-request-id (echoed when sent); error bodies are
    {"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}."""
    sent = "5d1d1d1d-0000-4000-8000-000000000001"
    response = _raw(world, "/me", None, **{"client-request-id": sent})
    assert response.headers["client-request-id"] == sent
    request_id = response.headers["request-id"]
    inner = response.json()["error"]["innerError"]
    assert (inner["request-id"], inner["client-request-id"]) == (request_id, sent)
    assert inner["date"]
    unsent = _raw(world, "/me", None)
    assert unsent.headers["client-request-id"] == unsent.headers["request-id"]


async def test_unknown_segment_is_a_graph_400(world: World):
    """Graph answers an unknown path segment with 400 BadRequest "Resource not found for the segment"."""
    _, tokens = world.sign_in(world.alice)
    response = _raw(world, "/me/nosuchthing", tokens["access_token"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


async def test_control_lists_issued_secrets_requests_and_counters(world: World):
    """The control API lists every code and token issued (for the leak scan), the request log and counters
    per route and mailbox."""
    _, tokens = world.sign_in(world.alice)
    await world.graph(tokens["access_token"]).me.calendars.get()
    issued = {(i["kind"], i["value"]) for i in world.control("GET", "issued")["issued"]}
    assert ("access_token", tokens["access_token"]) in issued
    assert ("refresh_token", tokens["refresh_token"]) in issued
    assert {kind for kind, _ in issued} >= {"code", "id_token", "client_secret"}
    counters = world.control("GET", "counters")
    assert counters["mailboxes"] == {world.alice: 1}
    assert counters["routes"]["GET /v1.0/me/calendars"] == 1
    logged = world.control("GET", "requests")["requests"]
    assert any(r["path"] == "/v1.0/me/calendars" and r["status"] == 200 for r in logged)


def test_api_error_is_the_sdk_base(world: World):
    """ODataError is kiota's APIError: the product can catch either."""
    assert issubclass(ODataError, APIError)
