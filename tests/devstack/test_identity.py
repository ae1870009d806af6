"""Entra ID sign-in through the real msal (Microsoft identity platform and OAuth 2.0 authorization
code flow, https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow, and what msal
checks).

Every test drives msal with a requests session that trusts the local CA (trust_env off, because
REQUESTS_CA_BUNDLE would win over verify=) and instance_discovery=False.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import msal
import pytest

from shared.redaction import REDACTED, redact
from tests.devstack.world import (
    CLIENT_ID,
    CLIENT_SECRET,
    GRAPH_DEFAULT,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    SCOPES,
    TENANT_ID,
    World,
)

DAY = 86400


def _jwks_key(world: World, token: str):
    keys = world.session.get(f"{world.sim.url}/{TENANT_ID}/discovery/v2.0/keys", timeout=10).json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key


def _refresh_error(app: msal.ClientApplication) -> dict[str, Any]:
    account = app.get_accounts()[0]
    result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert result is not None
    assert "error" in result, result
    return dict(result)


def _approved(world: World) -> tuple[msal.ClientApplication, dict[str, Any], dict[str, str]]:
    """An app, its auth-code flow, and alice's approval of it (not yet redeemed)."""
    app = world.msal_app()
    flow = world.start_flow(app)
    return app, flow, world.browser(flow["auth_uri"], world.alice)


def _aadsts(result: dict[str, Any]) -> int:
    match = re.match(r"AADSTS(\d+):", result["error_description"])
    assert match, result["error_description"]
    return int(match.group(1))


# --- discovery -----------------------------------------------------------------------------------


def test_discovery_uses_entra_issuer_convention(world: World):
    """Multi-tenant authorities publish issuer ".../{tenantid}/v2.0"; a tenant's its own id (Entra OIDC
    metadata; msal's has_valid_issuer)."""
    url = world.sim.url
    multi = world.session.get(f"{url}/organizations/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert multi["issuer"] == f"{url}/{{tenantid}}/v2.0"
    assert multi["token_endpoint"] == f"{url}/organizations/oauth2/v2.0/token"
    assert multi["authorization_endpoint"] == f"{url}/organizations/oauth2/v2.0/authorize"
    single = world.session.get(f"{url}/{TENANT_ID}/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert single["issuer"] == f"{url}/{TENANT_ID}/v2.0"
    by_domain = world.session.get(f"{url}/fabrikam.test/v2.0/.well-known/openid-configuration", timeout=10)
    assert by_domain.status_code == 200
    unknown = world.session.get(f"{url}/nosuch.test/v2.0/.well-known/openid-configuration", timeout=10)
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [90002]


def test_msal_accepts_the_issuer_as_an_oidc_authority(world: World):
    """msal's has_valid_issuer holds for the tenant's issuer."""
    app = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=CLIENT_SECRET, oidc_authority=f"{world.sim.url}/{TENANT_ID}/v2.0",
        http_client=world.session)
    assert app.authority.token_endpoint == f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token"


# --- authorization code flow ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_auth_code_flow_gives_signed_tokens_and_an_msal_account(world: World):
    """Auth code + PKCE (Microsoft identity platform and OAuth 2.0 authorization code flow,
    https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow): id token echoes the hashed
    nonce, client_info builds the
    account as uid.utid, the access token is RS256 with a JWKS key, Graph audience and the consented scp."""
    app = world.msal_app()
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI)  # response_mode=query
    query = parse_qsl(urlsplit(flow["auth_uri"]).query)
    assert ("code_challenge_method", "S256") in query
    result = app.acquire_token_by_auth_code_flow(flow, world.browser(flow["auth_uri"], world.alice))

    assert result["token_source"] == "identity_provider"
    claims = result["id_token_claims"]
    assert claims["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert (claims["tid"], claims["oid"], claims["preferred_username"]) == (TENANT_ID, world.alice,
                                                                            "alice@fabrikam.test")
    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == f"{world.sim.url}/{TENANT_ID}/v2.0"
    [account] = app.get_accounts()
    assert account["home_account_id"] == f"{world.alice}.{TENANT_ID}"
    assert account["username"] == "alice@fabrikam.test"

    access = result["access_token"]
    decoded = jwt.decode(access, _jwks_key(world, access), algorithms=["RS256"], audience="https://graph.microsoft.com",
                         options={"verify_exp": False})
    assert set(decoded["scp"].split()) == set(SCOPES)
    assert (decoded["tid"], decoded["oid"], decoded["appid"]) == (TENANT_ID, world.alice, CLIENT_ID)
    assert decoded["exp"] - decoded["iat"] == 3600


