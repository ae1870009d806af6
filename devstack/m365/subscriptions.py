"""Graph subscriptions: POST/GET/PATCH/DELETE /v1.0/subscriptions and POST /v1.0/subscriptions/{id}/reauthorize,
for Outlook event resources, with the validation handshake on both URLs; plus the control routes that fire
changes and lifecycle events and shape delivery.

Sources: Outlook change notifications overview,
https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview;
subscription resource type, https://learn.microsoft.com/en-us/graph/api/resources/subscription; Create subscription,
https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions; Update subscription,
https://learn.microsoft.com/en-us/graph/api/subscription-update;
Receive change notifications through webhooks,
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks;
Reduce missing subscriptions and change notifications,
https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events.

Handlers never hold the state lock across an await: the handshake calls out to a webhook that may itself
read the simulator.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from devstack.m365.graph import (
    Caller,
    GraphAuth,
    GraphError,
    async_route,
    mailbox_not_enabled,
    odata_json,
    read_body,
)
from devstack.m365.notifications import LIFECYCLE_EVENTS, Notifier, graph_time, parse_graph_time, pending
from devstack.m365.state import SimState, Subscription, User, new_id

Handler = Callable[[web.Request], Awaitable[web.Response]]

CHANGE_TYPES = ("created", "updated", "deleted")
# Outlook change notifications overview, https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview
SUBSCRIBE_SCOPES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
SUBSCRIBE_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
CLIENT_STATE_MAX = 128  # subscription resource type, https://learn.microsoft.com/en-us/graph/api/resources/subscription
PATCHABLE = frozenset({"expirationDateTime", "notificationUrl"})  # subscription-update
_RESOURCE = re.compile(r"^/?(?:me|users/(?P<user>[^/]+))(?:/calendars/(?P<calendar>[^/]+))?/events$", re.IGNORECASE)
VALIDATION_FAILED = ("Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                     "validation request.")


def _bad(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _extension_error(status: int, operation: str, reason: str) -> GraphError:
    # Graph wraps Outlook subscription failures in ExtensionError (Outlook change notifications overview,
    # https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview quotes one).
    label = {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}[status]
    return GraphError(status, "ExtensionError",
                      f"Operation: {operation}; Exception: [Status Code: {label}; Reason: {reason}]")


def _not_found(sub_id: str) -> GraphError:
    return GraphError(404, "ResourceNotFound", f"The object '{sub_id}' was not found.")  # wording assumed


class Subscriptions:
    def __init__(self, state: SimState, auth: GraphAuth, notifier: Notifier) -> None:
        self.state = state
        self.auth = auth
        self.notifier = notifier

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1.0/subscriptions", self._handle(self.create)),
            web.get("/v1.0/subscriptions", self._handle(self.list)),
            web.get("/v1.0/subscriptions/{id}", self._handle(self.get)),
            web.patch("/v1.0/subscriptions/{id}", self._handle(self.update)),
            web.delete("/v1.0/subscriptions/{id}", self._handle(self.delete)),
            web.post("/v1.0/subscriptions/{id}/reauthorize", self._handle(self.reauthorize)),
        ]

    def _handle(self, handler: Callable[[web.Request, Caller], Awaitable[web.Response]]) -> Handler:
        return async_route(self.state, self.auth, handler)

    # --- checks ----------------------------------------------------------------------------------

    def _check_permission(self, caller: Caller, operation: str) -> None:
        granted = caller.roles & SUBSCRIBE_ROLES if caller.app_only else caller.scopes & SUBSCRIBE_SCOPES
        if caller.user is not None:
            # A withdrawn consent stops renewals and reauthorization even with a live access token (assumed).
            granted = granted & self.state.consented_scopes(caller.client_id, caller.user)
        if not granted:
            raise _extension_error(403, operation, "Access is denied. Check credentials and try again.")

    def _check_url(self, url: Any, name: str) -> str:
        if not isinstance(url, str) or not url:
            raise _bad(f"'{name}' is required.")
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and loopback and self.state.switches.allow_http_loopback_urls:
            return url
        # Outlook change notifications overview,
        # https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview: both URLs must be https
        # (wording assumed).
        raise _bad(f"The {name} must be an https URL.")

    def _expiry(self, value: Any) -> float:
        """subscription resource type, https://learn.microsoft.com/en-us/graph/api/resources/subscription: at most
        subscription_max_minutes ahead (refused or clamped, per switch); anything
        under 45 minutes ahead becomes 45 minutes (subscription resource docs)."""
        if not isinstance(value, str):
            raise _bad("'expirationDateTime' is required.")
        try:
            wanted = parse_graph_time(value)
        except ValueError:
            raise _bad(f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.") from None
        s = self.state.switches
        now = self.state.clock.now()
        if wanted > now + s.subscription_max_minutes * 60:
            if s.subscription_over_max == "clamp":
                return now + s.subscription_max_minutes * 60
            raise GraphError(400, "ExtensionError",
                             f"Subscription expiration can only be {s.subscription_max_minutes} minutes in the future.")
        return max(wanted, now + s.subscription_min_minutes * 60)

    def _mailbox(self, caller: Caller, resource: Any) -> tuple[User, str | None]:
        match = _RESOURCE.match(resource) if isinstance(resource, str) else None
        if match is None or (match["calendar"] and not self.state.switches.per_calendar_subscriptions):
            raise _extension_error(400, "Create", f"The value '{resource}' of parameter 'Resource' is not supported.")
        if match["user"] is None:
            if caller.user is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            user: User | None = caller.user
        else:
            user = self.state.find_user(match["user"], caller.tenant_id)
        if user is None or user.deleted:
            raise _extension_error(404, "Create", "The specified object was not found in the store.")
        if user.mailbox != "enabled":
            raise mailbox_not_enabled()
        if caller.user is not None and caller.user.id != user.id:
            # assumed: a delegated subscription watches the signed-in user's own mailbox only
            raise _extension_error(403, "Create", "Access is denied. Check credentials and try again.")
        calendar = match["calendar"]
        if calendar is not None and calendar not in {c.id for c in self.state.calendars_of(user.id)}:
            raise _extension_error(404, "Create", "The specified object was not found in the store.")
        return user, calendar

    @staticmethod
    def _visible(caller: Caller, sub: Subscription) -> bool:
        """The app's subscriptions in the tenant; for a delegated token only the signed-in user's."""
        return sub.client_id == caller.client_id and sub.tenant_id == caller.tenant_id and \
            (caller.user is None or sub.creator_id == caller.user.id)

    def _owned(self, caller: Caller, sub_id: str) -> Subscription:
        sub = self.state.subscriptions.get(sub_id)
        if sub is None or not self._visible(caller, sub):
            raise _not_found(sub_id)
        return sub

    async def _validate(self, *urls: str | None) -> None:
        # Receive change notifications through webhooks,
        # https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks: both URLs, two requests when
        # they are the same
        for url in urls:
            if url is not None and not await self.notifier.validate(url):
                self.state.notification_counts["validations_failed"] += 1
                raise _bad(VALIDATION_FAILED)
            if url is not None:
                self.state.notification_counts["validations_passed"] += 1

    # --- routes ----------------------------------------------------------------------------------

    async def create(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_body(request)
        change_types = [c.strip() for c in str(body.get("changeType") or "").split(",") if c.strip()]
        if not change_types or any(c not in CHANGE_TYPES for c in change_types):
            raise _bad(f"'{body.get('changeType')}' is not a valid changeType: use created, updated, deleted or a "
                       "comma-separated list of them.")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > CLIENT_STATE_MAX):
            raise _bad(f"clientState may hold at most {CLIENT_STATE_MAX} characters.")
        notification_url = self._check_url(body.get("notificationUrl"), "notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = self._check_url(lifecycle_url, "lifecycleNotificationUrl")
        if body.get("includeResourceData"):
            raise _bad("Rich notifications (includeResourceData) are not simulated.")
        with self.state.lock:
            user, calendar = self._mailbox(caller, body.get("resource"))
            self._check_permission(caller, "Create")
            expires_at = self._expiry(body.get("expirationDateTime"))
            self._check_quota(user)
        await self._validate(notification_url, lifecycle_url)
        prefer = request.headers.get("Prefer", "")
        immutable = re.search(r'IdType\s*=\s*"?ImmutableId"?', prefer, re.IGNORECASE) is not None
        with self.state.lock:
            self._check_quota(user)
            sub = Subscription(
                id=new_id(), resource=body["resource"], mailbox_id=user.id, calendar_id=calendar,
                change_types=change_types, notification_url=notification_url, lifecycle_url=lifecycle_url,
                client_state=client_state, expires_at=expires_at, client_id=caller.client_id,
                tenant_id=caller.tenant_id, creator_id=caller.user.id if caller.user else self._principal(caller),
                delegated=caller.user is not None, id_type="ImmutableId" if immutable else "RestId",
                authorized_until=caller.expires_at)
            self.state.subscriptions[sub.id] = sub
            response = self._json(request, sub, status=201)
        if immutable:
            response.headers["Preference-Applied"] = 'IdType="ImmutableId"'  # assumed echo
        return response

    def _check_quota(self, user: User) -> None:
        limit = self.state.switches.subscriptions_per_mailbox
        if sum(1 for s in self.state.subscriptions.values() if s.mailbox_id == user.id) >= limit:
            # Outlook change notifications overview,
            # https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview: 403 with the reason in
            # the message (wording assumed)
            raise _extension_error(403, "Create", f"The mailbox has reached its limit of {limit} subscriptions.")

    def _principal(self, caller: Caller) -> str:
        # subscription resource type (https://learn.microsoft.com/en-us/graph/api/resources/subscription): under
        # application permissions creatorId is the id of the app's service principal, the app token's oid.
        return caller.object_id

    async def list(self, request: web.Request, caller: Caller) -> web.Response:
        with self.state.lock:
            mine = [s for s in self.state.subscriptions.values() if self._visible(caller, s)]
            return odata_json(request, "subscriptions", {"value": [subscription_json(s) for s in mine]})

    async def get(self, request: web.Request, caller: Caller) -> web.Response:
        with self.state.lock:
            return self._json(request, self._owned(caller, request.match_info["id"]))

    async def update(self, request: web.Request, caller: Caller) -> web.Response:
        body = await read_body(request)
        extra = set(body) - PATCHABLE - {"@odata.type"}
        if extra:
            # subscription-update: only expirationDateTime and notificationUrl change (status assumed)
            raise _bad(f"Only expirationDateTime and notificationUrl can be updated, not {sorted(extra)}.")
        with self.state.lock:
            sub = self._owned(caller, request.match_info["id"])
            self._check_permission(caller, "Update")
            expires_at = self._expiry(body["expirationDateTime"]) if "expirationDateTime" in body \
                else sub.expires_at
            url = self._check_url(body["notificationUrl"], "notificationUrl") if "notificationUrl" in body else None
        if url is not None and url != sub.notification_url:
            await self._validate(url)
        with self.state.lock:
            sub = self._owned(caller, request.match_info["id"])
            sub.expires_at = expires_at
            sub.notification_url = url or sub.notification_url
            # renewing also reauthorizes (Reduce missing subscriptions and change notifications,
            # https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events)
            self._reauthorized(sub, caller)
            return self._json(request, sub)

    async def delete(self, request: web.Request, caller: Caller) -> web.Response:
        with self.state.lock:
            sub = self._owned(caller, request.match_info["id"])
            del self.state.subscriptions[sub.id]
        return web.Response(status=204)

    async def reauthorize(self, request: web.Request, caller: Caller) -> web.Response:
        with self.state.lock:
            sub = self._owned(caller, request.match_info["id"])
            self._check_permission(caller, "Reauthorize")
            self._reauthorized(sub, caller)
        return web.Response(status=204)  # subscription-reauthorize: 204, no new expiry

    def _reauthorized(self, sub: Subscription, caller: Caller) -> None:
        sub.authorized_until = caller.expires_at
        sub.reauthorization_sent_at = None
        sub.paused = False

    def _json(self, request: web.Request, sub: Subscription, status: int = 200) -> web.Response:
        return odata_json(request, "subscriptions/$entity", subscription_json(sub), status)

    # --- part 1's control actions (Reduce missing subscriptions and change notifications,
    # https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events)
    # ---------------------------------------------

    def after_user_action(self, action: str, user: User, body: dict[str, Any]) -> None:
        """Lifecycle events that the directory changes of the control API cause."""
        delegated = [s for s in self.state.subscriptions.values() if s.delegated and s.mailbox_id == user.id]
        if action in ("revoke-sessions", "withdraw-consent"):
            # Permission revoked: reauthorizationRequired, and notifications pause until reauthorized.
            client = body.get("clientId") if action == "withdraw-consent" else None
            for sub in delegated:
                if client in (None, sub.client_id):
                    self.notifier.fire_lifecycle(sub, "reauthorizationRequired")
                    sub.reauthorization_sent_at = self.state.clock.now()
                    sub.paused = True
        elif action in ("reset-password", "delete"):
            # Outlook removes delegated subscriptions on a password change or reset or a disabled account;
            # app-only ones stay (Reduce missing subscriptions and change notifications,
            # https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events).
            for sub in delegated:
                self.remove(sub, "subscriptionRemoved")

    def remove(self, sub: Subscription, lifecycle: str | None) -> None:
        if lifecycle is not None:
            self.notifier.fire_lifecycle(sub, lifecycle)
        self.state.subscriptions.pop(sub.id, None)


def subscription_json(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id, "resource": sub.resource, "applicationId": sub.client_id,
        "changeType": ",".join(sub.change_types),
        "clientState": sub.client_state, "notificationUrl": sub.notification_url, "notificationQueryOptions": None,
        "lifecycleNotificationUrl": sub.lifecycle_url, "expirationDateTime": graph_time(sub.expires_at),
        "creatorId": sub.creator_id, "includeResourceData": None, "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": None, "encryptionCertificateId": None, "notificationUrlAppId": None,
    }


class SubscriptionControl:
    """/_sim/ routes for subscriptions and notifications (docs/devstack.md)."""

    def __init__(self, state: SimState, subscriptions: Subscriptions, notifier: Notifier) -> None:
        self.state = state
        self.subscriptions = subscriptions
        self.notifier = notifier

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sim/subscriptions", self.list),
            web.delete("/_sim/subscriptions/{id}", self.remove),
            web.post("/_sim/subscriptions/{id}/lifecycle", self.lifecycle),
            web.post("/_sim/notifications/change", self.change),
            web.post("/_sim/notifications/plan", self.plan),
            web.post("/_sim/notifications/flush", self.flush),
            web.get("/_sim/notifications", self.status),
        ]

    def _sub(self, request: web.Request) -> Subscription:
        sub = self.state.subscriptions.get(request.match_info["id"])
        if sub is None:
            raise web.HTTPNotFound(text="unknown subscription")
        return sub

    async def list(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response({"subscriptions": [
                {**subscription_json(s), "mailbox": s.mailbox_id, "calendar": s.calendar_id, "idType": s.id_type,
                 "delegated": s.delegated, "paused": s.paused, "authorizedUntil": s.authorized_until}
                for s in self.state.subscriptions.values()]})

    async def remove(self, request: web.Request) -> web.Response:
        """Remove a subscription; ``?lifecycle=subscriptionRemoved`` also tells its lifecycle URL."""
        with self.state.lock:
            self.subscriptions.remove(self._sub(request), request.query.get("lifecycle"))
        return web.json_response({"removed": request.match_info["id"]})

    async def lifecycle(self, request: web.Request) -> web.Response:
        """``{"event": reauthorizationRequired | subscriptionRemoved | missed, "pause": bool}``"""
        body = await request.json()
        event = body.get("event")
        if event not in LIFECYCLE_EVENTS:
            return web.json_response({"error": f"event must be one of {LIFECYCLE_EVENTS}"}, status=400)
        with self.state.lock:
            sub = self._sub(request)
            if event == "subscriptionRemoved":
                self.subscriptions.remove(sub, event)
                return web.json_response({"queued": sub.lifecycle_url is not None})
            queued = self.notifier.fire_lifecycle(sub, event)
            if event == "reauthorizationRequired":
                sub.reauthorization_sent_at = self.state.clock.now()
                sub.paused = sub.paused or bool(body.get("pause", False))
            return web.json_response({"queued": queued})

    async def change(self, request: web.Request) -> web.Response:
        """``{"user", "calendar"?, "event"?, "changeType", "etag"?}``: an event changed (until part 3's events)."""
        body = await request.json()
        if body.get("changeType") not in CHANGE_TYPES:
            return web.json_response({"error": f"changeType must be one of {CHANGE_TYPES}"}, status=400)
        user = self.state.find_user(str(body.get("user", "")))
        if user is None:
            raise web.HTTPNotFound(text="unknown user")
        event_id = body.get("event") or "AAMkAG" + new_id().replace("-", "")
        queued = self.notifier.fire_change(user.id, body.get("calendar"), event_id, body["changeType"],
                                           body.get("etag"))
        return web.json_response({"event": event_id, "queued": queued})

    async def plan(self, request: web.Request) -> web.Response:
        """``{"drop": n, "duplicate": n, "delaySeconds": s}``: drop or duplicate the next n change
        notifications; hold every new notification s simulated seconds."""
        body = await request.json()
        with self.state.lock:
            for name in ("drop", "duplicate"):
                if name in body:
                    self.state.notification_plans[name] = int(body[name])
            if "delaySeconds" in body:
                self.state.notification_delay_seconds = float(body["delaySeconds"])
            return web.json_response({**self.state.notification_plans,
                                      "delaySeconds": self.state.notification_delay_seconds})

    async def flush(self, request: web.Request) -> web.Response:
        """Deliver what is due now (waits at most ``seconds``, default 10); answers the counters."""
        body = await request.json() if request.can_read_body else {}
        still_due = await self.notifier.flush(float(body.get("seconds", 10)))
        return await self.status(request, still_due)

    async def status(self, request: web.Request, still_due: int = 0) -> web.Response:
        with self.state.lock:
            return web.json_response({
                "counts": dict(self.state.notification_counts), "due": still_due,
                "pending": list(pending(self.state)),
                "endpoints": {url: {"windowStart": e.window_start, "sent": e.sent, "slow": e.slow}
                              for url, e in self.state.endpoints.items()}})
