"""Key Vault dev server: the secrets REST API the real azure-keyvault-secrets client uses, over HTTPS with
the local CA and Key Vault's 401 bearer challenge, which the client answers before it sends a token.

Follows the Key Vault secrets REST reference (set, get, list, versions, update, delete with soft delete,
deleted secrets, recover, purge) and its error bodies. It accepts the static bearer tokens of the
product's dev credential (shared/auth/devcredential.py). Behaviour the docs leave open is a switch in
``VaultSwitches``, marked assumed.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from devstack.certs import CertPaths, ensure_certs
from devstack.m365.state import Clock, new_id
from devstack.serving import ServerThread
from shared.auth.devcredential import DEV_KEY_VAULT_TOKEN

DEFAULT_PORT = 7444
RESOURCE = "https://vault.azure.net"
NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024  # documented: a secret value holds at most 25k bytes
PAGE_SIZE = 25  # documented maximum of maxresults


@dataclass
class VaultSwitches:
    # documented: soft-delete retention 7-90 days, 90 by default
    retention_days: int = 90
    # assumed: how long a deletion stays "in progress" (404 on the deleted secret, 409 ObjectIsBeingDeleted)
    delete_seconds: float = 0.0
    # assumed default False: the service returns expired and not-yet-valid secrets (Azure/AzureKeyVault#19);
    # True answers 403 SecretExpired / SecretNotYetValid as the attribute docs suggest.
    block_outside_validity: bool = False


@dataclass
class Version:
    id: str
    value: str
    content_type: str | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    tags: dict[str, str] | None


@dataclass
class Secret:
    name: str
    versions: list[Version] = field(default_factory=list)
    deleted_at: int | None = None
    purge_at: int | None = None
    deletion_done_at: float | None = None


class VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.inner = status, code, message, inner


def _not_found(name: str) -> VaultError:
    return VaultError(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. If "
                      "you recently deleted this secret you may be able to recover it using the correct recovery "
                      "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


@dataclass
class Vault:
    tenant_id: str
    accepted_tokens: set[str] = field(default_factory=lambda: {DEV_KEY_VAULT_TOKEN})
    clock: Clock = field(default_factory=Clock)
    switches: VaultSwitches = field(default_factory=VaultSwitches)
    secrets: dict[str, Secret] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def reset(self) -> None:
        with self.lock:
            self.secrets.clear()
            self.clock.offset = 0.0
            self.switches = VaultSwitches()

    def now(self) -> int:
        return int(self.clock.now())

    def _expire_purged(self) -> None:
        for name in [n for n, s in self.secrets.items() if s.purge_at is not None and s.purge_at <= self.now()]:
            del self.secrets[name]

    def live(self, name: str) -> Secret:
        self._expire_purged()
        secret = self.secrets.get(name)
        if secret is None or secret.deleted_at is not None or not secret.versions:
            raise _not_found(name)
        return secret

    def deleted(self, name: str) -> Secret:
        self._expire_purged()
        secret = self.secrets.get(name)
        if secret is None or secret.deleted_at is None or self._being_deleted(secret):
            raise _not_found(name)
        return secret

    def _being_deleted(self, secret: Secret) -> bool:
        return secret.deletion_done_at is not None and self.clock.now() < secret.deletion_done_at

    def set(self, name: str, body: dict[str, Any]) -> Version:
        self._expire_purged()
        existing = self.secrets.get(name)
        if existing is not None and existing.deleted_at is not None:
            if self._being_deleted(existing):
                raise VaultError(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
            raise VaultError(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state, and its "
                             "name cannot be reused; in this state, the secret can only be recovered or purged.",
                             "ObjectIsDeletedButRecoverable")
        value = body.get("value")
        if not isinstance(value, str):
            raise VaultError(400, "BadParameter", "Property value is required.")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise VaultError(400, "BadParameter", "Secret value is too large.")
        attributes = body.get("attributes") or {}
        now = self.now()
        version = Version(secrets.token_hex(16), value, body.get("contentType"), attributes.get("enabled", True),
                          attributes.get("nbf"), attributes.get("exp"), now, now, body.get("tags"))
        self.secrets.setdefault(name, Secret(name)).versions.append(version)
        return version

    def version(self, name: str, version_id: str) -> Version:
        secret = self.live(name)
        if not version_id:
            return secret.versions[-1]
        found = next((v for v in secret.versions if v.id == version_id), None)
        if found is None:
            raise _not_found(name)
        return found

    def read(self, name: str, version_id: str) -> Version:
        version = self.version(name, version_id)
        if not version.enabled:
            raise VaultError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
        if self.switches.block_outside_validity:
            if version.exp is not None and version.exp <= self.now():
                raise VaultError(403, "Forbidden", "Operation get is not allowed on a expired secret.", "SecretExpired")
            if version.nbf is not None and version.nbf > self.now():
                raise VaultError(403, "Forbidden", "Operation get is not allowed on a not yet valid secret.",
                                 "SecretNotYetValid")
        return version

    def delete(self, name: str) -> Secret:
        secret = self.live(name)
        now = self.now()
        secret.deleted_at = now
        secret.purge_at = now + self.switches.retention_days * 86400
        secret.deletion_done_at = self.clock.now() + self.switches.delete_seconds
        return secret

    def recover(self, name: str) -> Secret:
        secret = self.deleted(name)
        secret.deleted_at = secret.purge_at = secret.deletion_done_at = None
        return secret

    def purge(self, name: str) -> None:
        self.deleted(name)
        del self.secrets[name]


# --- JSON shapes ---------------------------------------------------------------------------------


def _attributes(vault: Vault, version: Version) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": version.enabled, "created": version.created, "updated": version.updated,
                                  "recoveryLevel": "Recoverable+Purgeable",
                                  "recoverableDays": vault.switches.retention_days}
    if version.nbf is not None:
        attributes["nbf"] = version.nbf
    if version.exp is not None:
        attributes["exp"] = version.exp
    return attributes


def _item(vault: Vault, base: str, name: str, version: Version, *, versioned: bool,
          with_value: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"{base}/secrets/{name}" + (f"/{version.id}" if versioned else ""),
                            "attributes": _attributes(vault, version)}
    if with_value:
        body["value"] = version.value
    if version.content_type is not None:
        body["contentType"] = version.content_type
    if version.tags is not None:
        body["tags"] = version.tags
    return body


def _deleted_item(vault: Vault, base: str, secret: Secret, *, versioned: bool) -> dict[str, Any]:
    body = _item(vault, base, secret.name, secret.versions[-1], versioned=versioned)
    body.update({"recoveryId": f"{base}/deletedsecrets/{secret.name}", "deletedDate": secret.deleted_at,
                 "scheduledPurgeDate": secret.purge_at})
    return body


# --- the server ----------------------------------------------------------------------------------


def build_app(vault: Vault) -> web.Application:
    @web.middleware
    async def around(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = new_id()
        headers = {"x-ms-request-id": request_id, "x-ms-keyvault-service-version": "1.9.0.0"}
        if request.path.startswith("/_sim/"):
            return await handler(request)
        try:
            _authenticate(vault, request)
            if "api-version" not in request.query:
                raise VaultError(400, "BadParameter", "The request URI contains an invalid 'api-version' query "
                                 "parameter: the parameter is missing.")
            response = await handler(request)
        except VaultError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.inner:
                error["innererror"] = {"code": exc.inner}
            response = web.json_response({"error": error}, status=exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = (
                    f'Bearer authorization="https://login.microsoftonline.com/{vault.tenant_id}", '
                    f'resource="{RESOURCE}"')
        response.headers.update(headers)
        return response

    def locked(handler: Callable[[web.Request, Any], web.Response]) -> Handler:
        """Read the body first, then run the handler under the vault's lock with no await inside (a thread lock
        held across an await gives no mutual exclusion between the server's coroutines)."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.body_exists else None
            with vault.lock:
                return handler(request, body)
        return wrapped

    def base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def set_secret(request: web.Request, body: Any) -> web.Response:
        name = _name(request)
        version = vault.set(name, body)
        return web.json_response(_item(vault, base(request), name, version, versioned=True, with_value=True))

    def get_secret(request: web.Request, body: Any) -> web.Response:
        name = _name(request)
        version = vault.read(name, request.match_info.get("version", ""))
        return web.json_response(_item(vault, base(request), name, version, versioned=True, with_value=True))

    def update_secret(request: web.Request, body: Any) -> web.Response:
        name = _name(request)
        version = vault.version(name, request.match_info.get("version", ""))
        attributes = body.get("attributes") or {}
        for key in ("enabled", "nbf", "exp"):
            if key in attributes:
                setattr(version, key, attributes[key])
        if "contentType" in body:
            version.content_type = body["contentType"]
        if "tags" in body:
            version.tags = body["tags"]
        version.updated = vault.now()
        return web.json_response(_item(vault, base(request), name, version, versioned=True))

    def delete_secret(request: web.Request, body: Any) -> web.Response:
        secret = vault.delete(_name(request))
        return web.json_response(_deleted_item(vault, base(request), secret, versioned=True))

    def list_secrets(request: web.Request, body: Any) -> web.Response:
        vault._expire_purged()
        items = [_item(vault, base(request), s.name, s.versions[-1], versioned=False)
                 for s in sorted(vault.secrets.values(), key=lambda s: s.name) if s.deleted_at is None]
        return _page(request, items)

    def list_versions(request: web.Request, body: Any) -> web.Response:
        name = _name(request)
        secret = vault.live(name)
        return _page(request, [_item(vault, base(request), name, v, versioned=True) for v in secret.versions])

    def list_deleted(request: web.Request, body: Any) -> web.Response:
        vault._expire_purged()
        items = [_deleted_item(vault, base(request), s, versioned=False)
                 for s in sorted(vault.secrets.values(), key=lambda s: s.name)
                 if s.deleted_at is not None and not vault._being_deleted(s)]
        return _page(request, items)

    def get_deleted(request: web.Request, body: Any) -> web.Response:
        secret = vault.deleted(_name(request))
        return web.json_response(_deleted_item(vault, base(request), secret, versioned=True))

    def recover(request: web.Request, body: Any) -> web.Response:
        name = _name(request)
        secret = vault.recover(name)
        return web.json_response(_item(vault, base(request), name, secret.versions[-1], versioned=True))

    def purge(request: web.Request, body: Any) -> web.Response:
        vault.purge(_name(request))
        return web.Response(status=204)

    async def control_reset(request: web.Request) -> web.Response:
        vault.reset()
        return web.json_response({"status": "reset"})

    async def control_advance(request: web.Request) -> web.Response:
        body = await request.json()
        with vault.lock:
            vault.clock.advance(float(body["seconds"]))
        return web.json_response({"now": vault.clock.now()})

    async def control_switches(request: web.Request) -> web.Response:
        body = await request.json()
        with vault.lock:
            vault.switches = dataclasses.replace(vault.switches, **body)
            return web.json_response(dataclasses.asdict(vault.switches))

    async def control_dump(request: web.Request) -> web.Response:
        # Every stored value, for the product's leak scan.
        with vault.lock:
            return web.json_response({"secrets": {n: [v.value for v in s.versions] for n, s in vault.secrets.items()}})

    app = web.Application(middlewares=[around])
    app.add_routes([
        web.get("/secrets", locked(list_secrets)),
        web.put("/secrets/{name}", locked(set_secret)),
        web.delete("/secrets/{name}", locked(delete_secret)),
        web.get("/secrets/{name}/versions", locked(list_versions)),
        web.get("/secrets/{name}", locked(get_secret)),
        web.get("/secrets/{name}/", locked(get_secret)),  # the client asks for the latest with a trailing slash
        web.get("/secrets/{name}/{version}", locked(get_secret)),
        web.patch("/secrets/{name}/", locked(update_secret)),
        web.patch("/secrets/{name}/{version}", locked(update_secret)),
        web.get("/deletedsecrets", locked(list_deleted)),
        web.get("/deletedsecrets/{name}", locked(get_deleted)),
        web.delete("/deletedsecrets/{name}", locked(purge)),
        web.post("/deletedsecrets/{name}/recover", locked(recover)),
        web.post("/_sim/reset", control_reset),
        web.post("/_sim/clock/advance", control_advance),
        web.patch("/_sim/switches", control_switches),
        web.get("/_sim/secrets", control_dump),
    ])
    return app


