"""Client assertions signed with an app's certificate, as "Microsoft identity platform application
authentication certificate credentials" describes them
(https://learn.microsoft.com/entra/identity-platform/certificate-credentials), driven through the real
msal where it can build the assertion and through hand-built JWTs (PyJWT) where a test needs a wrong
one. Error codes as "Microsoft Entra authentication and authorization error codes"
(https://learn.microsoft.com/entra/identity-platform/reference-error-codes) lists them."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
import msal
from cryptography.hazmat.primitives import hashes

from devstack.m365.identity import JWT_BEARER
from devstack.m365.state import SimState
from tests.certificates import KeyAndCertificate, make_certificate
from tests.devstack.world import CLIENT_ID, GRAPH_DEFAULT, TENANT_ID, World


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _register(world: World, certificate: KeyAndCertificate) -> str:
    created = world.control("POST", f"apps/{CLIENT_ID}/certificates", {"certificate": certificate.cert_pem})
    assert created["x5t#S256"] == _b64url(certificate.thumbprint(hashes.SHA256()))
    return str(created["keyId"])


def _app(world: World, credential: dict[str, Any]) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=credential, authority=f"{world.sim.url}/{TENANT_ID}",
        instance_discovery=False, http_client=world.session, token_cache=msal.SerializableTokenCache())


def _with_certificate(world: World, certificate: KeyAndCertificate) -> msal.ConfidentialClientApplication:
    return _app(world, {"private_key": certificate.key_pem, "public_certificate": certificate.cert_pem})


def _token(world: World, assertion: str, assertion_type: str = JWT_BEARER) -> Any:
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    return world.session.post(f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "scope": GRAPH_DEFAULT,
        "client_assertion_type": assertion_type, "client_assertion": assertion})


def _assertion(world: World, certificate: KeyAndCertificate, *, signer: KeyAndCertificate | None = None,
               **claims: Any) -> str:
    now = int(time.time())
    payload = {"aud": f"{world.sim.url}/{TENANT_ID}/oauth2/v2.0/token", "iss": CLIENT_ID, "sub": CLIENT_ID,
               "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600, "iat": now} | claims
    header = {"typ": "JWT", "x5t#S256": _b64url(certificate.thumbprint(hashes.SHA256()))}
    return jwt.encode(payload, (signer or certificate).key, algorithm="PS256", headers=header)


def test_discovery_offers_private_key_jwt(world: World):
    config = world.session.get(f"{world.sim.url}/{TENANT_ID}/v2.0/.well-known/openid-configuration", timeout=10)
    assert "private_key_jwt" in config.json()["token_endpoint_auth_methods_supported"]


def test_msal_signs_with_ps256_and_the_simulator_issues_a_token(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    result = _with_certificate(world, certificate).acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result


def test_an_auth_code_is_redeemed_with_a_certificate(world: World):
    """The product's own flow: authorization code and refresh with a client assertion each time."""
    certificate = make_certificate()
    _register(world, certificate)
    app = _with_certificate(world, certificate)
    flow = world.start_flow(app)
    result = app.acquire_token_by_auth_code_flow(flow, world.browser(flow["auth_uri"], world.alice))
    assert "refresh_token" in result, result
    refreshed = app.acquire_token_silent_with_error(["User.Read"], app.get_accounts()[0], force_refresh=True)
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed


def test_the_older_rs256_with_a_sha1_x5t_is_still_accepted(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    legacy = _app(world, {"private_key": certificate.key_pem,
                          "thumbprint": certificate.thumbprint(hashes.SHA1()).hex()})
    assert "access_token" in legacy.acquire_token_for_client([GRAPH_DEFAULT])


def test_a_certificate_not_registered_is_refused_with_700027(world: World):
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    result = _with_certificate(world, make_certificate()).acquire_token_for_client([GRAPH_DEFAULT])
    assert (result["error"], result["error_codes"]) == ("invalid_client", [700027])


def test_a_removed_certificate_is_refused(world: World):
    certificate = make_certificate()
    key = _register(world, certificate)
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    assert "access_token" in _with_certificate(world, certificate).acquire_token_for_client([GRAPH_DEFAULT])
    removed = world.session.delete(f"{world.sim.url}/_sim/apps/{CLIENT_ID}/certificates/{key}", timeout=10)
    assert removed.status_code == 204
    result = _with_certificate(world, certificate).acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error_codes"] == [700027]


def test_a_certificate_past_its_end_is_refused(world: World):
    certificate = make_certificate(days=1)
    _register(world, certificate)
    world.control("POST", "clock/advance", {"seconds": 2 * 86400})
    response = _token(world, _assertion(world, certificate, nbf=int(time.time()) + 2 * 86400,
                                        exp=int(time.time()) + 2 * 86400 + 600))
    assert (response.status_code, response.json()["error_codes"]) == (401, [700027])


def test_a_signature_by_another_key_is_refused(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    response = _token(world, _assertion(world, certificate, signer=make_certificate()))
    assert (response.status_code, response.json()["error_codes"]) == (401, [700027])


def test_the_audience_must_be_the_token_endpoint(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    response = _token(world, _assertion(world, certificate, aud="https://login.example.com/token"))
    assert response.json()["error_codes"] == [700023]
    # The tenant's own endpoint is its audience whichever segment (id or domain) the request used.
    assert _token(world, _assertion(world, certificate)).status_code == 200


def test_issuer_and_subject_must_be_the_client_id(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    response = _token(world, _assertion(world, certificate, iss="someone-else"))
    assert response.json()["error_codes"] == [700021]


def test_an_assertion_outside_its_time_range_is_refused(world: World):
    """msal's assertions last 10 minutes of real time; an hour later on the simulator's clock they are stale."""
    certificate = make_certificate()
    _register(world, certificate)
    world.state.ensure_service_principal(TENANT_ID, CLIENT_ID)
    world.control("POST", "clock/advance", {"seconds": 3600})
    result = _with_certificate(world, certificate).acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error_codes"] == [700024]


def test_a_wrong_assertion_type_or_a_malformed_assertion_is_a_bad_request(world: World):
    certificate = make_certificate()
    _register(world, certificate)
    wrong_type = _token(world, _assertion(world, certificate), assertion_type="urn:example:saml")
    assert (wrong_type.status_code, wrong_type.json()["error_codes"]) == (400, [50027])
    malformed = _token(world, "not.a.jwt")
    assert (malformed.status_code, malformed.json()["error_codes"]) == (400, [50027])


def test_registered_certificates_survive_the_state_file(world: World, tmp_path):
    certificate = make_certificate()
    _register(world, certificate)
    path = tmp_path / "state.json"
    world.state.save(path)
    loaded = SimState.load(path).apps[CLIENT_ID].certificates
    assert [c.x5t_s256 for c in loaded] == [_b64url(certificate.thumbprint(hashes.SHA256()))]
