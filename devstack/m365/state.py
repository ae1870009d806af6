"""The simulator's state: directory (tenants, users, apps), consent grants, issued codes and tokens,
mailboxes and calendars, fault switches, the request log. In memory, optionally saved to a JSON file.

Every time comes from ``Clock``, which a control call can move forward, so expiry tests need no waiting.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.m365.eventstore import Event, EventStore

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})

# Graph permissions the simulator knows (Microsoft Graph permissions reference,
# https://learn.microsoft.com/en-us/graph/permissions-reference).
DELEGATED_SCOPES = frozenset({
    "User.Read", "User.ReadBasic.All", "User.Read.All",
    "Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite",
    "Calendars.Read.Shared", "Calendars.ReadWrite.Shared", "MailboxSettings.Read",
})
APPLICATION_ROLES = frozenset({"User.Read.All", "Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic.All"})


class Clock:
    """Wall time plus an offset that ``advance`` moves; seconds since the epoch."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Switches:
    """Behaviour the docs do not pin down. Each is marked: documented, or assumed (our choice)."""

    access_token_seconds: int = 3600  # assumed: Entra varies 60-90 minutes; a fixed hour is predictable
    code_seconds: int = 600  # documented: codes are short-lived, "about 10 minutes"
    # assumed: how far a client assertion's nbf/exp may miss the simulator's clock (Entra does not say)
    assertion_clock_skew_seconds: int = 300
    # documented (Refresh tokens in the Microsoft identity platform,
    # https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens)
    refresh_inactivity_days: int = 90
    # assumed: the error of a mailbox call for a user who was deleted (field reports also show ErrorInvalidUser)
    deleted_user_mailbox_code: str = "ErrorItemNotFound"

    # --- subscriptions (subscription resource type,
    # https://learn.microsoft.com/en-us/graph/api/resources/subscription) ---
    # documented: 10,080 minutes in the newer subscription lifetime table, 4,230 in older versions
    subscription_max_minutes: int = 10080
    subscription_min_minutes: int = 45  # documented: an earlier expiry is set to 45 minutes (subscription resource)
    # "refuse": 400 ExtensionError "Subscription expiration can only be N minutes in the future." (field report,
    # microsoft-graph-docs-contrib#7726; the docs say such requests "will fail"); "clamp": set to the maximum (assumed)
    subscription_over_max: str = "refuse"
    # reported, unverified (microsoft-graph-docs-contrib#51): me/events fires only for the default calendar
    events_default_calendar_only: bool = False
    per_calendar_subscriptions: bool = True  # assumed: users/{id}/calendars/{id}/events is undocumented
    allow_http_loopback_urls: bool = False  # assumed/local: admit http://127.0.0.1 and http://localhost URLs
    # documented (Outlook change notifications overview,
    # https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview)
    subscriptions_per_mailbox: int = 1000
    # documented (Receive change notifications through webhooks,
    # https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks)
    validation_timeout_seconds: float = 10
    # --- change notifications (Receive change notifications through webhooks,
    # https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks) ---
    delivery_timeout_seconds: float = 3  # documented
    slow_response_ms: float = 2900  # documented
    slow_sample_size: int = 100  # documented: judged after 100 notifications
    slow_throttle_percent: float = 10  # documented: delayed by 10 minutes
    slow_drop_percent: float = 15  # documented: dropped
    slow_window_seconds: float = 600  # documented: counters reset every 10 minutes
    throttled_delay_seconds: float = 600  # documented: delivery delayed, failures retried after 10 minutes
    retry_for_seconds: float = 4 * 3600  # documented: retries for up to 4 hours
    retry_interval_seconds: float = 60  # assumed: the docs give no schedule for an unthrottled endpoint
    notifications_per_batch: int = 100  # assumed: the docs give no batch size
    create_also_updated: bool = True  # reported (microsoft-graph-docs#7598): a create also yields "updated"
    duplicate_notifications: bool = False  # assumed quirk: every notification sent twice
    batch_across_subscriptions: bool = True  # documented: one POST may carry several subscriptions' items
    # --- lifecycle notifications (https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events) ---
    reauthorization_lead_seconds: float = 900  # assumed: how long before token or subscription expiry it fires
    # assumed: after reauthorizationRequired, notifications keep flowing this long, then pause until reauthorized
    pause_after_reauthorization_seconds: float = 3600
    # --- throttling per app and mailbox (https://learn.microsoft.com/en-us/graph/throttling-limits,
    # https://learn.microsoft.com/en-us/graph/throttling) ---
    throttle_concurrency: int = 4  # documented
    throttle_requests: int = 10000  # documented: per window
    throttle_window_seconds: float = 600  # documented: 10 minutes
    throttle_writes: int = 10000  # assumed: writes have their own budget, set it lower to throttle writes first
    throttle_concurrency_retry_after: int = 1  # assumed: Retry-After of a MailboxConcurrency 429
    # --- events (event resource type, https://learn.microsoft.com/en-us/graph/api/resources/event) ---
    events_page_size: int = 10  # assumed: a list page without $top or Prefer: odata.maxpagesize
    if_match: str = "enforce"  # assumed: "enforce" answers a stale If-Match with 412, "ignore" does not check
    # assumed: a create repeating a transactionId answers "created" (201 with the existing event), "ok" (200 with
    # it) or "conflict" (409), within transaction_window_seconds of the first create
    transaction_duplicate: str = "created"
    transaction_window_seconds: float = 86400
    all_day_floating: bool = True  # assumed: all-day events come back at midnight whatever outlook.timezone says
    # --- what Exchange does to a write (assumed, default on) ---
    text_body_as_html: bool = True  # a text body comes back as HTML
    derive_body_preview: bool = True  # bodyPreview is the body's text, at most 255 characters
    trim_location: bool = True  # a location displayName loses surrounding blanks
    change_key_on_reply: bool = True  # an attendee's reply moves the organizer's change key
    send_invitations: bool = True  # a write with attendees sends invitations (counted per organizer)
    attendee_copies: bool = True  # an attendee who is a simulated mailbox gets a copy of the event
    # assumed: a move to another calendar notifies "deleted" (old calendar) and "created" (new calendar), or
    # "updated" once
    move_notifications: str = "deleted-created"
    # --- $batch (Combine multiple HTTP requests using JSON batching,
    # https://learn.microsoft.com/en-us/graph/json-batching) ---
    batch_max_requests: int = 20  # documented
    batch_outlook_concurrency: int = 4  # documented (throttling limits: Outlook service limits for JSON batching)
    # documented that responses "might appear in a different order"; which order is assumed: "completion" (as the
    # requests finish), "request" (as sent) or "reversed"
    batch_response_order: str = "completion"
    # --- calendarView and delta (event: delta, https://learn.microsoft.com/en-us/graph/api/event-delta; Get
    # incremental changes to events in a calendar view, https://learn.microsoft.com/en-us/graph/delta-query-events) ---
    delta_page_size: int = 10  # assumed: a delta page without Prefer: odata.maxpagesize (the docs give no default)
    # assumed: a series' items in a round stay on one page, so a recurring expansion can exceed the page size
    delta_series_on_one_page: bool = True
    # reported (microsoft-graph-docs#7632): occurrences in delta carry only id, type, seriesMasterId, start, end
    delta_thin_occurrences: bool = True
    delta_series_master: bool = False  # assumed: the series master itself is not an item of calendarView delta
    # assumed: deleting a series removes "occurrences" (the master and each occurrence in the window) or "master"
    delta_series_delete: str = "occurrences"
    # assumed: a cancelled occurrence is "removed" (an @removed item) or "vanish"es (no item)
    delta_cancelled_occurrence: str = "removed"
    # documented: Outlook delta tokens have no fixed lifetime (0); a number of seconds makes them expire
    delta_token_lifetime_seconds: float = 0
    # documented that old tokens are evicted when the cache fills; the size (tokens per mailbox, next links included)
    # is assumed
    delta_token_cache_size: int = 1000
    # reported (microsoft-graph-docs#2350) "SyncStateNotFound"; the errors page spells "syncStateNotFound"
    delta_expired_code: str = "SyncStateNotFound"
    # --- reported service faults of delta (assumed shapes; off by default) ---
    delta_page_size_override: int = 0  # pages of this size whatever odata.maxpagesize asks
    delta_loop_page: int = 0  # this page (2 or more) of each round links to itself ...
    delta_loop_times: int = 1  # ... this many times before moving on
    delta_duplicate_item: bool = False  # the last page repeats the round's first item
    delta_empty_pages: int = 0  # empty pages with a nextLink before the page that carries the deltaLink
    # --- getSchedule (calendar: getSchedule, https://learn.microsoft.com/en-us/graph/api/calendar-getschedule; Get
    # free/busy schedule of Outlook calendar users and resources,
    # https://learn.microsoft.com/en-us/graph/outlook-get-free-busy-schedule) ---
    # documented: 20 entities at once (a field report, microsoft-graph-docs#7047, was refused only past 100)
    schedule_max_schedules: int = 20
    # documented "less than 62 days"; the reported error (microsoft-graph-docs#19703) refuses 63 and allows 62
    schedule_max_days: int = 62
    # assumed: an event shown as free is a scheduleItem with status free (the docs list the status, not whether
    # free events are returned); off leaves it out. Either way it adds nothing busy to availabilityView
    schedule_free_items: bool = True
    # reported (msgraph-typescript-typings#428): items with subject and location also carry isMeeting, isRecurring,
    # isException and isReminderSet, which the scheduleItem resource does not list
    schedule_item_flags: bool = True
    # assumed: the simulator keeps no mailboxSettings; every mailbox works Monday to Friday, 08:00 to 17:00 (the
    # hours of the doc's examples) in this zone
    working_hours_time_zone: str = "UTC"


