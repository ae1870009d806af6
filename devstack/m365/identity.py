"""Entra ID (v2.0 endpoints) as the real msal talks to it: OIDC discovery, JWKS, authorize with a consent
page, token (authorization_code with PKCE, refresh_token, client_credentials), admin consent.

Sources: Microsoft identity platform and OAuth 2.0 authorization code flow,
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow; Refresh tokens in the
Microsoft identity platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens; Microsoft
Entra authentication and authorization error codes,
https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes; and what msal checks (an https
authority, the issuer, the hashed nonce). Error texts follow
Entra's; codes the docs do not confirm are listed as assumed in docs/devstack.md.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.m365.state import (
    APPLICATION_ROLES,
    DELEGATED_SCOPES,
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    OIDC_SCOPES,
    App,
    PendingAuthorization,
    SimState,
    User,
    b64url,
    new_id,
)

MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations", "consumers"})
_CANONICAL = {s.lower(): s for s in DELEGATED_SCOPES | APPLICATION_ROLES}


class Signer:
    """The RS256 key that signs id and access tokens; its public half is served as JWKS."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = b64url(hashlib.sha256(str(self.key.public_key().public_numbers().n).encode()).digest()[:15])

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def verify(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """Signature and audience. Times are checked by the caller against the simulated clock.

        :raises jwt.InvalidTokenError:
        """
        return jwt.decode(token, self.key.public_key(), algorithms=["RS256"], audience=audiences,
                          options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})


# --- errors --------------------------------------------------------------------------------------


def entra_error(request: web.Request, state: SimState, status: int, error: str, code: int, text: str, *,
                suberror: str | None = None, claims: str | None = None) -> web.Response:
    """An error body shaped like Entra's token endpoint errors."""
    trace_id = new_id()
    correlation_id = request.headers.get("client-request-id") or new_id()
    timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(state.clock.now()))
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                             f"Timestamp: {timestamp}",
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    if suberror:
        body["suberror"] = suberror
    if claims:
        body["claims"] = claims
    return web.json_response(body, status=status)


def error_page(status: int, code: int, text: str) -> web.Response:
    # The authorize endpoint shows errors it cannot trust a redirect URI with as a page, as Entra does.
    body = (f"<!doctype html><title>Sign in</title><h1>Sorry, but we're having trouble signing you in.</h1>"
            f"<p id='error'>AADSTS{code}: {html.escape(text)}</p>")
    return web.Response(status=status, text=body, content_type="text/html")


class TokenError(Exception):
    """Raised inside the token endpoint; turned into an Entra error body."""

    def __init__(self, status: int, error: str, code: int, text: str, *, suberror: str | None = None,
                 claims: str | None = None) -> None:
        super().__init__(f"{error} AADSTS{code}")
        self.status, self.error, self.code, self.text = status, error, code, text
        self.suberror, self.claims = suberror, claims


def invalid_grant(code: int, text: str, **kwargs: Any) -> TokenError:
    return TokenError(400, "invalid_grant", code, text, **kwargs)


# --- scopes --------------------------------------------------------------------------------------


@dataclass
class Scopes:
    oidc: set[str]
    graph: set[str]
    default: bool  # "{resource}/.default"
    invalid: list[str]


