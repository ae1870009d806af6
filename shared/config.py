"""Settings: the one canonical list of setting names, and the only reader of the environment.

``SETTINGS`` lists every name the app understands, marked required or optional and read by the
Functions host, the product, or both. ``Settings.from_env`` parses and validates the product-read
ones and raises one ``ConfigError`` naming every setting that is missing or malformed.
``get_settings()`` does that lazily on first use: importing this module reads nothing, because the
host imports ``function_app.py`` just to discover its functions.

Names read only by ``devstack/`` (local function keys, shortened host timings, simulator ports) are
not product settings and live in devstack's own configuration.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.redaction import register_secret

# Queue names; the host adds the `-poison` twins.
SYNC_QUEUE = "sync"
OUTBOUND_QUEUE = "outbound"
SUBSCRIPTIONS_QUEUE = "subscriptions"
CALLBACKS_QUEUE = "callbacks"
QUEUES = (SYNC_QUEUE, OUTBOUND_QUEUE, SUBSCRIPTIONS_QUEUE, CALLBACKS_QUEUE)
POISON_SUFFIX = "-poison"


def poison_queue(queue: str) -> str:
    """Where the host moves a message of ``queue`` after maxDequeueCount deliveries."""
    return f"{queue}{POISON_SUFFIX}"


class ReadBy(Enum):
    HOST = "host"
    PRODUCT = "product"
    BOTH = "both"


@dataclass(frozen=True)
class SettingSpec:
    name: str
    read_by: ReadBy
    required: bool
    default: str | None
    doc: str
    secret: bool = False


def _spec(name: str, doc: str, *, default: str | None = None, required: bool = False,
          read_by: ReadBy = ReadBy.PRODUCT, secret: bool = False) -> SettingSpec:
    return SettingSpec(name, read_by, required, default, doc, secret)


# The canonical list. `local.settings.sample.json` holds exactly these names (a unit test checks it).
SETTINGS: tuple[SettingSpec, ...] = (
    # Read by the Functions host.
    _spec("AzureWebJobsStorage", "Storage for the host and the product: a connection string (Azurite "
          "locally), or empty with the identity-based AzureWebJobsStorage__* settings below.",
          read_by=ReadBy.BOTH, secret=True),
    _spec("FUNCTIONS_WORKER_RUNTIME", "Always 'python'.", read_by=ReadBy.HOST, required=True,
          default="python"),
    _spec("RECONCILE_SCHEDULE", "NCRONTAB (six fields) of the delta reconciler timer.",
          read_by=ReadBy.HOST, required=True, default="0 */5 * * * *"),
    _spec("RENEW_SCHEDULE", "NCRONTAB (six fields) of the subscription renewer timer.",
          read_by=ReadBy.HOST, required=True, default="0 */15 * * * *"),
    _spec("APPLICATIONINSIGHTS_CONNECTION_STRING", "Application Insights; telemetry is off when absent.",
          read_by=ReadBy.HOST),
    _spec("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "Entra ID authentication of the host's telemetry "
          "('ClientId=<managed identity client id>;Authorization=AAD'), for a resource with local auth off; "
          "empty locally.", read_by=ReadBy.HOST),
    # Product-read, required.
    _spec("KEY_VAULT_URL", "Key Vault holding one refresh-token secret per account connection.",
          required=True),
    _spec("CLIENT_ID", "Entra ID application (client) id.", required=True),
    _spec("CLIENT_SECRET", "Client secret; set this or CLIENT_CERTIFICATE_NAME.", secret=True),
    _spec("CLIENT_CERTIFICATE_NAME", "Name of a certificate in KEY_VAULT_URL's vault (with its private key) "
          "used as the client credential, reloaded when a new version appears; set this or CLIENT_SECRET."),
    _spec("PUBLIC_BASE_URL", "Public https base of this app, e.g. https://sync.example.com; "
          "notification, lifecycle and OAuth callback URLs hang off it.", required=True),
    _spec("CLIENT_STATE_KEYS", "Subscription clientState MAC keys, 'kid:base64key' comma-separated, "
          "current first; later ones are still accepted (rotation).", required=True, secret=True),
    _spec("CONNECT_SIGNING_KEY", "Base64 key (>= 32 bytes) from which the keys sealing (encrypting and "
          "authenticating) connect links and result tokens are derived.",
          required=True, secret=True),
    _spec("ALLOWED_RETURN_URLS", "Comma-separated return URLs the connect flow may redirect to "
          "(exact scheme, host, port and path).", required=True),
    # Product-read, with defaults.
    _spec("GRAPH_BASE_URL", "Microsoft Graph base URL.", default="https://graph.microsoft.com/v1.0"),
    _spec("AUTHORITY_HOST", "Entra ID authority host.", default="https://login.microsoftonline.com"),
    _spec("TENANT", "Tenant segment of the authority: organizations, common, or a tenant id.",
          default="organizations"),
    _spec("SCOPES", "Delegated scopes asked for at connect, space-separated.",
          default="Calendars.ReadWrite User.Read"),
    _spec("LOCAL_CA_BUNDLE", "PEM file of extra CAs to trust (the local stand-ins); empty in Azure. "
          "Product HTTP clients use it when set and never turn verification off.", default=""),
    _spec("AZURE_CLIENT_ID", "Client id of the app's user-assigned managed identity, read by azure-identity's "
          "DefaultAzureCredential (Key Vault) so it picks that identity; empty locally.", default=""),
    _spec("SYNC_WINDOW_PAST_DAYS", "Days before today that the sync window covers.", default="30"),
    _spec("SYNC_WINDOW_FUTURE_DAYS", "Days after today that the sync window covers.", default="365"),
    _spec("RECONCILE_INTERVAL_MINUTES", "Age of the last good round after which the timer queues another.",
          default="60"),
    _spec("DRIFT_WINDOW_MINUTES", "A change a reconcile round finds counts as drift (a lost notification) when "
          "no notification came within this many minutes before the round.", default="10"),
    _spec("SLICE_MAX_PAGES", "Delta pages one invocation applies before it continues in a new message.",
          default="20"),
    _spec("SLICE_MAX_SECONDS", "Seconds one invocation spends on delta pages before it continues.",
          default="120"),
    _spec("LEASE_SECONDS", "Lifetime of a mailbox's sync lease.", default="300"),
    _spec("DELTA_PAGE_SIZE", "Events per delta page asked of Graph (Prefer: odata.maxpagesize, a hint); 50 is "
          "the page size Graph is observed to use.", default="50"),
    _spec("DELTA_REPLICATION_MARGIN_SECONDS", "A sync message sent at least this long before the last completed "
          "round started is covered by it (delta's replication delay); one sent later waits for one more "
          "round, delayed by this much.", default="10"),
    _spec("COALESCE_DELAY_SECONDS", "Initial invisibility of a notification's sync message.", default="5"),
    _spec("THROTTLE_INLINE_MAX_SECONDS", "A Graph Retry-After up to this many seconds is waited inside the "
          "invocation; a longer one re-sends the message with that delay (throttling never counts as a "
          "failed delivery).", default="10"),
    _spec("SUBSCRIPTION_LIFETIME_MINUTES", "Lifetime asked for when creating or renewing a subscription.",
          default="4230"),
    _spec("RENEW_MARGIN_MINUTES", "Renew subscriptions expiring within this many minutes.", default="720"),
    _spec("PER_CALENDAR_SUBSCRIPTIONS", "Subscribe to each extra owned calendar (undocumented resource "
          "form users/{id}/calendars/{id}/events).", default="false"),
    _spec("TOKEN_KEEPALIVE_DAYS", "Refresh a token unused for this many days, before its 90-day "
          "inactivity expiry.", default="30"),
    _spec("TOKEN_WRITE_AGE_HOURS", "Write a rotated refresh token to Key Vault only when the stored one "
          "is older than this.", default="24"),
    _spec("CONNECT_LINK_MINUTES", "Lifetime of a connect link.", default="30"),
    _spec("RESULT_TOKEN_MINUTES", "Lifetime of a connect result token and its pending connection.",
          default="15"),
    _spec("DELETE_BREAKER_SHARE", "Share of a calendar's events one round may delete before the "
          "mass-deletion breaker holds the deletes.", default="0.5"),
    _spec("DELETE_BREAKER_MIN_EVENTS", "The breaker judges a calendar's deletes only once it holds at least this "
          "many events (deleting 1 of 1 is not a mass deletion).", default="10"),
    _spec("BREAKER_CONFIRM_MINUTES", "Delay before the full round that confirms deletes the breaker held.",
          default="15"),
    _spec("TOMBSTONE_RETENTION_DAYS", "Days a deleted event's tombstone is kept.", default="30"),
    _spec("FEED_RETENTION_DAYS", "Days change-feed rows are kept.", default="14"),
    _spec("JOURNAL_RETENTION_DAYS", "Days journal rows are kept.", default="30"),
    _spec("CONFLICT_POLICY", "saas_wins or outlook_wins when both sides changed a booking.",
          default="saas_wins"),
    _spec("ATTENDEE_POLICY", "none (no invitations go out) or explicit.", default="none"),
    # Optional features: off when absent.
    _spec("SAAS_CALLBACK_URL", "https URL that receives signed change and status callbacks."),
    _spec("SAAS_CALLBACK_SECRET", "Base64 HMAC-SHA256 key (>= 32 bytes) signing the callbacks (docs/callbacks.md).",
          secret=True),
    _spec("CALLBACK_REPLAY_WINDOW_SECONDS", "How old a callback signature the SaaS should accept (its check; the "
          "product signs with the time of sending).", default="300"),
    _spec("CALLBACK_RETRY_BASE_SECONDS", "First wait before a callback not acknowledged is sent again; it doubles "
          "each time.", default="10"),
    _spec("CALLBACK_RETRY_MAX_SECONDS", "Longest wait between two sends of a callback not acknowledged.",
          default="3600"),
    _spec("SHARED_CALENDARS", "Sync calendars shared with a user (polled, not subscribed).",
          default="false"),
    _spec("SHARED_POLL_MINUTES", "Poll interval of shared calendars.", default="15"),
)

SETTINGS_BY_NAME: dict[str, SettingSpec] = {s.name: s for s in SETTINGS}

# Identity-based forms of AzureWebJobsStorage (used when the connection string is empty): the suffix after
# the prefix, and the StorageSettings field it fills. The host reads the same names.
STORAGE_IDENTITY_PREFIX = "AzureWebJobsStorage__"
STORAGE_IDENTITY_FIELDS: dict[str, str] = {
    "tableServiceUri": "table_uri",
    "queueServiceUri": "queue_uri",
    "blobServiceUri": "blob_uri",
    "credential": "credential",
    "clientId": "client_id",
}

# What App Service leaves in a setting whose Key Vault reference it could not resolve.
KEY_VAULT_REFERENCE_PREFIX = "@microsoft.keyvault("


@dataclass(frozen=True)
class StorageSettings:
    """Either a connection string, or service URIs reached with a managed identity."""

    connection_string: str | None = field(default=None, repr=False)
    table_uri: str | None = None
    queue_uri: str | None = None
    blob_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class ClientStateKey:
    key_id: str
    key: bytes = field(repr=False)


# Settings whose features are not built yet: a value that turns one on is refused, rather than accepted
# and silently ignored. Each entry goes when its feature lands.
_NOT_BUILT_YET = {
    "PER_CALENDAR_SUBSCRIPTIONS": "per_calendar_subscriptions",
    "SHARED_CALENDARS": "shared_calendars",
}


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    key_vault_url: str
    client_id: str
    client_secret: str | None = field(repr=False)
    client_certificate_name: str | None
    public_base_url: str
    client_state_keys: tuple[ClientStateKey, ...] = field(repr=False)
    connect_signing_key: bytes = field(repr=False)
    allowed_return_urls: tuple[str, ...]
    graph_base_url: str
    authority_host: str
    tenant: str
    scopes: tuple[str, ...]
    local_ca_bundle: str | None
    managed_identity_client_id: str | None
    sync_window_past_days: int
    sync_window_future_days: int
    reconcile_interval_minutes: int
    drift_window_minutes: int
    slice_max_pages: int
    slice_max_seconds: int
    lease_seconds: int
    delta_page_size: int
    delta_replication_margin_seconds: int
    coalesce_delay_seconds: int
    throttle_inline_max_seconds: int
    subscription_lifetime_minutes: int
    renew_margin_minutes: int
    per_calendar_subscriptions: bool
    token_keepalive_days: int
    token_write_age_hours: int
    connect_link_minutes: int
    result_token_minutes: int
    delete_breaker_share: float
    delete_breaker_min_events: int
    breaker_confirm_minutes: int
    tombstone_retention_days: int
    feed_retention_days: int
    journal_retention_days: int
    conflict_policy: str
    attendee_policy: str
    saas_callback_url: str | None
    saas_callback_secret: bytes | None = field(repr=False)
    callback_replay_window_seconds: int
    callback_retry_base_seconds: int
    callback_retry_max_seconds: int
    shared_calendars: bool
    shared_poll_minutes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate every product-read setting.

        :raises ConfigError: naming every missing or malformed setting at once (names only, never values).
        """
        reader = _Reader(env)
        r = reader
        values: dict[str, Any] = dict(
            storage=r.storage(),
            key_vault_url=r.get("KEY_VAULT_URL", _https_or_loopback_url),
            client_id=r.get("CLIENT_ID", _nonempty),
            client_secret=r.get("CLIENT_SECRET", _nonempty),
            client_certificate_name=r.get("CLIENT_CERTIFICATE_NAME", _key_vault_object_name),
            public_base_url=r.get("PUBLIC_BASE_URL", _https_or_loopback_url),
            client_state_keys=r.get("CLIENT_STATE_KEYS", _client_state_keys),
            connect_signing_key=r.get("CONNECT_SIGNING_KEY", _signing_key),
            allowed_return_urls=r.get("ALLOWED_RETURN_URLS", _url_list),
            graph_base_url=r.get("GRAPH_BASE_URL", _https_or_loopback_url),
            authority_host=r.get("AUTHORITY_HOST", _https_url),
            tenant=r.get("TENANT", _nonempty),
            scopes=r.get("SCOPES", _scopes),
            local_ca_bundle=r.get("LOCAL_CA_BUNDLE", _nonempty),
            managed_identity_client_id=r.get("AZURE_CLIENT_ID", _guid),
            sync_window_past_days=r.get("SYNC_WINDOW_PAST_DAYS", _positive_int),
            sync_window_future_days=r.get("SYNC_WINDOW_FUTURE_DAYS", _positive_int),
            reconcile_interval_minutes=r.get("RECONCILE_INTERVAL_MINUTES", _positive_int),
            drift_window_minutes=r.get("DRIFT_WINDOW_MINUTES", _positive_int),
            slice_max_pages=r.get("SLICE_MAX_PAGES", _positive_int),
            slice_max_seconds=r.get("SLICE_MAX_SECONDS", _positive_int),
            lease_seconds=r.get("LEASE_SECONDS", _positive_int),
            delta_page_size=r.get("DELTA_PAGE_SIZE", _positive_int),
            delta_replication_margin_seconds=r.get("DELTA_REPLICATION_MARGIN_SECONDS", _non_negative_int),
            coalesce_delay_seconds=r.get("COALESCE_DELAY_SECONDS", _non_negative_int),
            throttle_inline_max_seconds=r.get("THROTTLE_INLINE_MAX_SECONDS", _non_negative_int),
            subscription_lifetime_minutes=r.get("SUBSCRIPTION_LIFETIME_MINUTES", _positive_int),
            renew_margin_minutes=r.get("RENEW_MARGIN_MINUTES", _positive_int),
            per_calendar_subscriptions=r.get("PER_CALENDAR_SUBSCRIPTIONS", _bool),
            token_keepalive_days=r.get("TOKEN_KEEPALIVE_DAYS", _positive_int),
            token_write_age_hours=r.get("TOKEN_WRITE_AGE_HOURS", _positive_int),
            connect_link_minutes=r.get("CONNECT_LINK_MINUTES", _positive_int),
            result_token_minutes=r.get("RESULT_TOKEN_MINUTES", _positive_int),
            delete_breaker_share=r.get("DELETE_BREAKER_SHARE", _share),
            delete_breaker_min_events=r.get("DELETE_BREAKER_MIN_EVENTS", _positive_int),
            breaker_confirm_minutes=r.get("BREAKER_CONFIRM_MINUTES", _positive_int),
            tombstone_retention_days=r.get("TOMBSTONE_RETENTION_DAYS", _positive_int),
            feed_retention_days=r.get("FEED_RETENTION_DAYS", _positive_int),
            journal_retention_days=r.get("JOURNAL_RETENTION_DAYS", _positive_int),
            conflict_policy=r.get("CONFLICT_POLICY", _one_of("saas_wins", "outlook_wins")),
            attendee_policy=r.get("ATTENDEE_POLICY", _one_of("none", "explicit")),
            saas_callback_url=r.get("SAAS_CALLBACK_URL", _https_or_loopback_url),
            saas_callback_secret=r.get("SAAS_CALLBACK_SECRET", lambda v: _decode_key(v, minimum=32)),
            callback_replay_window_seconds=r.get("CALLBACK_REPLAY_WINDOW_SECONDS", _positive_int),
            callback_retry_base_seconds=r.get("CALLBACK_RETRY_BASE_SECONDS", _positive_int),
            callback_retry_max_seconds=r.get("CALLBACK_RETRY_MAX_SECONDS", _positive_int),
            shared_calendars=r.get("SHARED_CALENDARS", _bool),
            shared_poll_minutes=r.get("SHARED_POLL_MINUTES", _positive_int),
        )
        for name, key in _NOT_BUILT_YET.items():
            if values[key]:
                reader.problems.append(f"{name}: not supported yet; leave it empty or false")
        if values["client_secret"] is None and values["client_certificate_name"] is None \
                and not {"CLIENT_SECRET", "CLIENT_CERTIFICATE_NAME"} & reader.unresolved:
            reader.problems.append("CLIENT_SECRET or CLIENT_CERTIFICATE_NAME: set one of the two")
        elif values["client_secret"] is not None and values["client_certificate_name"] is not None:
            reader.problems.append("CLIENT_SECRET and CLIENT_CERTIFICATE_NAME: set only one of the two "
                                   "(remove the secret once the certificate works)")
        if (values["saas_callback_url"] is None) != (values["saas_callback_secret"] is None) \
                and not {"SAAS_CALLBACK_URL", "SAAS_CALLBACK_SECRET"} & reader.unresolved \
                and not any(p.startswith("SAAS_CALLBACK_") for p in reader.problems):
            reader.problems.append("SAAS_CALLBACK_URL and SAAS_CALLBACK_SECRET: set both or neither")
        if reader.problems:
            raise ConfigError(reader.problems)
        return cls(**values)

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant}"

    @property
    def callbacks_enabled(self) -> bool:
        return self.saas_callback_url is not None


@cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use. Their secret values are
    registered with the log redaction, so no log line can carry them."""
    settings = Settings.from_env(os.environ)
    for spec in SETTINGS:
        if spec.secret:
            register_secret(os.environ.get(spec.name))
    for key in settings.client_state_keys:
        register_secret(base64.b64encode(key.key).decode())
    return settings


def storage_settings() -> StorageSettings:
    """Only the storage part, for paths (the webhook) that must not fail on unrelated settings."""
    reader = _Reader(os.environ)
    storage = reader.storage()
    if reader.problems:
        raise ConfigError(reader.problems)
    return storage


# --- parsing -------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.unresolved: set[str] = set()  # reported once, as unresolved references, not again as missing

    def raw(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        if value:
            if self.is_unresolved_reference(name, value):
                return None
            return value
        default = SETTINGS_BY_NAME[name].default
        return default or None

    def get(self, name: str, parse: Callable[[str], Any]) -> Any:
        spec = SETTINGS_BY_NAME[name]
        value = self.raw(name)
        if value is None:
            if spec.required and name not in self.unresolved:
                self.problems.append(f"{name}: missing")
            return None
        try:
            return parse(value)
        except ValueError as exc:
            # The reason names the expected shape; it never repeats the value (it may be a secret).
            self.problems.append(f"{name}: {exc}")
            return None

    def is_unresolved_reference(self, name: str, value: str) -> bool:
        """App Service passes a Key Vault reference through verbatim when it cannot resolve it (the secret
        is missing, or the app's identity may not read it); such a value is never a usable setting."""
        if not value.lower().startswith(KEY_VAULT_REFERENCE_PREFIX):
            return False
        self.unresolved.add(name)
        self.problems.append(f"{name}: an unresolved Key Vault reference (the secret does not exist yet, or "
                             "the app's identity may not read it)")
        return True

    def storage(self) -> StorageSettings:
        conn = self.env.get("AzureWebJobsStorage", "").strip()
        if conn and self.is_unresolved_reference("AzureWebJobsStorage", conn):
            return StorageSettings()
        if conn:
            if "=" not in conn:
                self.problems.append("AzureWebJobsStorage: not a connection string")
            return StorageSettings(connection_string=conn)
        fields: dict[str, str] = {}
        for suffix, field_name in STORAGE_IDENTITY_FIELDS.items():
            name = STORAGE_IDENTITY_PREFIX + suffix
            value = self.env.get(name, "").strip()
            if value and not self.is_unresolved_reference(name, value):
                fields[field_name] = value
        settings = StorageSettings(**fields)
        if not (settings.table_uri and settings.queue_uri) \
                and not any(n.startswith(STORAGE_IDENTITY_PREFIX) for n in self.unresolved):
            self.problems.append(
                "AzureWebJobsStorage: missing (set a connection string, or AzureWebJobsStorage__tableServiceUri "
                "and AzureWebJobsStorage__queueServiceUri with a managed identity)")
        return settings


def _nonempty(value: str) -> str:
    return value


def _key_vault_object_name(value: str) -> str:
    # "Azure Key Vault keys, secrets and certificates overview": 1-127 characters, 0-9, a-z, A-Z and -.
    # https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates
    if not re.fullmatch(r"[0-9A-Za-z-]{1,127}", value):
        raise ValueError("expected a Key Vault object name (1-127 letters, digits and dashes)")
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if number <= 0:
        raise ValueError("expected a number above 0")
    return number


def _non_negative_int(value: str) -> int:
    if value == "0":
        return 0
    return _positive_int(value)


def _guid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError("expected a GUID (the identity's client id)") from None
    return value


def _share(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number between 0 and 1") from None
    if not 0 < number <= 1:
        raise ValueError("expected a number between 0 and 1")
    return number


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value
    return parse


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback_url(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("expected an https URL")
    return value.rstrip("/")


def _https_or_loopback_url(value: str) -> str:
    # Plain http is accepted only for the local stack on this machine.
    parts = urlsplit(value)
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return value.rstrip("/")
    return _https_url(value)


def _url_list(value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    if not urls:
        raise ValueError("expected at least one URL")
    for url in urls:
        _https_or_loopback_url(url)
    return urls


def _scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(value.split())
    reserved = {"openid", "profile", "offline_access"} & {s.lower() for s in scopes}
    if reserved:
        # msal adds these itself and refuses them when passed.
        raise ValueError(f"remove {', '.join(sorted(reserved))}: msal adds them itself")
    return scopes


def _decode_key(value: str, *, minimum: int) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64") from None
    if len(key) < minimum:
        raise ValueError(f"expected a key of at least {minimum} bytes")
    return key


def _signing_key(value: str) -> bytes:
    return _decode_key(value, minimum=32)


def _client_state_keys(value: str) -> tuple[ClientStateKey, ...]:
    keys: list[ClientStateKey] = []
    for item in (part.strip() for part in value.split(",")):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id.isalnum() or len(key_id) > 8:
            raise ValueError("expected 'kid:base64key' items, kid alphanumeric and at most 8 characters")
        keys.append(ClientStateKey(key_id, _decode_key(encoded, minimum=32)))
    if len({k.key_id for k in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return tuple(keys)
