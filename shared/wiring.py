"""The wiring: what a trigger needs, built once per process on first use.

``get_services()`` and ``get_auth()`` are the only places that choose and build adapters (Azure
Storage or Azurite, msal, Key Vault, msgraph-sdk); every other module receives what it needs as
arguments, typed by ``shared.context.Services`` and the ports. So this module sits above everything it
builds and nothing in ``shared/`` imports it; unit tests build a ``Services`` from the in-memory
versions with ``in_memory_services``. Nothing here runs at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.clock import Clock, system_clock
from shared.config import Settings, get_settings
from shared.context import Services
from shared.ops.journal import Journal
from shared.store.ports import WorkQueue

if TYPE_CHECKING:
    from shared.auth.credential import TokenBroker
    from shared.auth.ports import IdentityProvider, MailboxDirectory, TokenVault
    from shared.graph.gateway import GraphGateway
    from shared.subscriptions.gateway import SubscriptionGateway
    from shared.sync.writer import EventWriter

_services: Services | None = None
_queue: WorkQueue | None = None


def get_work_queue() -> WorkQueue:
    """The queue alone: the webhook path needs nothing else (and skips the Table SDK's import)."""
    global _queue
    if _queue is None:
        from shared.store.factory import build_work_queue

        _queue = build_work_queue(get_settings().storage)
    return _queue


def get_services() -> Services:
    """The process's services; the Azure clients connect lazily on their first call."""
    global _services
    if _services is None:
        from shared.store.factory import build_table_store

        settings = get_settings()
        tables = build_table_store(settings.storage)
        _services = Services(settings, tables, get_work_queue(), Journal(tables))
    return _services


async def close_services() -> None:
    """Close what this process built (its clients hold connections and aiohttp sessions), then forget
    it. For a host that stops the app in-process (the local runner); idempotent."""
    global _services, _queue, _auth
    import sys

    if "shared.graph.client" in sys.modules:  # imported only if Graph was used
        await sys.modules["shared.graph.client"].close_pooled_http_clients()
    if _auth is not None:
        close = getattr(_auth.vault, "close", None)
        if close is not None:
            await close()
    if _services is not None:
        await _services.close()
    elif _queue is not None:
        close = getattr(_queue, "close", None)
        if close is not None:
            await close()
    _services = _queue = _auth = None


def in_memory_services(settings: Settings, clock: Clock = system_clock) -> Services:
    from shared.store.memory import InMemoryTableStore, InMemoryWorkQueue

    tables = InMemoryTableStore()
    return Services(settings, tables, InMemoryWorkQueue(clock), Journal(tables, clock), clock)


@dataclass
class Auth:
    """Sign-in and tokens, built on first use (msal, Key Vault, msgraph-sdk imports stay off the
    webhook path)."""

    identity: IdentityProvider
    vault: TokenVault
    directory: MailboxDirectory
    broker: TokenBroker
    subscriptions: SubscriptionGateway
    gateway: GraphGateway


_auth: Auth | None = None


def get_auth() -> Auth:
    global _auth
    if _auth is None:
        from shared.auth.credential import TokenBroker
        from shared.auth.keyvault import KeyVaultTokenVault
        from shared.auth.msal_provider import MsalIdentityProvider
        from shared.graph.directory import GraphMailboxDirectory
        from shared.graph.gateway import GraphGateway
        from shared.graph.governor import MailboxGovernor
        from shared.subscriptions.msgraph import MsGraphSubscriptions

        services = get_services()
        settings = services.settings
        vault = KeyVaultTokenVault(settings, services.clock)
        certificate_name = settings.client_certificate_name
        certificates = (None if certificate_name is None
                        else lambda: vault.read_certificate(certificate_name))
        identity = MsalIdentityProvider(settings, services.clock, certificates)
        broker = TokenBroker(services, identity, vault)
        gateway = GraphGateway(services, broker, MailboxGovernor())
        _auth = Auth(identity, vault, GraphMailboxDirectory(gateway, services.clock), broker,
                     MsGraphSubscriptions(gateway), gateway)
    return _auth


def get_event_writer() -> EventWriter:
    """The sync queue's handler, on this process's gateway (and so its per-mailbox governor)."""
    from shared.sync.probe import GraphEventProbe
    from shared.sync.source import GraphDeltaSource
    from shared.sync.writer import EventWriter

    services = get_services()
    gateway = get_auth().gateway
    return EventWriter(services, GraphDeltaSource(gateway, services.settings.delta_page_size),
                       GraphEventProbe(gateway))