def parse_scopes(raw: str) -> Scopes:
    parsed = Scopes(set(), set(), False, [])
    for item in raw.split():
        if item.lower() in OIDC_SCOPES:
            parsed.oidc.add(item.lower())
            continue
        name = item
        for prefix in (GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/"):
            if item.lower().startswith(prefix):
                name = item[len(prefix):]
        if name == ".default":
            parsed.default = True
        elif name.lower() in _CANONICAL:
            parsed.graph.add(_CANONICAL[name.lower()])
        else:
            parsed.invalid.append(item)
    return parsed


# --- the routes ----------------------------------------------------------------------------------


class Identity:
    def __init__(self, state: SimState, signer: Signer) -> None:
        self.state = state
        self.signer = signer

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery),
            web.get("/{tenant}/discovery/v2.0/keys", self.keys),
            web.get("/{tenant}/oauth2/v2.0/authorize", self.authorize_page),
            web.post("/{tenant}/oauth2/v2.0/authorize", self.authorize_decision),
            web.post("/{tenant}/oauth2/v2.0/token", self.token),
            web.get("/{tenant}/v2.0/adminconsent", self.admin_consent_page),
            web.post("/{tenant}/v2.0/adminconsent", self.admin_consent_decision),
        ]

    # --- discovery ---------------------------------------------------------------------------

    def _known_segment(self, segment: str) -> bool:
        return segment.lower() in MULTI_TENANT_SEGMENTS or self.state.find_tenant(segment) is not None

    async def discovery(self, request: web.Request) -> web.Response:
        segment = request.match_info["tenant"]
        tenant = self.state.find_tenant(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS:
            return entra_error(request, self.state, 400, "invalid_tenant", 90002,
                               f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
                               "and are signing into the correct cloud.")
        origin = _origin(request)
        # Multi-tenant authorities publish an issuer with a {tenantid} placeholder, as Entra does.
        issuer_tenant = tenant.id if tenant else "{tenantid}"
        base = f"{origin}/{segment}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{origin}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid",
                                 "ver", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })

    async def keys(self, request: web.Request) -> web.Response:
        return web.json_response(self.signer.jwks())

    # --- authorize ---------------------------------------------------------------------------

    def _check_request(self, segment: str, params: dict[str, str]) -> App | web.Response:
        """The checks before Entra trusts an authorize request's redirect URI; failures are error pages."""
        if not self._known_segment(segment):
            return error_page(400, 90002, f"Tenant '{segment}' not found.")
        client_id = params.get("client_id", "")
        app = self.state.apps.get(client_id)
        if app is None:
            return error_page(400, 700016, _app_not_found(client_id, "the directory"))
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return error_page(400, 50011,
                              f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                              f"redirect URIs configured for the application '{client_id}'. Make sure the redirect "
                              "URI sent in the request matches one added to your application in the Azure portal.")
        return app

    def _remember(self, kind: str, segment: str, params: dict[str, str]) -> str:
        now = self.state.clock.now()
        pending = PendingAuthorization(new_id(), kind, segment, params, now)
        with self.state.lock:
            # A consent page left open for an hour is abandoned; forget it so the state stays small.
            for stale in [k for k, p in self.state.pending.items() if now - p.created_at > 3600]:
                del self.state.pending[stale]
            self.state.pending[pending.id] = pending
        return pending.id

    async def _decision(self, request: web.Request, kind: str, **denial: str
                        ) -> tuple[PendingAuthorization, User | None] | web.Response:
        """The pending request a consent form answers (usable once) and the user picked, or the answer to a
        denial or a stale form."""
        form = {k: str(v) for k, v in (await request.post()).items()}
        with self.state.lock:
            pending = self.state.pending.pop(form.get("request", ""), None)
        if pending is None or pending.kind != kind:
            return error_page(400, 90014, "The request body must contain a pending sign-in request.")
        if form.get("decision") != "approve":
            return _redirect_error(pending.params, "access_denied",
                                   "AADSTS65004: User declined to consent to access the app.", error_subcode="cancel",
                                   **denial)
        return pending, self.state.find_user(form.get("user", ""))

    async def authorize_page(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        segment = request.match_info["tenant"]
        app = self._check_request(segment, params)
        if isinstance(app, web.Response):
            return app
        if params.get("response_type") != "code":
            return _redirect_error(params, "unsupported_response_type",
                                   "AADSTS700054: response_type 'code' is the only one this simulator serves.")
        scopes = parse_scopes(params.get("scope", ""))
        if scopes.invalid or not (scopes.graph or scopes.default or scopes.oidc):
            return _redirect_error(params, "invalid_scope",
                                   f"AADSTS70011: The provided value for the input parameter 'scope' is not valid. "
                                   f"The scope '{' '.join(scopes.invalid)}' is not valid.")
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in ("S256", "plain"):
            return _redirect_error(params, "invalid_request",
                                   "AADSTS501491: Invalid code_challenge_method.")
        if params.get("prompt") == "none":
            # The simulator keeps no browser session, so a silent request has no one signed in.
            return _redirect_error(params, "login_required",
                                   "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
        request_id = self._remember("authorize", segment, params)
        requested = sorted(scopes.graph | (set(app.delegated_permissions) if scopes.default else set()))
        return _consent_page(request.path, request_id, app, self._candidates(segment), requested,
                             params.get("login_hint"), admin=False)

    def _candidates(self, segment: str, admins_only: bool = False) -> list[User]:
        tenant = self.state.find_tenant(segment)
        return [u for u in self.state.users.values()
                if not u.deleted and (tenant is None or u.tenant_id == tenant.id) and (u.is_admin or not admins_only)]

    async def authorize_decision(self, request: web.Request) -> web.Response:
        decided = await self._decision(request, "authorize")
        if isinstance(decided, web.Response):
            return decided
        pending, user = decided
        params = pending.params
        if user is None or user.deleted:
            return error_page(400, 50034, "The user account does not exist in the directory.")
        tenant = self.state.find_tenant(pending.tenant)
        if tenant is not None and user.tenant_id != tenant.id:
            return error_page(400, 50020, f"User account '{user.upn}' does not exist in tenant '{tenant.name}' and "
                                          "cannot access the application in that tenant.")
        app = self.state.apps[params["client_id"]]
        scopes = parse_scopes(params.get("scope", ""))
        granted = scopes.graph | (set(app.delegated_permissions) if scopes.default else set())
        now = self.state.clock.now()
        with self.state.lock:
            user.require_interaction = False  # an interactive sign-in satisfies MFA / Conditional Access
            self.state.grant_consent(app.client_id, user, granted)
            code = self.state.new_code(
                client_id=app.client_id, user_id=user.id, redirect_uri=params["redirect_uri"],
                scopes=sorted(scopes.oidc | granted | ({".default"} if scopes.default else set())),
                code_challenge=params.get("code_challenge"),
                code_challenge_method=params.get("code_challenge_method", "plain") if params.get("code_challenge")
                else None,
                nonce=params.get("nonce"), auth_time=now)
        result = {"code": code.code, "state": params.get("state"), "session_state": new_id()}
        return _respond_to_client(params, result)

    # --- admin consent (v2) ------------------------------------------------------------------

    async def admin_consent_page(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        segment = request.match_info["tenant"]
        app = self._check_request(segment, params)
        if isinstance(app, web.Response):
            return app
        scopes = parse_scopes(params.get("scope", f"{GRAPH_RESOURCE}/.default"))
        request_id = self._remember("adminconsent", segment, params)
        requested = sorted(scopes.graph | (set(app.delegated_permissions) | {
            f"{r} (application)" for r in app.application_permissions} if scopes.default else set()))
        return _consent_page(request.path, request_id, app, self._candidates(segment, admins_only=True), requested,
                             None, admin=True)

    async def admin_consent_decision(self, request: web.Request) -> web.Response:
        decided = await self._decision(request, "adminconsent", admin_consent="False")
        if isinstance(decided, web.Response):
            return decided
        pending, user = decided
        params = pending.params
        if user is None or user.deleted or not user.is_admin:
            return _redirect_error(params, "access_denied",
                                   "AADSTS90094: Admin consent is required for the permissions requested by this "
                                   "application.", admin_consent="False")
        app = self.state.apps[params["client_id"]]
        scopes = parse_scopes(params.get("scope", f"{GRAPH_RESOURCE}/.default"))
        tenant = self.state.tenants[user.tenant_id]
        with self.state.lock:
            delegated = set(tenant.admin_scopes.get(app.client_id, [])) | scopes.graph
            roles = set(tenant.app_roles.get(app.client_id, []))
            if scopes.default:
                delegated |= set(app.delegated_permissions)
                roles |= set(app.application_permissions)
            tenant.admin_scopes[app.client_id] = sorted(delegated)
            tenant.app_roles[app.client_id] = sorted(roles)
            self.state.ensure_service_principal(tenant.id, app.client_id)
        return _respond_to_client(params, {"admin_consent": "True", "tenant": tenant.id,
                                           "scope": params.get("scope", f"{GRAPH_RESOURCE}/.default"),
                                           "state": params.get("state")})

    # --- token -------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        segment = request.match_info["tenant"]
        try:
            if not self._known_segment(segment):
                raise TokenError(400, "invalid_tenant", 90002, f"Tenant '{segment}' not found. Check to make sure "
                                 "you have the correct tenant ID and are signing into the correct cloud.")
            with self.state.lock:
                app, confidential = self._authenticate_client(form, segment,
                                                              request.headers.get("Authorization", ""))
                grant_type = form.get("grant_type", "")
                if grant_type == "authorization_code":
                    body = self._redeem_code(request, app, confidential, segment, form)
                elif grant_type == "refresh_token":
                    body = self._redeem_refresh_token(request, app, confidential, segment, form)
                elif grant_type == "client_credentials":
                    body = self._client_credentials(request, app, confidential, segment, form)
                else:
                    raise TokenError(400, "unsupported_grant_type", 70003,
                                     f"The app requested an unsupported grant type '{grant_type}'.")
        except TokenError as exc:
            return entra_error(request, self.state, exc.status, exc.error, exc.code, exc.text,
                               suberror=exc.suberror, claims=exc.claims)
        return web.json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _authenticate_client(self, form: dict[str, str], segment: str, authorization: str) -> tuple[App, bool]:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":  # client_secret_basic (RFC 6749 §2.3.1), advertised in discovery
            basic_id, _, basic_secret = base64.b64decode(encoded).decode().partition(":")
            form = {**form, "client_id": unquote_plus(basic_id), "client_secret": unquote_plus(basic_secret)}
        client_id = form.get("client_id", "")
        app = self.state.apps.get(client_id)
        if app is None:
            raise TokenError(400, "unauthorized_client", 700016, _app_not_found(client_id, f"'{segment}'"))
        secret = form.get("client_secret")
        if secret is None:
            if app.public_client:
                return app, False
            raise TokenError(401, "invalid_client", 7000218, "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.")
        now = self.state.clock.now()
        matching = [s for s in app.secrets if secrets.compare_digest(s.value.encode(), secret.encode())]
        if not matching:
            raise TokenError(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                             "sent in the request is the client secret value, not the client secret ID, for a secret "
                             f"added to app '{client_id}'.")
        if all(s.expires_at <= now for s in matching):
            raise TokenError(401, "invalid_client", 7000222, f"The provided client secret keys for app '{client_id}' "
                             "are expired. Visit the Azure portal to create new keys for your app: "
                             "https://aka.ms/NewClientSecret, or consider using certificate credentials for added "
                             "security: https://aka.ms/certCreds.")
        return app, True

    def _redeem_code(self, request: web.Request, app: App, confidential: bool, segment: str,
                     form: dict[str, str]) -> dict[str, Any]:
        state = self.state
        code = state.codes.get(form.get("code", ""))
        if code is None:
            raise invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        if code.redeemed:
            raise invalid_grant(54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                                "code or use an existing refresh token.")
        if state.clock.now() - code.issued_at > state.switches.code_seconds:
            raise invalid_grant(70008, "The provided authorization code or refresh token has expired due to "
                                "inactivity. Send a new interactive authorization request for this user and resource.")
        if code.client_id != app.client_id:
            raise invalid_grant(70000, "Provided grant is invalid or malformed.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise invalid_grant(70000, "Provided grant is invalid or malformed. The redirect_uri does not match "
                                "the one used in the authorization request.")
        if code.code_challenge is not None and not _pkce_ok(code.code_challenge, code.code_challenge_method,
                                                            form.get("code_verifier")):
            raise invalid_grant(501481, "The Code_Verifier does not match the code_challenge supplied in the "
                                "authorization request.")
        code.redeemed = True  # a code works once, even when the rest of the request fails below
        user = state.users[code.user_id]
        if user.deleted:
            raise invalid_grant(50034, f"The user account {user.upn} does not exist in the directory.")
        scopes = parse_scopes(" ".join(code.scopes))
        return self._user_tokens(request, app, user, scopes.oidc, code.nonce, code.auth_time, confidential, form)

    def _redeem_refresh_token(self, request: web.Request, app: App, confidential: bool, segment: str,
                              form: dict[str, str]) -> dict[str, Any]:
        state = self.state
        token = state.refresh_tokens.get(form.get("refresh_token", ""))
        if token is None:
            raise invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        if token.client_id != app.client_id:
            raise invalid_grant(70000, "Provided grant is invalid or malformed.")
        user = state.users[token.user_id]
        tenant = self.state.find_tenant(segment)
        if tenant is not None and tenant.id != user.tenant_id:
            raise invalid_grant(50020, f"User account '{user.upn}' does not exist in tenant '{tenant.name}'.")
        now = state.clock.now()
        if user.deleted:
            raise invalid_grant(50034, f"The user account {user.upn} does not exist in the directory.")
        inactivity = state.switches.refresh_inactivity_days * 86400
        if token.expired or now - token.last_used_at > inactivity:
            issued = _entra_time(token.issued_at)
            raise invalid_grant(700082, f"The refresh token has expired due to inactivity. The token was issued on "
                                f"{issued} and was inactive for {state.switches.refresh_inactivity_days}.00:00:00.")
        # Revocation (revokeSignInSessions) kills every refresh token; a password reset only those of public
        # clients (Refresh tokens in the Microsoft identity platform, https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
        revoked_at = max(user.tokens_valid_from, 0 if token.confidential else user.password_changed_at)
        if token.auth_time < revoked_at:
            raise invalid_grant(50173, "The provided grant has expired due to it being revoked, a fresh auth token "
                                "is needed. The user might have changed or reset their password. The grant was "
                                f"issued on '{_entra_time(token.auth_time)}' and the TokensValidFrom date (before "
                                f"which tokens are not valid) for this user is '{_entra_time(revoked_at)}'.")
        scopes = parse_scopes(form.get("scope", ""))
        consented = state.consented_scopes(app.client_id, user)
        if not consented or not scopes.graph <= consented or scopes.invalid:
            raise invalid_grant(65001, f"The user or administrator has not consented to use the application with ID "
                                f"'{app.client_id}' named '{app.name}'. Send an interactive authorization request for "
                                "this user and resource.", suberror="consent_required")
        if user.require_interaction:
            claims = json.dumps({"access_token": {"capolids": {"essential": True, "values": [new_id()]}}})
            raise TokenError(400, "interaction_required", 50076, "Due to a configuration change made by your "
                             "administrator, or because you moved to a new location, you must use multi-factor "
                             f"authentication to access '{GRAPH_APP_ID}'.", suberror="basic_action", claims=claims)
        token.last_used_at = now
        return self._user_tokens(request, app, user, scopes.oidc, None, token.auth_time, confidential, form)

    def _user_tokens(self, request: web.Request, app: App, user: User, oidc: set[str], nonce: str | None,
                     auth_time: float, confidential: bool, form: dict[str, str]) -> dict[str, Any]:
        state = self.state
        granted = state.consented_scopes(app.client_id, user)
        now = state.clock.now()
        lifetime = state.switches.access_token_seconds
        record = state.new_access_record(app.client_id, user.id)
        access_token = self.signer.sign({
            "aud": GRAPH_RESOURCE, "iss": f"https://sts.windows.net/{user.tenant_id}/", "iat": int(now),
            "nbf": int(now), "exp": int(now + lifetime), "appid": app.client_id, "app_displayname": app.name,
            "idtyp": "user", "name": user.display_name, "oid": user.id, "scp": " ".join(sorted(granted)),
            "sub": _pairwise(user.id, GRAPH_APP_ID), "tid": user.tenant_id, "unique_name": user.upn,
            "upn": user.upn, "uti": record.uti, "ver": "1.0", "amr": ["pwd"],
        })
        state.record_issued("access_token", access_token, app.client_id, user.id)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(sorted(granted) + sorted(oidc - {"offline_access"})),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        if "offline_access" in oidc:
            refresh = state.new_refresh_token(app.client_id, user.id, auth_time, confidential)
            body["refresh_token"] = refresh.token
        if "openid" in oidc:
            id_claims: dict[str, Any] = {
                "aud": app.client_id, "iss": f"{_origin(request)}/{user.tenant_id}/v2.0", "iat": int(now),
                "nbf": int(now), "exp": int(now + 3600), "name": user.display_name, "oid": user.id,
                "preferred_username": user.upn, "sub": _pairwise(user.id, app.client_id), "tid": user.tenant_id,
                "ver": "2.0", "uti": new_id(),
            }
            if nonce:
                id_claims["nonce"] = nonce  # msal sends the hashed nonce and expects it back (msal checks it)
            body["id_token"] = self.signer.sign(id_claims)
            state.record_issued("id_token", body["id_token"], app.client_id, user.id)
        if form.get("client_info") == "1":
            body["client_info"] = b64url(json.dumps({"uid": user.id, "utid": user.tenant_id}).encode())
        return body

    def _client_credentials(self, request: web.Request, app: App, confidential: bool, segment: str,
                            form: dict[str, str]) -> dict[str, Any]:
        state = self.state
        if not confidential:
            raise TokenError(401, "invalid_client", 7000218, "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.")
        scopes = parse_scopes(form.get("scope", ""))
        if not scopes.default or scopes.graph or scopes.invalid or len(form.get("scope", "").split()) != 1:
            raise TokenError(400, "invalid_scope", 1002012, f"The provided value for scope {form.get('scope', '')} "
                             "is not valid. Client credential flows must have a scope value with /.default suffixed "
                             "to the resource identifier (application ID URI).")
        tenant = self.state.find_tenant(segment)
        if tenant is None:
            # assumed: the app-only flow needs a tenant-specific authority
            raise TokenError(400, "invalid_request", 900023, f"Specified tenant identifier '{segment}' is neither a "
                             "valid DNS name, nor a valid external domain.")
        if app.client_id not in tenant.service_principals:
            raise TokenError(400, "unauthorized_client", 700016, _app_not_found(app.client_id, f"'{tenant.id}'"))
        now = state.clock.now()
        lifetime = state.switches.access_token_seconds
        record = state.new_access_record(app.client_id, None)
        sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant.id}:{app.client_id}"))
        claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE, "iss": f"https://sts.windows.net/{tenant.id}/", "iat": int(now), "nbf": int(now),
            "exp": int(now + lifetime), "appid": app.client_id, "app_displayname": app.name, "idtyp": "app",
            "oid": sp_id, "sub": sp_id, "tid": tenant.id, "uti": record.uti, "ver": "1.0",
        }
        roles = tenant.app_roles.get(app.client_id, [])
        if roles:  # without admin-granted roles Entra still issues a token, with no roles claim
            claims["roles"] = sorted(roles)
        access_token = self.signer.sign(claims)
        state.record_issued("access_token", access_token, app.client_id)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": access_token}


# --- helpers -------------------------------------------------------------------------------------


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _app_not_found(client_id: str, directory: str) -> str:
    return (f"Application with identifier '{client_id}' was not found in the directory {directory}. This can "
            "happen if the application has not been installed by the administrator of the tenant or consented to "
            "by any user in the tenant. You may have sent your authentication request to the wrong tenant.")


def _pairwise(user_id: str, audience: str) -> str:
    return b64url(hashlib.sha256(f"{user_id}:{audience}".encode()).digest())


def _pkce_ok(challenge: str, method: str | None, verifier: str | None) -> bool:
    if not verifier or not 43 <= len(verifier) <= 128:
        return False
    if method == "S256":
        return secrets.compare_digest(b64url(hashlib.sha256(verifier.encode("ascii")).digest()), challenge)
    return secrets.compare_digest(verifier, challenge)


def _entra_time(epoch: float) -> str:
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(epoch))