def test_codes_and_refresh_tokens_look_like_entra_and_are_redacted(world: World):
    """Entra's opaque "1.A…" shape, which the product's log redaction recognizes."""
    app, flow, response = _approved(world)
    result = app.acquire_token_by_auth_code_flow(flow, response)
    for value in (response["code"], result["refresh_token"]):
        assert value.startswith("1.A")
        assert redact(f"token={value}") == f"token={REDACTED}"
        assert REDACTED in redact(f"saw {value} in a line")


def test_silent_refresh_rotates_the_refresh_token(world: World):
    """Refresh tokens replace themselves on every use; the old one is not revoked (Refresh tokens in the Microsoft
    identity platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)."""
    app, first = world.sign_in(world.alice)
    refreshed = app.acquire_token_silent(SCOPES, app.get_accounts()[0], force_refresh=True)
    assert refreshed is not None
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]
    again = world.msal_app().acquire_token_by_refresh_token(first["refresh_token"], SCOPES)
    assert "access_token" in again, again


def test_user_denies_consent(world: World):
    """Denial redirects with error=access_denied and AADSTS65004 (OAuth 2.0 / Entra authorize errors)."""
    app = world.msal_app()
    flow = world.start_flow(app)
    response = world.browser(flow["auth_uri"], world.alice, decision="deny")
    assert response["error"] == "access_denied"
    assert response["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS65004:")


def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(world: World):
    """AADSTS50011: Entra never redirects to a URI it does not trust."""
    app = world.msal_app()
    flow = world.start_flow(app, redirect_uri="https://evil.example/cb")
    page = world.session.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 400
    assert "AADSTS50011" in page.text


def test_wrong_pkce_verifier_is_refused(world: World):
    """PKCE S256 is verified at redemption (Microsoft identity platform and OAuth 2.0 authorization code flow,
    https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow): AADSTS501481."""
    app, flow, response = _approved(world)
    flow["code_verifier"] = "x" * 43
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "invalid_grant"
    assert _aadsts(result) == 501481


def test_code_works_once(world: World):
    """A second redemption: AADSTS54005."""
    app, flow, response = _approved(world)
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), response)
    second = world.msal_app().acquire_token_by_auth_code_flow(dict(flow), response)
    assert second["error"] == "invalid_grant"
    assert _aadsts(second) == 54005


def test_code_expires_within_minutes(world: World):
    """Codes are short-lived (about 10 minutes): AADSTS70008 after that."""
    app, flow, response = _approved(world)
    world.control("POST", "clock/advance", {"seconds": 11 * 60})
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "invalid_grant"
    assert _aadsts(result) == 70008


def test_redirect_uri_must_match_at_redemption(world: World):
    """The token request's redirect_uri must equal the authorize request's (OAuth 2.0 RFC 6749 §4.1.3)."""
    app, flow, response = _approved(world)
    flow["redirect_uri"] = "http://localhost:8400/other"
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result["error"] == "invalid_grant"


# --- refresh token failures (Microsoft Entra authentication and authorization error codes,
# https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)
# ---------------------------------------------------