def _authenticate(vault: Vault, request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        # The client's first request carries no token and no body; this challenge tells it the tenant and resource.
        raise VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
    if not any(secrets.compare_digest(token.encode(), t.encode()) for t in vault.accepted_tokens):
        raise VaultError(401, "Unauthorized", "AKV10022: Invalid token.")


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not NAME.match(name):
        raise VaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")
    return name


def _page(request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    try:
        size = min(int(request.query.get("maxresults", PAGE_SIZE)), PAGE_SIZE)
        start = int(request.query.get("$skiptoken", "0"))
    except ValueError:
        raise VaultError(400, "BadParameter", "maxresults and $skiptoken must be numbers.") from None
    page = items[start:start + size]
    next_link = None
    if start + size < len(items):
        query = {**request.query, "$skiptoken": str(start + size)}
        next_link = str(request.url.with_query(query))
    return web.json_response({"value": page, "nextLink": next_link})


@dataclass
class KeyVaultServer:
    """The dev server on 127.0.0.1. ``port`` 0 picks a free port (tests)."""

    vault: Vault
    port: int = DEFAULT_PORT
    certs: CertPaths = field(default_factory=ensure_certs)
    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "Key Vault dev server not started"
        return self.server.url

    def start(self) -> KeyVaultServer:
        self.server = ServerThread(build_app(self.vault), self.certs, self.port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
