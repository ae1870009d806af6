"""Microsoft Graph v1.0 basics: /me, /users/{id}, calendars and calendarPermissions, behind bearer-token
checks (signature, audience, expiry, scopes or roles, continuous access evaluation).

Error bodies follow Graph's shape ``{"error": {"code", "message", "innerError": {...}}}``; request ids are
added by the server's middleware. subscriptions.py (and part 3's events.py) are further route tables that
reuse ``GraphAuth`` and ``GraphError``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from devstack.m365.identity import Signer
from devstack.m365.state import GRAPH_APP_ID, GRAPH_RESOURCE, Calendar, SimState, User
from devstack.serving import CLIENT_REQUEST_ID, MAILBOX, REQUEST_ID

Handler = Callable[[web.Request], Awaitable[web.Response]]

CALENDAR_SCOPES_OWN = frozenset({"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite",
                                 "Calendars.Read.Shared", "Calendars.ReadWrite.Shared"})
CALENDAR_SCOPES_SHARED = frozenset({"Calendars.Read.Shared", "Calendars.ReadWrite.Shared"})
CALENDAR_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic.All"})
USER_SCOPES_SELF = frozenset({"User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All"})
USER_SCOPES_OTHERS = frozenset({"User.ReadBasic.All", "User.Read.All"})
USER_ROLES = frozenset({"User.Read.All", "User.ReadBasic.All"})
SHARE_ROLES_READ = frozenset({"read", "write", "delegateWithoutPrivateEventAccess", "delegateWithPrivateEventAccess"})
SHARE_ROLES_WRITE = frozenset({"write", "delegateWithoutPrivateEventAccess", "delegateWithPrivateEventAccess"})


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def mailbox_not_enabled() -> GraphError:
    return GraphError(404, "MailboxNotEnabledForRESTAPI",
                      "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")


def access_denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


@dataclass
class Caller:
    tenant_id: str
    client_id: str
    user: User | None  # None for app-only tokens
    scopes: frozenset[str]
    roles: frozenset[str]
    expires_at: float = 0.0  # the access token's exp
    object_id: str = ""  # the token's oid: the user, or the app's service principal in the tenant

    @property
    def app_only(self) -> bool:
        return self.user is None


CALLER = web.RequestKey("caller", Caller)


class GraphAuth:
    """Checks the bearer token of a Graph request the way Graph does, with the simulated clock."""

    def __init__(self, state: SimState, signer: Signer) -> None:
        self.state = state
        self.signer = signer

    def challenge(self, request: web.Request, **extra: str) -> dict[str, str]:
        origin = f"{request.scheme}://{request.host}"
        parts = {"realm": "", "authorization_uri": f"{origin}/common/oauth2/authorize", "client_id": GRAPH_APP_ID}
        parts.update(extra)
        return {"WWW-Authenticate": "Bearer " + ", ".join(f'{k}="{v}"' for k, v in parts.items())}

    def authenticate(self, request: web.Request) -> Caller:
        """The request's caller; checked once per request (the throttling middleware asks first)."""
        caller = request.get(CALLER)
        if caller is None:
            caller = request[CALLER] = self._authenticate(request)
        return caller

    def _authenticate(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", self.challenge(request))
        try:
            claims = self.signer.verify(token.strip(), [GRAPH_RESOURCE, GRAPH_APP_ID])
        except jwt.InvalidAudienceError:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.",
                             self.challenge(request)) from None
        except jwt.DecodeError:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.",
                             self.challenge(request)) from None
        except jwt.InvalidTokenError:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.",
                             self.challenge(request)) from None
        now = self.state.clock.now()
        if claims.get("exp", 0) <= now:
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                             self.challenge(request))
        if claims.get("nbf", 0) > now + 300:
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is not yet "
                             "valid.", self.challenge(request))
        user = self.state.users.get(claims.get("oid", "")) if claims.get("idtyp") == "user" else None
        if claims.get("idtyp") == "user":
            if user is None:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.",
                                 self.challenge(request))
            record = self.state.access_tokens.get(claims.get("uti", ""))
            if user.deleted or (record is not None and record.seq < user.cae_min_token_seq):
                # Continuous access evaluation: a critical event (the user deleted, sessions revoked, a claims
                # challenge asked for) rejects tokens issued before it.
                claims_json = json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(now))}}})
                raise GraphError(401, "InvalidAuthenticationToken",
                                 "Continuous access evaluation resulted in challenge with result: InteractionRequired "
                                 "and code: TokenIssuedBeforeRevocationTimestamp",
                                 self.challenge(request, error="insufficient_claims",
                                                claims=base64.b64encode(claims_json.encode()).decode()))
        return Caller(tenant_id=claims.get("tid", ""), client_id=claims.get("appid", ""), user=user,
                      scopes=frozenset(claims.get("scp", "").split()), roles=frozenset(claims.get("roles", [])),
                      expires_at=float(claims.get("exp", 0)), object_id=str(claims.get("oid", "")))