def test_refresh_token_expires_after_90_days_of_inactivity(world: World):
    """AADSTS700082 "...inactive for 90.00:00:00" (Refresh tokens in the Microsoft identity platform,
    https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", "clock/advance", {"seconds": 89 * DAY})
    assert "access_token" in app.acquire_token_silent_with_error(SCOPES, app.get_accounts()[0], force_refresh=True)
    world.control("POST", "clock/advance", {"seconds": 91 * DAY})
    result = _refresh_error(app)
    assert result["error"] == "invalid_grant"
    assert _aadsts(result) == 700082
    assert "inactive for 90.00:00:00" in result["error_description"]


def test_refresh_token_expired_on_demand(world: World):
    """The control API's expiry gives the same AADSTS700082 without moving the clock."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/expire-refresh-tokens")
    assert _aadsts(_refresh_error(app)) == 700082


def test_revoked_sessions_kill_refresh_tokens(world: World):
    """revokeSignInSessions: AADSTS50173 (Microsoft Entra error codes,
    https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/revoke-sessions")
    result = _refresh_error(app)
    assert result["error"] == "invalid_grant"
    assert _aadsts(result) == 50173


def test_withdrawn_consent_needs_consent_again(world: World):
    """AADSTS65001 with suberror consent_required (Microsoft Entra authentication and authorization error codes,
    https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/withdraw-consent", {"clientId": CLIENT_ID})
    result = _refresh_error(app)
    assert result["error"] == "invalid_grant"
    assert _aadsts(result) == 65001
    assert result.get("suberror") == "consent_required"


def test_password_reset_keeps_confidential_client_refresh_tokens(world: World):
    """Confidential clients' refresh tokens survive a password reset (Refresh tokens in the Microsoft identity
    platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/reset-password")
    result = app.acquire_token_silent_with_error(SCOPES, app.get_accounts()[0], force_refresh=True)
    assert result is not None
    assert "access_token" in result, result


def test_password_reset_revokes_public_client_refresh_tokens(world: World):
    """Public clients' refresh tokens are revoked by a password reset (Refresh tokens in the Microsoft identity
    platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)."""
    app, _ = world.sign_in(world.alice, app=world.msal_app(client_id=PUBLIC_CLIENT_ID, secret=None))
    world.control("POST", f"users/{world.alice}/reset-password")
    assert _aadsts(_refresh_error(app)) == 50173


def test_interaction_required_until_an_interactive_sign_in(world: World):
    """MFA / Conditional Access: interaction_required with AADSTS50076 and a claims value (Microsoft Entra
    authentication and authorization error codes,
    https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes);
    an interactive sign-in satisfies it."""
    app, _ = world.sign_in(world.alice)
    world.control("POST", f"users/{world.alice}/require-interaction")
    result = _refresh_error(app)
    assert result["error"] == "interaction_required"
    assert _aadsts(result) == 50076
    assert json.loads(result["claims"])["access_token"]
    world.sign_in(world.alice, app=app)
    assert "access_token" in app.acquire_token_silent_with_error(SCOPES, app.get_accounts()[0], force_refresh=True)


def test_unknown_refresh_token(world: World):
    """A token Entra never issued: invalid_grant (AADSTS9002313, assumed code)."""
    result = world.msal_app().acquire_token_by_refresh_token("1.AnotAtokenWeIssued0123456789", SCOPES)
    assert result["error"] == "invalid_grant"


# --- app-wide failures ---------------------------------------------------------------------------


def test_wrong_client_secret(world: World):
    """invalid_client AADSTS7000215 (Entra error code reference)."""
    result = world.msal_app(TENANT_ID, secret="wrong").acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error"] == "invalid_client"
    assert _aadsts(result) == 7000215


def test_expired_client_secret(world: World):
    """invalid_client AADSTS7000222 once the app's secret has expired."""
    world.control("POST", f"apps/{CLIENT_ID}/expire-secrets")
    result = world.msal_app(TENANT_ID).acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error"] == "invalid_client"
    assert _aadsts(result) == 7000222


def test_unknown_application(world: World):
    """unauthorized_client AADSTS700016: application not found in the directory."""
    result = world.msal_app(TENANT_ID, client_id="deadbeef-0000-0000-0000-000000000000").acquire_token_for_client(
        [GRAPH_DEFAULT])
    assert result["error"] == "unauthorized_client"
    assert _aadsts(result) == 700016