def _redirect_error(params: dict[str, str], error: str, description: str, **extra: str) -> web.Response:
    result = {"error": error, "error_description": description, **extra, "state": params.get("state")}
    return _respond_to_client(params, result)


def _respond_to_client(params: dict[str, str], result: dict[str, str | None]) -> web.Response:
    values = {k: v for k, v in result.items() if v is not None}
    redirect_uri = params["redirect_uri"]
    if params.get("response_mode") == "form_post":
        fields = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                         for k, v in values.items())
        page = (f"<!doctype html><body onload='document.forms[0].submit()'><form method='post' "
                f"action='{html.escape(redirect_uri)}'>{fields}</form></body>")
        return web.Response(text=page, content_type="text/html")
    separator = "#" if params.get("response_mode") == "fragment" else ("&" if "?" in redirect_uri else "?")
    return web.Response(status=302, headers={"Location": redirect_uri + separator + urlencode(values)})


def _consent_page(action: str, request_id: str, app: App, users: list[User], scopes: list[str],
                  login_hint: str | None, *, admin: bool) -> web.Response:
    """The page a browser (or a test, with one GET and one form POST) uses to sign in and consent."""
    hint = (login_hint or "").lower()
    options = "".join(
        f"<option value='{html.escape(u.id)}'{' selected' if hint == u.upn.lower() else ''}>"
        f"{html.escape(u.display_name)} ({html.escape(u.upn)})</option>" for u in users)
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
    heading = "Permissions requested (accept for your organization)" if admin else "Permissions requested"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in - Microsoft 365 simulator</title></head>
<body>
<h1>{heading}</h1>
<p><b>{html.escape(app.name)}</b> ({html.escape(app.client_id)}) would like to:</p>
<ul id="scopes">{items}</ul>
<form method="post" action="{html.escape(action)}">
<input type="hidden" name="request" value="{html.escape(request_id)}">
<label>Sign in as <select name="user">{options}</select></label>
<button type="submit" name="decision" value="approve">Accept</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>"""
    return web.Response(text=page, content_type="text/html")