class Graph:
    def __init__(self, state: SimState, auth: GraphAuth) -> None:
        self.state = state
        self.auth = auth

    def routes(self) -> list[web.RouteDef]:
        table: list[web.RouteDef] = []
        for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
            table += [
                web.get(prefix, self._handle(self.get_user)),
                web.get(prefix + "/calendars", self._handle(self.list_calendars)),
                web.get(prefix + "/calendar", self._handle(self.get_default_calendar)),
                web.get(prefix + "/calendars/{calendar}", self._handle(self.get_calendar)),
                web.get(prefix + "/calendar/calendarPermissions", self._handle(self.list_permissions)),
                web.get(prefix + "/calendars/{calendar}/calendarPermissions", self._handle(self.list_permissions)),
            ]
        return table

    def _handle(self, handler: Callable[[web.Request, Caller], web.Response]) -> Handler:
        """Route a synchronous handler: it runs under the state lock, which is a thread lock (tests read the
        state from their own thread) and so must never be held across an await."""
        async def locked(request: web.Request, caller: Caller) -> web.Response:
            with self.state.lock:
                return handler(request, caller)
        return async_route(self.state, self.auth, locked)

    # --- users -------------------------------------------------------------------------------

    def _target_user(self, request: web.Request, caller: Caller) -> User:
        key = request.match_info.get("user")
        if key is None:  # /me
            if caller.user is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            return caller.user
        user = self.state.find_user(key, caller.tenant_id)
        if user is None or user.deleted:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its "
                             "queried reference-property objects are not present.")
        return user

    def get_user(self, request: web.Request, caller: Caller) -> web.Response:
        user = self._target_user(request, caller)
        if caller.user is None:
            allowed = bool(caller.roles & USER_ROLES)
        else:
            allowed = bool(caller.scopes & (USER_SCOPES_SELF if user.id == caller.user.id else USER_SCOPES_OTHERS))
        if not allowed:
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        return odata_json(request, "users/$entity", user_json(user))

    # --- mailbox -----------------------------------------------------------------------------

    def mailbox_owner(self, request: web.Request, caller: Caller) -> User:
        key = request.match_info.get("user")
        if key is None:
            if caller.user is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            owner = caller.user
        else:
            found = self.state.find_user(key, caller.tenant_id)
            if found is None or found.deleted:
                raise GraphError(404, self.state.switches.deleted_user_mailbox_code,
                                 "The specified object was not found in the store.")
            owner = found
        request[MAILBOX] = owner.id
        if owner.mailbox != "enabled":
            raise mailbox_not_enabled()
        return owner

    def visible_calendars(self, caller: Caller, owner: User) -> list[tuple[Calendar, bool]]:
        """The owner's calendars the caller may see, each with canEdit (Get shared or delegated Outlook calendar and
        its events, https://learn.microsoft.com/en-us/graph/outlook-get-shared-events-calendars)."""
        owned = self.state.calendars_of(owner.id)
        if caller.user is None:
            if not caller.roles & CALENDAR_ROLES:
                raise access_denied()
            return [(c, True) for c in owned]
        if caller.user.id == owner.id:
            if not caller.scopes & CALENDAR_SCOPES_OWN:
                raise access_denied()
            return [(c, True) for c in owned]
        # Another user's mailbox: only what was shared with the caller, through the .Shared scopes.
        if not caller.scopes & CALENDAR_SCOPES_SHARED:
            raise access_denied()
        visible = []
        for calendar in owned:
            role = _role_of(calendar, caller.user)
            if role in SHARE_ROLES_READ:
                can_edit = role in SHARE_ROLES_WRITE and "Calendars.ReadWrite.Shared" in caller.scopes
                visible.append((calendar, can_edit))
        if not visible:
            raise access_denied()
        return visible

    def _one_calendar(self, request: web.Request, caller: Caller) -> tuple[User, Calendar, bool]:
        owner = self.mailbox_owner(request, caller)
        visible = self.visible_calendars(caller, owner)
        wanted = request.match_info.get("calendar")
        for calendar, can_edit in visible:
            if (wanted is None and calendar.is_default) or calendar.id == wanted:
                return owner, calendar, can_edit
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def list_calendars(self, request: web.Request, caller: Caller) -> web.Response:
        owner = self.mailbox_owner(request, caller)
        visible = self.visible_calendars(caller, owner)
        return odata_json(request, f"users('{owner.id}')/calendars",
                          {"value": [calendar_json(c, owner, e, caller) for c, e in visible]})

    def get_calendar(self, request: web.Request, caller: Caller) -> web.Response:
        owner, calendar, can_edit = self._one_calendar(request, caller)
        body = calendar_json(calendar, owner, can_edit, caller)
        return odata_json(request, f"users('{owner.id}')/calendars/$entity", body)

    def get_default_calendar(self, request: web.Request, caller: Caller) -> web.Response:
        return self.get_calendar(request, caller)

    def list_permissions(self, request: web.Request, caller: Caller) -> web.Response:
        owner, calendar, _ = self._one_calendar(request, caller)
        # Only the owner (or an app) sees the permissions; a sharee or delegate gets an empty collection.
        is_owner = caller.user is None or caller.user.id == owner.id
        values = [permission_json(p) for p in calendar.permissions] if is_owner else []
        return odata_json(request, f"users('{owner.id}')/calendars('{calendar.id}')/calendarPermissions",
                          {"value": values})