def test_error_bodies_are_shaped_like_entra(world: World):
    """error, error_description "AADSTSnnnn: …", error_codes, timestamp, trace_id, correlation_id."""
    response = world.session.post(f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10,
                                  headers={"client-request-id": "c0ffee00-0000-0000-0000-000000000000"},
                                  data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                        "client_secret": "nope", "scope": GRAPH_DEFAULT})
    body = response.json()
    assert response.status_code == 401
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert body["correlation_id"] == "c0ffee00-0000-0000-0000-000000000000"
    assert body["trace_id"]
    assert body["timestamp"]


# --- app-only ------------------------------------------------------------------------------------


def test_client_credentials_carry_admin_consented_roles(world: World):
    """Client credentials with {resource}/.default, no refresh token (client credentials flow,
    https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow); roles appear after
    the v2 admin consent endpoint's approval."""
    app = world.msal_app(TENANT_ID)
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    before = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "roles" not in jwt.decode(before["access_token"], options={"verify_signature": False})

    consent_url = (f"{world.sim.url}/{TENANT_ID}/v2.0/adminconsent?client_id={CLIENT_ID}"
                   f"&scope={GRAPH_DEFAULT}&redirect_uri={REDIRECT_URI}&state=s1")
    response = world.browser(consent_url, world.alice)
    assert response == {"admin_consent": "True", "tenant": TENANT_ID, "scope": GRAPH_DEFAULT, "state": "s1"}

    after = world.msal_app(TENANT_ID).acquire_token_for_client([GRAPH_DEFAULT])
    assert "refresh_token" not in after
    claims = jwt.decode(after["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["Calendars.Read", "User.Read.All"]
    assert claims["idtyp"] == "app"


def test_client_credentials_need_the_app_in_the_tenant(world: World):
    """No service principal in the tenant (never consented): AADSTS700016."""
    result = world.msal_app("northwind.test").acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error"] == "unauthorized_client"
    assert _aadsts(result) == 700016


def test_client_credentials_need_a_default_scope(world: World):
    """AADSTS1002012: client credential scopes must be {resource}/.default."""
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    response = world.session.post(f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scope": "https://graph.microsoft.com/Calendars.Read"})
    assert response.status_code == 400
    assert response.json()["error_codes"] == [1002012]


def test_admin_consent_denied(world: World):
    """The v2 admin consent endpoint's cancel: error=access_denied, AADSTS65004."""
    url = (f"{world.sim.url}/{TENANT_ID}/v2.0/adminconsent?client_id={CLIENT_ID}&scope={GRAPH_DEFAULT}"
           f"&redirect_uri={REDIRECT_URI}&state=s2")
    response = world.browser(url, world.alice, decision="deny")
    assert response["error"] == "access_denied"
    assert response["state"] == "s2"
    assert world.state.tenants[TENANT_ID].app_roles.get(CLIENT_ID) is None


def test_client_info_only_when_asked(world: World):
    """client_info (base64url {"uid","utid"}) comes back when the request has client_info=1, as msal sends."""
    _app, result = world.sign_in(world.bob)
    info = json.loads(base64.urlsafe_b64decode(result["client_info"] + "=="))
    assert info == {"uid": world.bob, "utid": TENANT_ID}


def test_client_secret_basic_authentication(world: World):
    """client_secret_basic (RFC 6749 §2.3.1), which the discovery document advertises."""
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    response = world.session.post(f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10,
                                  auth=(CLIENT_ID, CLIENT_SECRET),
                                  data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT})
    assert response.status_code == 200, response.text
    wrong = world.session.post(f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10,
                               auth=(CLIENT_ID, "wrong"), data={"grant_type": "client_credentials",
                                                                "scope": GRAPH_DEFAULT})
    assert wrong.json()["error_codes"] == [7000215]
