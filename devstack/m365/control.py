"""The control API under /_sim/ (JSON): seed the directory, inject the states users and admins cause
(expired, revoked or withdrawn grants, password resets, MFA and CAE challenges, disabled mailboxes,
deleted users, expired app secrets), move the clock, and read what the simulator issued and served.

Not part of any Microsoft service; tests and the local demo drive the simulator through it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.m365.state import Fault, SimState, Switches, User

ROOT = Path(__file__).resolve().parents[2]

# Fixed ids so the local demo's accounts survive a restart of the simulator.
DEMO_TENANT_ID = "5e3f1d2c-0000-4000-8000-00000000de30"
DEMO_REDIRECT_URI = "http://127.0.0.1:7071/api/oauth/callback"


def seed(state: SimState, spec: dict[str, Any]) -> dict[str, Any]:
    """Create what ``spec`` describes; returns the ids made. Shape: see docs/devstack.md."""
    created: dict[str, Any] = {"tenants": [], "users": [], "calendars": [], "apps": []}
    for t in spec.get("tenants", []):
        tenant = state.add_tenant(t["name"], t["domain"], t.get("id"))
        created["tenants"].append(tenant.id)
        for u in t.get("users", []):
            calendars = u.get("calendars")
            user = state.add_user(tenant.id, u["upn"], u["displayName"], user_id=u.get("id"),
                                  is_admin=u.get("isAdmin", False), with_calendar=calendars is None)
            user.mailbox = u.get("mailbox", "enabled")
            user.deleted = u.get("deleted", False)
            created["users"].append(user.id)
            for c in calendars or []:
                created["calendars"].append(state.add_calendar(user.id, c["name"], is_default=c.get("isDefault", False),
                                                               calendar_id=c.get("id")).id)
    for a in spec.get("apps", []):
        app = state.add_app(a["clientId"], a["name"], a["homeTenant"], a.get("redirectUris", []),
                            secret=a.get("secret"), secret_days=a.get("secretDays", 180),
                            public_client=a.get("publicClient", False), delegated=a.get("delegated"),
                            application=a.get("application"), certificates=a.get("certificates"))
        created["apps"].append(app.client_id)
    for s in spec.get("shares", []):
        state.share_calendar(s["calendar"], s["user"], s.get("role", "read"))
    return created


def demo_spec(client_id: str, client_secret: str) -> dict[str, Any]:
    """A demo tenant: two users with a few calendars, one calendar shared, and the product's app."""
    return {
        "tenants": [{
            "id": DEMO_TENANT_ID, "name": "Contoso (simulated)", "domain": "contoso.test",
            "users": [
                {"id": "a1b2c3d4-0000-4000-8000-0000000000a1", "upn": "adele@contoso.test",
                 "displayName": "Adele Vance", "isAdmin": True,
                 "calendars": [{"name": "Calendar", "isDefault": True, "id": "AAMkAdeleDefault"},
                               {"name": "Bookings", "id": "AAMkAdeleBookings"}]},
                {"id": "a1b2c3d4-0000-4000-8000-0000000000b2", "upn": "megan@contoso.test",
                 "displayName": "Megan Bowen",
                 "calendars": [{"name": "Calendar", "isDefault": True, "id": "AAMkMeganDefault"},
                               {"name": "Team", "id": "AAMkMeganTeam"}]},
            ]}],
        "apps": [{"clientId": client_id, "name": "Outlook calendar sync (local)", "homeTenant": DEMO_TENANT_ID,
                  "redirectUris": [DEMO_REDIRECT_URI], "secret": client_secret,
                  "delegated": ["Calendars.ReadWrite", "User.Read"], "application": ["Calendars.ReadWrite"]}],
        "shares": [{"calendar": "AAMkMeganTeam", "user": "a1b2c3d4-0000-4000-8000-0000000000a1", "role": "read"}],
    }