@dataclass
class Tenant:
    id: str
    name: str
    domain: str
    # client_id -> application permissions (app roles) an admin granted to the app in this tenant
    app_roles: dict[str, list[str]] = field(default_factory=dict)
    # client_id -> delegated scopes an admin granted for all users
    admin_scopes: dict[str, list[str]] = field(default_factory=dict)
    # apps with a service principal here (any consent creates one)
    service_principals: list[str] = field(default_factory=list)


@dataclass
class User:
    id: str
    tenant_id: str
    upn: str
    display_name: str
    is_admin: bool = False
    deleted: bool = False
    mailbox: str = "enabled"  # or "notEnabledForRestApi"
    tokens_valid_from: float = 0.0  # revokeSignInSessions moves it to now
    password_changed_at: float = 0.0
    require_interaction: bool = False  # next token request needs an interactive sign-in (MFA, CA)
    cae_min_token_seq: int = 0  # access tokens issued before this sequence get a CAE claims challenge


@dataclass
class AppSecret:
    key_id: str
    value: str
    expires_at: float


@dataclass
class AppCertificate:
    """A certificate credential of an app registration (its keyCredentials: "keyCredential resource
    type", https://learn.microsoft.com/graph/api/resources/keycredential): the public part only, named
    by the thumbprints client assertions carry."""

    key_id: str
    certificate_pem: str
    x5t: str  # base64url SHA-1 of the DER certificate
    x5t_s256: str  # base64url SHA-256 of the DER certificate
    starts_at: float
    ends_at: float


