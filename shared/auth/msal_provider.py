"""IdentityProvider on msal's ConfidentialClientApplication.

msal is synchronous: every call runs in a worker thread. Each account's token state is its own
``SerializableTokenCache``, reduced to what refreshing needs (the account record and the refresh
token); access tokens stay in process memory (shared/auth/credential.py).

The client credential is CLIENT_SECRET, or the certificate CLIENT_CERTIFICATE_NAME names, read from
Key Vault on first use and again once an hour or as soon as Entra refuses the one in memory (a rotated
certificate: the old one removed from the app registration); a refused call is retried once when the
reread finds a new version.

Facts this module follows: requests ignores a session's ``verify``
while ``REQUESTS_CA_BUNDLE`` is set, so msal gets its own session with ``trust_env=False`` and the CA
bundle named by LOCAL_CA_BUNDLE (or the default bundle); a non-Microsoft authority needs
``instance_discovery=False``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from shared.accounts.model import Identity
from shared.api import iso_utc
from shared.auth.certificate import CertificateSource, ClientCertificate
from shared.auth.ports import AccessToken, AuthStart, Grant
from shared.clock import Clock, system_clock
from shared.config import Settings
from shared.errors import AccountAuthError, AppAuthError, ConfigError, IdentityUnavailable, InvalidToken

# Hosts msal knows; any other authority (the local simulator) skips instance discovery.
_MICROSOFT_AUTHORITY_HOSTS = {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
                              "login.microsoftonline.de", "login.windows.net", "login.microsoft.com"}
# The AADSTS codes that mean the application itself is refused (one app alarm, not an account status).
_APP_CODES = {"AADSTS7000215", "AADSTS7000222", "AADSTS700016", "AADSTS700027", "AADSTS7000112",
              "AADSTS650052", "AADSTS500011"}
_APP_ERRORS = {"invalid_client", "unauthorized_client"}
_ACCOUNT_ERRORS = {"invalid_grant", "interaction_required", "consent_required", "login_required",
                   "access_denied", "invalid_scope"}
_KEEP_SECTIONS = ("Account", "RefreshToken", "AppMetadata")
# How long a certificate read from Key Vault is used before it is read again (a refusal rereads at once).
CERTIFICATE_RELOAD_SECONDS = 3600.0
# A certificate this close to its end is worth a warning on every load: rotation is overdue.
CERTIFICATE_WARN_SECONDS = 14 * 86400.0

log = logging.getLogger("shared.auth")


class MsalIdentityProvider:
    def __init__(self, settings: Settings, clock: Clock = system_clock,
                 certificates: CertificateSource | None = None) -> None:
        if settings.client_secret is None and certificates is None:
            raise ConfigError(["CLIENT_CERTIFICATE_NAME: no certificate source was given to read it from"])
        self._settings = settings
        self._clock = clock
        self._certificates = certificates if settings.client_secret is None else None
        self._certificate: ClientCertificate | None = None
        self._certificate_read_at = 0.0
        self._reading = asyncio.Lock()
        self._session = requests.Session()
        self._session.trust_env = False
        if settings.local_ca_bundle:
            self._session.verify = settings.local_ca_bundle
        # Shared between the per-account msal applications: discovery documents are fetched once.
        self._http_cache: dict[Any, Any] = {}

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
        settings = self._settings
        known = urlsplit(settings.authority_host).hostname in _MICROSOFT_AUTHORITY_HOSTS
        credential: Any = (self._certificate.msal_credential() if self._certificate is not None
                           else settings.client_secret)
        return msal.ConfidentialClientApplication(
            settings.client_id, client_credential=credential, authority=settings.authority,
            token_cache=cache, http_client=self._session, instance_discovery=None if known else False,
            http_cache=self._http_cache)

    async def _read_certificate(self, *, again: bool = False) -> bool:
        """Have a current certificate in memory (nothing to do with a client secret). ``again`` rereads
        now, after Entra refused the one held; returns whether the version changed."""
        if self._certificates is None:
            return False
        async with self._reading:
            held = self._certificate
            fresh = held is not None and self._clock() - self._certificate_read_at < CERTIFICATE_RELOAD_SECONDS
            if fresh and not again:
                return False
            try:
                certificate = await self._certificates()
            except ConfigError as exc:
                # The app cannot authenticate: one app alarm (health shows it), retried later, as for a
                # refused secret. The problems name the setting and what is wrong, never the value.
                log.error("client certificate unusable: %s", "; ".join(exc.problems))
                raise AppAuthError("client_certificate_unusable") from None
            self._certificate, self._certificate_read_at = certificate, self._clock()
            changed = held is not None and certificate.version != held.version
            if held is None or changed:
                log.info("client certificate %s loaded (version %s, SHA-256 thumbprint %s)",
                         self._settings.client_certificate_name, certificate.version,
                         certificate.sha256_thumbprint)
            if certificate.not_after - self._clock() < CERTIFICATE_WARN_SECONDS:
                log.warning("client certificate %s ends at %s: rotate it (docs/deploy.md)",
                            self._settings.client_certificate_name,
                            iso_utc(certificate.not_after))
            return changed

    async def _token_call(self, run: Any) -> Any:
        """An msal call that reaches the token endpoint. When Entra refuses the certificate held and Key
        Vault has a new version, the call is made once more with it."""
        await self._read_certificate()
        result = await asyncio.to_thread(_guard, run)
        if isinstance(result, dict) and result.get("error") in _APP_ERRORS and await self._read_certificate(again=True):
            result = await asyncio.to_thread(_guard, run)
        return result

    async def start(self, redirect_uri: str, *, login_hint: str | None = None) -> AuthStart:
        def run() -> dict[str, Any]:
            # form_post: the code travels in a POST body, so it never sits in a URL that request logs
            # (App Insights records query strings), browser history or a Referer header keep.
            return dict(self._app().initiate_auth_code_flow(
                list(self._settings.scopes), redirect_uri=redirect_uri, login_hint=login_hint,
                response_mode="form_post"))

        await self._read_certificate()  # msal builds its client with the credential, even here
        flow = await asyncio.to_thread(_guard, run)
        return AuthStart(flow["auth_uri"], flow["state"], flow)

    async def redeem(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> Grant:
        cache = msal.SerializableTokenCache()

        def run() -> dict[str, Any]:
            try:
                return dict(self._app(cache).acquire_token_by_auth_code_flow(dict(flow), dict(response)))
            except ValueError:
                # msal's own check: the response's state or nonce does not match the flow (CSRF).
                raise InvalidToken("the sign-in response does not match its flow") from None

        result = await self._token_call(run)
        if "error" in result:
            raise auth_error(result)
        claims = result.get("id_token_claims") or {}
        identity = Identity(tenant=str(claims.get("tid", "")), user=str(claims.get("oid", "")),
                            username=str(claims.get("preferred_username", "")),
                            display_name=str(claims.get("name", "")))
        if not identity.tenant or not identity.user:
            raise AccountAuthError("id_token_without_tid_or_oid")
        return Grant(identity, tuple(str(result.get("scope", "")).split()), str(result["access_token"]),
                     self._clock() + float(result.get("expires_in", 3600)), _refresh_state(cache))

    async def refresh(self, token_state: str, *, claims_challenge: str | None = None) -> AccessToken:
        cache = msal.SerializableTokenCache()
        cache.deserialize(token_state)
        before = _refresh_tokens(cache)

        def run() -> dict[str, Any] | None:
            app = self._app(cache)
            accounts = app.get_accounts()
            if not accounts:
                return None
            result = app.acquire_token_silent_with_error(
                list(self._settings.scopes), account=accounts[0], claims_challenge=claims_challenge,
                force_refresh=claims_challenge is not None)
            return dict(result) if result is not None else None

        result = await self._token_call(run)
        if result is None:
            raise AccountAuthError("no_refresh_token")
        if "error" in result:
            raise auth_error(result)
        rotated = _refresh_tokens(cache) != before
        return AccessToken(str(result["access_token"]), self._clock() + float(result.get("expires_in", 3600)),
                           _refresh_state(cache) if rotated else None)


def _guard(fn: Any) -> Any:
    """Run an msal call; a network failure reaching the IdP is retryable, never an account status."""
    try:
        return fn()
    except requests.RequestException as exc:
        raise IdentityUnavailable(f"the identity provider is unreachable ({type(exc).__name__})") from None


def _aad_code(result: Mapping[str, Any]) -> str | None:
    codes = result.get("error_codes") or []
    if codes:
        return f"AADSTS{codes[0]}"
    description = str(result.get("error_description", ""))
    return description.split(":", 1)[0] if description.startswith("AADSTS") else None


def auth_error(result: Mapping[str, Any]) -> Exception:
    """Classify an msal error result (never quoting its description, which may echo request data)."""
    error = str(result.get("error", "unknown"))
    code = _aad_code(result)
    if error in _APP_ERRORS or code in _APP_CODES:
        return AppAuthError(error, aad_code=code)
    if error in _ACCOUNT_ERRORS:
        suberror = result.get("suberror")
        return AccountAuthError(f"{error}/{suberror}" if suberror else error, aad_code=code)
    return IdentityUnavailable(f"the identity provider answered {error}" + (f" ({code})" if code else ""))


def _refresh_state(cache: msal.SerializableTokenCache) -> str:
    """What refreshing needs, and nothing else: access and id tokens are dropped."""
    full = json.loads(cache.serialize())
    return json.dumps({k: full[k] for k in _KEEP_SECTIONS if k in full}, sort_keys=True)


def _refresh_tokens(cache: msal.SerializableTokenCache) -> set[str]:
    return {str(item.get("secret")) for item in json.loads(cache.serialize()).get("RefreshToken", {}).values()}