def product_app_credentials() -> tuple[str, str]:
    """CLIENT_ID and CLIENT_SECRET from local.settings.json if present, else the committed sample."""
    for name in ("local.settings.json", "local.settings.sample.json"):
        path = ROOT / name
        if path.exists():
            values = json.loads(path.read_text()).get("Values", {})
            if values.get("CLIENT_ID") and values.get("CLIENT_SECRET"):
                return values["CLIENT_ID"], values["CLIENT_SECRET"]
    raise RuntimeError("no CLIENT_ID/CLIENT_SECRET in local.settings(.sample).json")


def seed_demo(state: SimState) -> dict[str, Any]:
    return seed(state, demo_spec(*product_app_credentials()))


class Control:
    def __init__(self, state: SimState, on_reset: Callable[[], None] | None = None,
                 after_user_action: Callable[[str, User, dict[str, Any]], None] | None = None,
                 after_clock: Callable[[], Awaitable[object]] | None = None) -> None:
        self.state = state
        self.on_reset = on_reset
        self.after_user_action = after_user_action  # lifecycle events the directory change causes
        self.after_clock = after_clock  # expiries and deliveries now due

    def routes(self) -> list[web.RouteDef]:
        user_actions: dict[str, Callable[[User, dict[str, Any]], None]] = {
            "expire-refresh-tokens": self._expire_refresh_tokens,
            "revoke-sessions": self._revoke_sessions,
            "withdraw-consent": self._withdraw_consent,
            "reset-password": self._reset_password,
            "require-interaction": self._require_interaction,
            "claims-challenge": self._claims_challenge,
            "mailbox": self._set_mailbox,
            "delete": self._delete_user,
            "restore": self._restore_user,
        }
        return [
            web.get("/_sim/health", self.health),
            web.post("/_sim/reset", self.reset),
            web.post("/_sim/seed", self.seed),
            web.post("/_sim/seed/demo", self.seed_demo),
            web.get("/_sim/state", self.dump),
            web.post("/_sim/clock/advance", self.advance_clock),
            web.get("/_sim/clock", self.clock),
            web.patch("/_sim/switches", self.set_switches),
            web.post("/_sim/apps/{client}/expire-secrets", self.expire_app_secrets),
            web.post("/_sim/apps/{client}/secrets", self.add_app_secret),
            web.post("/_sim/apps/{client}/certificates", self.add_app_certificate),
            web.delete("/_sim/apps/{client}/certificates/{key}", self.remove_app_certificate),
            web.get("/_sim/issued", self.issued),
            web.get("/_sim/requests", self.requests),
            web.get("/_sim/counters", self.counters),
            web.post("/_sim/counters/reset", self.reset_counters),
            web.post("/_sim/faults", self.add_fault),
            web.delete("/_sim/faults", self.clear_faults),
            web.post("/_sim/throttling", self.set_throttling),
            *[web.post(f"/_sim/users/{{user}}/{name}", self._user_action(name, action))
              for name, action in user_actions.items()],
        ]

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        if self.on_reset:
            self.on_reset()
        return web.json_response({"status": "reset"})

    async def seed(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            with self.state.lock:
                created = seed(self.state, spec)
        except (KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad seed: {exc}"}, status=400)
        return web.json_response(created, status=201)

    async def seed_demo(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response(seed_demo(self.state), status=201)

    async def dump(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.Response(text=self.state.to_json(), content_type="application/json")

    async def advance_clock(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.state.lock:
            self.state.clock.advance(float(body["seconds"]))
        if self.after_clock is not None:
            await self.after_clock()
        return web.json_response({"now": self.state.clock.now(), "offset": self.state.clock.offset})

    async def clock(self, request: web.Request) -> web.Response:
        return web.json_response({"now": self.state.clock.now(), "offset": self.state.clock.offset})

    async def set_switches(self, request: web.Request) -> web.Response:
        body = await request.json()
        known = {f.name for f in dataclasses.fields(Switches)}
        unknown = set(body) - known
        if unknown:
            return web.json_response({"error": f"unknown switches: {sorted(unknown)}"}, status=400)
        with self.state.lock:
            for name, value in body.items():
                setattr(self.state.switches, name, value)
            return web.json_response(dataclasses.asdict(self.state.switches))

    async def expire_app_secrets(self, request: web.Request) -> web.Response:
        app = self.state.apps.get(request.match_info["client"])
        if app is None:
            raise web.HTTPNotFound(text="unknown app")
        with self.state.lock:
            for secret in app.secrets:
                secret.expires_at = min(secret.expires_at, self.state.clock.now() - 1)
        return web.json_response({"expired": len(app.secrets)})

    async def add_app_secret(self, request: web.Request) -> web.Response:
        app = self.state.apps.get(request.match_info["client"])
        if app is None:
            raise web.HTTPNotFound(text="unknown app")
        body = await request.json()
        with self.state.lock:
            created = self.state.add_app_secret(app, body["value"], float(body.get("days", 180)))
        return web.json_response({"keyId": created.key_id, "expiresAt": created.expires_at}, status=201)

    async def add_app_certificate(self, request: web.Request) -> web.Response:
        """Upload a certificate's public part to the app registration, as the portal's Certificates &
        secrets > Upload certificate does; body {"certificate": PEM}."""
        app = self.state.apps.get(request.match_info["client"])
        if app is None:
            raise web.HTTPNotFound(text="unknown app")
        body = await request.json()
        try:
            with self.state.lock:
                created = self.state.add_app_certificate(app, str(body["certificate"]))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="expected {\"certificate\": a PEM certificate}") from None
        return web.json_response({"keyId": created.key_id, "x5t#S256": created.x5t_s256,
                                  "endsAt": created.ends_at}, status=201)

    async def remove_app_certificate(self, request: web.Request) -> web.Response:
        app = self.state.apps.get(request.match_info["client"])
        if app is None:
            raise web.HTTPNotFound(text="unknown app")
        with self.state.lock:
            kept = [c for c in app.certificates if c.key_id != request.match_info["key"]]
            if len(kept) == len(app.certificates):
                raise web.HTTPNotFound(text="unknown key")
            app.certificates = kept
        return web.Response(status=204)

    async def issued(self, request: web.Request) -> web.Response:
        """Every token, code and client secret the simulator issued, for the product's leak scan."""
        with self.state.lock:
            return web.json_response({"issued": [dataclasses.asdict(i) for i in self.state.issued]})

    async def requests(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response({"requests": [dataclasses.asdict(r) for r in self.state.requests]})

    async def counters(self, request: web.Request) -> web.Response:
        with self.state.lock:
            per_mailbox: dict[str, Counter[str]] = {}
            for entry in self.state.requests:
                if entry.mailbox:
                    per_mailbox.setdefault(entry.mailbox, Counter())[entry.route] += 1
            return web.json_response({"routes": dict(self.state.route_counts),
                                      "mailboxes": dict(self.state.mailbox_counts),
                                      "mailboxRoutes": {m: dict(c) for m, c in per_mailbox.items()},
                                      "throttled": dict(self.state.throttle_counts),
                                      "notifications": dict(self.state.notification_counts),
                                      "invitations": dict(self.state.invitations),
                                      "peakConcurrency": dict(self.state.peak_concurrency),
                                      "batches": dict(self.state.batch_counts),
                                      "endpoints": {m: {e: dict(c) for e, c in per.items()}
                                                    for m, per in self.state.endpoint_counts.items()}})

    async def reset_counters(self, request: web.Request) -> web.Response:
        with self.state.lock:
            self.state.reset_counters()
        return web.json_response({"status": "reset"})

    async def add_fault(self, request: web.Request) -> web.Response:
        """``{"path": glob, "status": 429|500|503|504|"timeout"|"delay"|"close"|"hidden"|"empty", "count": n, "method"?
        (or "writes"), "retryAfter"?, "seconds"?, "after"?, "reads"?, "skip"?}``: after ``skip`` matching requests
        served normally, the next n fail (or hang, are held, then served, lose their connection, or are answered
        with no items), before or ``after`` being served."""
        body = await request.json()
        status = body.get("status")
        statuses = (429, 500, 503, 504, "timeout", "delay", "close", "hidden", "empty")
        if status not in statuses or "path" not in body or (status == "delay" and body.get("after")):
            return web.json_response({"error": "need path and status 429, 500, 503, 504, timeout, delay, close, "
                                      "empty or hidden (delay only before the request is served)"}, status=400)
        fault = Fault(path=body["path"], status=status, count=int(body.get("count", 1)), method=body.get("method"),
                      retry_after=body.get("retryAfter"), hold_seconds=float(body.get("seconds", 30)),
                      after=bool(body.get("after")) or status in ("hidden", "empty"), reads=int(body.get("reads", 1)),
                      skip=int(body.get("skip", 0)))
        with self.state.lock:
            self.state.faults.append(fault)
        return web.json_response(dataclasses.asdict(fault), status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        with self.state.lock:
            self.state.faults.clear()
        return web.json_response({"faults": []})

    async def set_throttling(self, request: web.Request) -> web.Response:
        """``{"requests", "writes", "windowSeconds", "concurrency"}``: budgets per app and mailbox; usage so far
        is forgotten."""
        body = await request.json()
        names = {"requests": "throttle_requests", "writes": "throttle_writes",
                 "windowSeconds": "throttle_window_seconds", "concurrency": "throttle_concurrency"}
        unknown = set(body) - set(names)
        if unknown:
            return web.json_response({"error": f"unknown budgets: {sorted(unknown)}"}, status=400)
        with self.state.lock:
            for name, value in body.items():
                setattr(self.state.switches, names[name], value)
            self.state.request_times.clear()
            return web.json_response({name: getattr(self.state.switches, attr) for name, attr in names.items()})

    # --- per-user states ---------------------------------------------------------------------

    def _user_action(self, name: str, action: Callable[[User, dict[str, Any]], None]) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            user = self.state.find_user(request.match_info["user"])
            if user is None:
                raise web.HTTPNotFound(text="unknown user")
            body = await request.json() if request.can_read_body else {}
            with self.state.lock:
                action(user, body)
                if self.after_user_action is not None:
                    self.after_user_action(name, user, body)
                return web.json_response(dataclasses.asdict(user))
        return handler

    def _expire_refresh_tokens(self, user: User, body: dict[str, Any]) -> None:
        for token in self.state.refresh_tokens.values():
            if token.user_id == user.id:
                token.expired = True

    def _revoke_sessions(self, user: User, body: dict[str, Any]) -> None:
        # revokeSignInSessions: every refresh token issued before now stops working, and (a CAE critical
        # event) so do the access tokens.
        user.tokens_valid_from = self.state.clock.now() + 0.001
        self._claims_challenge(user, body)

    def _withdraw_consent(self, user: User, body: dict[str, Any]) -> None:
        client_id = body.get("clientId")
        for key in [k for k, g in self.state.grants.items()
                    if g.user_id == user.id and client_id in (None, g.client_id)]:
            del self.state.grants[key]

    def _reset_password(self, user: User, body: dict[str, Any]) -> None:
        # Public clients' refresh tokens die; access tokens get a CAE challenge (a critical event).
        user.password_changed_at = self.state.clock.now() + 0.001
        self._claims_challenge(user, body)

    def _require_interaction(self, user: User, body: dict[str, Any]) -> None:
        user.require_interaction = bool(body.get("required", True))

    def _claims_challenge(self, user: User, body: dict[str, Any]) -> None:
        # Access tokens issued so far get a CAE claims challenge on their next Graph request.
        user.cae_min_token_seq = self.state.token_seq + 1

    def _set_mailbox(self, user: User, body: dict[str, Any]) -> None:
        if body.get("state") not in ("enabled", "notEnabledForRestApi"):
            raise web.HTTPBadRequest(text="state must be enabled or notEnabledForRestApi")
        user.mailbox = body["state"]

    def _delete_user(self, user: User, body: dict[str, Any]) -> None:
        user.deleted = True

    def _restore_user(self, user: User, body: dict[str, Any]) -> None:
        user.deleted = False