@dataclass
class App:
    client_id: str
    name: str
    home_tenant_id: str
    redirect_uris: list[str]
    secrets: list[AppSecret] = field(default_factory=list)
    certificates: list[AppCertificate] = field(default_factory=list)
    public_client: bool = False
    # what the registration asks for statically (used by /.default and admin consent)
    delegated_permissions: list[str] = field(default_factory=list)
    application_permissions: list[str] = field(default_factory=list)


@dataclass
class Grant:
    """A user's consent to an app's delegated scopes."""

    client_id: str
    user_id: str
    scopes: list[str]
    granted_at: float


@dataclass
class CalendarPermission:
    id: str
    address: str
    name: str
    role: str
    allowed_roles: list[str]
    is_removable: bool = True
    is_inside_organization: bool = True


@dataclass
class Calendar:
    id: str
    owner_id: str
    name: str
    is_default: bool = False
    color: str = "auto"
    hex_color: str = ""
    change_key: str = ""
    permissions: list[CalendarPermission] = field(default_factory=list)


@dataclass
class AuthCode:
    code: str
    client_id: str
    user_id: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    issued_at: float
    auth_time: float
    redeemed: bool = False


@dataclass
class RefreshToken:
    token: str
    client_id: str
    user_id: str
    issued_at: float
    last_used_at: float
    auth_time: float  # of the interactive sign-in the chain started from
    confidential: bool
    expired: bool = False  # forced inactivity expiry (control API)