# --- JSON shapes ---------------------------------------------------------------------------------


def _role_of(calendar: Calendar, user: User) -> str | None:
    return next((p.role for p in calendar.permissions if p.address.lower() == user.upn.lower()), None)


def user_json(user: User) -> dict[str, Any]:
    given, _, surname = user.display_name.partition(" ")
    return {"businessPhones": [], "displayName": user.display_name, "givenName": given or None,
            "jobTitle": None, "mail": user.upn, "mobilePhone": None, "officeLocation": None,
            "preferredLanguage": "en-US", "surname": surname or None, "userPrincipalName": user.upn, "id": user.id}


def calendar_json(calendar: Calendar, owner: User, can_edit: bool, caller: Caller) -> dict[str, Any]:
    is_owner = caller.user is None or caller.user.id == owner.id
    private = is_owner or (caller.user is not None
                           and _role_of(calendar, caller.user) == "delegateWithPrivateEventAccess")
    return {
        "id": calendar.id, "name": calendar.name, "color": calendar.color, "hexColor": calendar.hex_color,
        "isDefaultCalendar": calendar.is_default, "changeKey": calendar.change_key, "canShare": is_owner,
        "canViewPrivateItems": private, "canEdit": can_edit,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"], "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True, "isRemovable": not calendar.is_default,
        "owner": {"name": owner.display_name, "address": owner.upn},
    }


def permission_json(permission: Any) -> dict[str, Any]:
    email: dict[str, str] = {"name": permission.name}
    if permission.address:
        email["address"] = permission.address
    return {"id": permission.id, "isRemovable": permission.is_removable,
            "isInsideOrganization": permission.is_inside_organization, "role": permission.role,
            "allowedRoles": permission.allowed_roles, "emailAddress": email}


def odata_json(request: web.Request, context: str, body: dict[str, Any], status: int = 200) -> web.Response:
    """A Graph JSON answer with its ``@odata.context``."""
    origin = f"{request.scheme}://{request.host}"
    return web.json_response({"@odata.context": f"{origin}/v1.0/$metadata#{context}", **body}, status=status)


def async_route(state: SimState, auth: GraphAuth,
                handler: Callable[[web.Request, Caller], Awaitable[web.Response]]) -> Handler:
    """Route a handler that awaits (it must not hold the state lock across its awaits), answering GraphError in
    Graph's shape."""
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request, auth.authenticate(request))
        except GraphError as exc:
            return graph_error_response(request, state, exc)
    return wrapped


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or Graph's 400 for anything else."""
    try:
        body = await request.json()
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


def graph_error_response(request: web.Request, state: SimState, exc: GraphError) -> web.Response:
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(state.clock.now())),
             "request-id": request.get(REQUEST_ID, ""), "client-request-id": request.get(CLIENT_REQUEST_ID, "")}
    body = {"error": {"code": exc.code, "message": exc.message, "innerError": inner}}
    return web.json_response(body, status=exc.status, headers=exc.headers)
