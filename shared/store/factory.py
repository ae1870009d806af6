"""Build the Azure stores from ``StorageSettings``: a connection string (Azurite) or service URIs
with a managed identity, the identity-based form of AzureWebJobsStorage that the host also reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.config import StorageSettings

if TYPE_CHECKING:  # imported on use: the webhook path builds a queue and must not load azure-data-tables
    from shared.store.azure_queues import AzureWorkQueue
    from shared.store.azure_tables import AzureTableStore

# Azurite 3.35 accepts x-ms-version up to 2025-11-05; azure-storage-queue 12.18 sends 2026-10-06
# (measured). Azure accepts the older version too, so pin it everywhere.
QUEUE_API_VERSION = "2025-11-05"


def _credential(storage: StorageSettings) -> Any:
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if (storage.credential or "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=storage.client_id) if storage.client_id \
            else ManagedIdentityCredential()
    return DefaultAzureCredential()


def build_table_store(storage: StorageSettings) -> AzureTableStore:
    from azure.data.tables.aio import TableServiceClient

    from shared.store.azure_tables import AzureTableStore

    if storage.connection_string:
        return AzureTableStore(TableServiceClient.from_connection_string(storage.connection_string))
    assert storage.table_uri is not None
    return AzureTableStore(TableServiceClient(storage.table_uri, credential=_credential(storage)))


def build_work_queue(storage: StorageSettings) -> AzureWorkQueue:
    from azure.storage.queue.aio import QueueServiceClient

    from shared.store.azure_queues import AzureWorkQueue

    if storage.connection_string:
        return AzureWorkQueue(QueueServiceClient.from_connection_string(
            storage.connection_string, api_version=QUEUE_API_VERSION))
    assert storage.queue_uri is not None
    return AzureWorkQueue(QueueServiceClient(storage.queue_uri, credential=_credential(storage),
                                             api_version=QUEUE_API_VERSION))