@dataclass
class AccessTokenRecord:
    uti: str
    seq: int
    client_id: str
    user_id: str | None
    issued_at: float


@dataclass
class PendingAuthorization:
    """An authorize request waiting for the consent page's decision."""

    id: str
    kind: str  # "authorize" or "adminconsent"
    tenant: str
    params: dict[str, str]
    created_at: float


@dataclass
class Issued:
    kind: str  # access_token, id_token, refresh_token, code, client_secret
    value: str
    issued_at: float
    client_id: str
    user_id: str | None = None


@dataclass
class Subscription:
    """A change-notification subscription (subscription resource type). Times are simulated seconds."""

    id: str
    resource: str  # as the client sent it
    mailbox_id: str  # the user whose events it watches
    calendar_id: str | None  # per-calendar subscriptions
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: float
    client_id: str
    tenant_id: str
    creator_id: str  # the signed-in user, or the app's service principal
    delegated: bool
    id_type: str  # "ImmutableId" when created with Prefer: IdType="ImmutableId", else "RestId"
    authorized_until: float  # expiry of the access token that last created, renewed or reauthorized it
    reauthorization_sent_at: float | None = None  # reauthorizationRequired fired and not yet answered
    paused: bool = False  # no notifications until reauthorized


@dataclass
class Outgoing:
    """One notification waiting to be POSTed (alone or in a batch) to ``url``."""

    url: str
    item: dict[str, Any]
    subscription_id: str
    lifecycle: bool
    due_at: float
    first_due_at: float
    attempts: int = 0
    delayed: bool = False  # the endpoint's slow-throttling delay was applied once


@dataclass
class EndpointStats:
    """Slow-endpoint accounting for one notification URL, reset every ``slow_window_seconds``."""

    window_start: float
    sent: int = 0
    slow: int = 0


@dataclass
class Fault:
    """The next ``count`` requests whose path matches ``path`` (fnmatch) fail with ``status``, hang ("timeout"),
    are held, then served ("delay"), or lose their connection ("close"). ``after``: the request is served first (a
    write is applied) and its answer then replaced. "hidden": a create is answered, then its event answers 404 to
    the next ``reads`` reads by id."""

    path: str
    status: int | str  # 429, 500, 503, 504, "timeout", "delay", "close", "hidden" or "empty"
    count: int
    method: str | None = None  # one method, or "writes" (POST, PATCH, PUT, DELETE)
    retry_after: int | None = None
    hold_seconds: float = 30.0  # "timeout" and "delay": how long the request is held
    after: bool = False  # served (applied) before the fault answers
    reads: int = 0  # "hidden": reads by id that answer 404
    skip: int = 0  # matching requests served normally before the fault starts (the Nth page of a round)


@dataclass
class LoggedRequest:
    time: float
    method: str
    path: str
    route: str
    status: int
    mailbox: str | None
    request_id: str
    client_request_id: str | None
    connection: str = ""  # the client's address and port: one per TCP connection, so clients' pooling shows
    batch: str | None = None  # the request id of the $batch this request was part of


def new_id() -> str:
    return str(uuid.uuid4())


def opaque_token(prefix: str) -> str:
    """An opaque string shaped like Entra's refresh tokens and codes ("1.A…", "0.A…"), which the
    product's log redaction recognizes."""
    return prefix + secrets.token_urlsafe(96)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# What the JSON file keeps (the local demo survives a restart); codes, access tokens and logs do not.
_PERSISTED: dict[str, tuple[type, Any]] = {
    "tenants": (Tenant, lambda t: t.id),
    "users": (User, lambda u: u.id),
    "apps": (App, lambda a: a.client_id),
    "grants": (Grant, lambda g: f"{g.client_id}|{g.user_id}"),
    "calendars": (Calendar, lambda c: c.id),
    "refresh_tokens": (RefreshToken, lambda r: r.token),
}


@dataclass
class SimState:
    clock: Clock = field(default_factory=Clock)
    switches: Switches = field(default_factory=Switches)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)  # key: client_id|user_id
    calendars: dict[str, Calendar] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessTokenRecord] = field(default_factory=dict)
    pending: dict[str, PendingAuthorization] = field(default_factory=dict)
    issued: list[Issued] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    route_counts: Counter[str] = field(default_factory=Counter)
    mailbox_counts: Counter[str] = field(default_factory=Counter)
    token_seq: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    outbox: list[Outgoing] = field(default_factory=list)
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)
    notification_counts: Counter[str] = field(default_factory=Counter)  # sent, dropped, slow, failed, ...
    notification_plans: dict[str, int] = field(default_factory=dict)  # drop / duplicate the next N
    notification_delay_seconds: float = 0.0  # control: hold every new notification this long
    faults: list[Fault] = field(default_factory=list)
    throttle_counts: Counter[str] = field(default_factory=Counter)  # 429s per "app|mailbox"
    in_flight: Counter[str] = field(default_factory=Counter)  # running requests per "app|mailbox"
    outlook_in_flight: int = 0  # running Outlook requests, every app and mailbox
    peak_concurrency: Counter[str] = field(default_factory=Counter)  # highest in_flight per pair, and "outlook"
    batch_counts: Counter[str] = field(default_factory=Counter)  # batches, requests, failedDependency
    request_times: dict[str, list[float]] = field(default_factory=dict)  # "app|mailbox[|write]" -> times in window
    events: EventStore = field(default_factory=EventStore)
    invitations: Counter[str] = field(default_factory=Counter)  # invitations sent, per organizer mailbox
    # mailbox -> "METHOD endpoint" -> status -> requests (GET /_sim/counters "endpoints")
    endpoint_counts: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    # calendarView delta state tokens (delta.py): mailbox -> token -> its record, oldest first
    delta_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def reset(self) -> None:
        """Back to empty, clock included, keeping the lock (the server thread holds a reference)."""
        with self.lock:
            fresh = SimState()
            for f in dataclasses.fields(SimState):
                if f.name != "lock":
                    setattr(self, f.name, getattr(fresh, f.name))

    # --- directory ---------------------------------------------------------------------------

    def add_tenant(self, name: str, domain: str, tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or new_id(), name, domain)
        self.tenants[tenant.id] = tenant
        return tenant

    def add_user(self, tenant_id: str, upn: str, display_name: str, *, user_id: str | None = None,
                 is_admin: bool = False, with_calendar: bool = True) -> User:
        if tenant_id not in self.tenants:
            raise KeyError(f"unknown tenant {tenant_id}")
        user = User(user_id or new_id(), tenant_id, upn, display_name, is_admin=is_admin)
        self.users[user.id] = user
        if with_calendar:
            self.add_calendar(user.id, "Calendar", is_default=True)
        return user

    def add_calendar(self, owner_id: str, name: str, *, is_default: bool = False, color: str = "auto",
                     calendar_id: str | None = None) -> Calendar:
        if owner_id not in self.users:
            raise KeyError(f"unknown user {owner_id}")
        calendar = Calendar(calendar_id or ("AAMkA" + b64url(secrets.token_bytes(48))), owner_id, name,
                            is_default=is_default, color=color, change_key=b64url(secrets.token_bytes(12)))
        # Every calendar lists the organization's default free/busy entry (calendarPermission docs).
        calendar.permissions.append(CalendarPermission(
            id="RGVmYXVsdA==", address="", name="My Organization", role="freeBusyRead",
            allowed_roles=["none", "freeBusyRead", "limitedRead", "read", "write"], is_removable=False))
        self.calendars[calendar.id] = calendar
        return calendar

    def share_calendar(self, calendar_id: str, with_user_id: str, role: str) -> CalendarPermission:
        sharee = self.users[with_user_id]
        permission = CalendarPermission(
            id=b64url(secrets.token_bytes(24)), address=sharee.upn, name=sharee.display_name, role=role,
            allowed_roles=["none", "freeBusyRead", "limitedRead", "read", "write",
                           "delegateWithoutPrivateEventAccess", "delegateWithPrivateEventAccess"])
        self.calendars[calendar_id].permissions.append(permission)
        return permission

    def add_app(self, client_id: str, name: str, home_tenant_id: str, redirect_uris: list[str], *,
                secret: str | None = None, secret_days: float = 180, public_client: bool = False,
                delegated: list[str] | None = None, application: list[str] | None = None,
                certificates: list[str] | None = None) -> App:
        app = App(client_id, name, home_tenant_id, list(redirect_uris), public_client=public_client,
                  delegated_permissions=list(delegated or []), application_permissions=list(application or []))
        if secret is not None:
            self.add_app_secret(app, secret, secret_days)
        for pem in certificates or []:
            self.add_app_certificate(app, pem)
        self.apps[client_id] = app
        return app

    def add_app_secret(self, app: App, value: str, days: float) -> AppSecret:
        created = AppSecret(new_id(), value, self.clock.now() + days * 86400)
        app.secrets.append(created)
        self.record_issued("client_secret", value, app.client_id)
        return created

    def add_app_certificate(self, app: App, certificate_pem: str) -> AppCertificate:
        """Register a certificate's public part; its validity comes from the certificate itself.

        :raises ValueError: not a PEM certificate."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        # A fingerprint is the hash of the DER encoding; x5t and x5t#S256 carry it base64url-encoded.
        created = AppCertificate(new_id(), cert.public_bytes(serialization.Encoding.PEM).decode(),
                                 b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 (x5t is SHA-1 by definition)
                                 b64url(cert.fingerprint(hashes.SHA256())),
                                 cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())
        app.certificates.append(created)
        return created

    def find_tenant(self, segment: str) -> Tenant | None:
        """A tenant by the authority's path segment: its id or its domain."""
        if segment in self.tenants:
            return self.tenants[segment]
        return next((t for t in self.tenants.values() if t.domain.lower() == segment.lower()), None)

    def find_user(self, key: str, tenant_id: str | None = None) -> User | None:
        """A user by object id or user principal name, optionally within one tenant."""
        for user in self.users.values():
            if (user.id == key or user.upn.lower() == key.lower()) and tenant_id in (None, user.tenant_id):
                return user
        return None

    def calendars_of(self, user_id: str) -> list[Calendar]:
        owned = [c for c in self.calendars.values() if c.owner_id == user_id]
        return sorted(owned, key=lambda c: (not c.is_default, c.name))

    # --- consent -----------------------------------------------------------------------------

    def consented_scopes(self, client_id: str, user: User) -> set[str]:
        grant = self.grants.get(f"{client_id}|{user.id}")
        scopes = set(grant.scopes) if grant else set()
        scopes |= set(self.tenants[user.tenant_id].admin_scopes.get(client_id, []))
        return scopes

    def grant_consent(self, client_id: str, user: User, scopes: set[str]) -> None:
        key = f"{client_id}|{user.id}"
        existing = self.grants.get(key)
        merged = scopes | set(existing.scopes if existing else [])
        self.grants[key] = Grant(client_id, user.id, sorted(merged), self.clock.now())
        self.ensure_service_principal(user.tenant_id, client_id)

    def ensure_service_principal(self, tenant_id: str, client_id: str) -> None:
        tenant = self.tenants[tenant_id]
        if client_id not in tenant.service_principals:
            tenant.service_principals.append(client_id)

    # --- issuing -----------------------------------------------------------------------------

    def record_issued(self, kind: str, value: str, client_id: str, user_id: str | None = None) -> None:
        self.issued.append(Issued(kind, value, self.clock.now(), client_id, user_id))

    def new_code(self, **fields: Any) -> AuthCode:
        code = AuthCode(code=opaque_token("1.A"), issued_at=self.clock.now(), **fields)
        self.codes[code.code] = code
        self.record_issued("code", code.code, code.client_id, code.user_id)
        return code

    def new_refresh_token(self, client_id: str, user_id: str, auth_time: float, confidential: bool) -> RefreshToken:
        now = self.clock.now()
        token = RefreshToken(opaque_token("1.A"), client_id, user_id, now, now, auth_time, confidential)
        self.refresh_tokens[token.token] = token
        self.record_issued("refresh_token", token.token, client_id, user_id)
        return token

    def new_access_record(self, client_id: str, user_id: str | None) -> AccessTokenRecord:
        self.token_seq += 1
        record = AccessTokenRecord(b64url(secrets.token_bytes(16)), self.token_seq, client_id, user_id,
                                   self.clock.now())
        self.access_tokens[record.uti] = record
        return record

    # --- request log -------------------------------------------------------------------------

    def log_request(self, entry: LoggedRequest) -> None:
        self.requests.append(entry)
        self.route_counts[entry.route] += 1
        if entry.mailbox:
            self.mailbox_counts[entry.mailbox] += 1
            endpoint = entry.route.replace(" /v1.0/me", " /v1.0/users/{user}", 1)
            self.endpoint_counts.setdefault(entry.mailbox, {}).setdefault(endpoint, Counter())[str(entry.status)] += 1

    def reset_counters(self) -> None:
        """Request counts and the request log start again from zero (the state itself is kept)."""
        self.requests = []
        for counter in (self.route_counts, self.mailbox_counts, self.throttle_counts, self.peak_concurrency,
                        self.batch_counts):
            counter.clear()
        self.endpoint_counts = {}

    # --- persistence -------------------------------------------------------------------------

    def to_json(self) -> str:
        data: dict[str, Any] = {name: [dataclasses.asdict(v) for v in getattr(self, name).values()]
                                for name in _PERSISTED}
        data["events"] = [dataclasses.asdict(e) for e in self.events.events.values() if not e.generated]
        data["generated_events"] = self.events.generated
        data["clock_offset"] = self.clock.offset
        data["switches"] = dataclasses.asdict(self.switches)
        return json.dumps(data, indent=1)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SimState:
        from devstack.m365.seeding import generate_events  # seeding builds on the state

        data = json.loads(path.read_text())
        state = cls(clock=Clock(data.get("clock_offset", 0.0)), switches=Switches(**data.get("switches", {})))
        for name, (kind, key_of) in _PERSISTED.items():
            target = getattr(state, name)
            for item in data.get(name, []):
                obj = _from_dict(kind, item)
                target[key_of(obj)] = obj
        for item in data.get("events", []):
            state.events.add(Event(**item))
        for spec in data.get("generated_events", []):
            generate_events(state, spec)  # large mailboxes are regenerated from their seed, not loaded
        return state


def _from_dict(kind: type, item: dict[str, Any]) -> Any:
    nested = {"secrets": AppSecret, "certificates": AppCertificate, "permissions": CalendarPermission}
    values = {k: [nested[k](**x) for x in v] if k in nested else v for k, v in item.items()}
    return kind(**values)
