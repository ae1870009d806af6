"""The Key Vault dev server through the real async SecretClient (azure.keyvault.secrets.aio), following
the Key Vault secrets REST reference (https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/), with the
client's challenge flow and its trailing-slash GET as the real client sends them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from devstack.keyvault import KeyVaultServer
from shared.auth.devcredential import DEV_KEY_VAULT_TOKEN, DevKeyVaultCredential

T = TypeVar("T")


@pytest.fixture
async def client(vault: KeyVaultServer) -> AsyncIterator[SecretClient]:
    # verify_challenge_resource=False: a loopback URL is not a subdomain of vault.azure.net.
    async with SecretClient(vault.url, DevKeyVaultCredential(), verify_challenge_resource=False,
                            connection_verify=str(vault.certs.ca_pem)) as secret_client:
        yield secret_client


def _raw(vault: KeyVaultServer, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(verify=vault.certs.client_ssl_context(), timeout=10) as http:
        return http.request(method, f"{vault.url}{path}", headers=headers)


def test_first_request_gets_the_bearer_challenge(vault: KeyVaultServer):
    """401 with WWW-Authenticate: Bearer authorization=".../{tenant}", resource="https://vault.azure.net"."""
    response = _raw(vault, "GET", "/secrets/x/?api-version=7.5")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == (f'Bearer authorization="https://login.microsoftonline.com/{vault.vault.tenant_id}", '
                         'resource="https://vault.azure.net"')
    assert _raw(vault, "GET", "/secrets/x/?api-version=7.5", token="not-the-dev-token").status_code == 401


async def test_set_get_latest_and_by_version(client: SecretClient):
    """PUT /secrets/{name}, GET /secrets/{name}/ (latest, trailing slash) and /secrets/{name}/{version}."""
    first = await client.set_secret("rt-acct1-g1", "one", content_type="application/json", tags={"gen": "1"})
    second = await client.set_secret("rt-acct1-g1", "two")
    assert (await client.get_secret("rt-acct1-g1")).value == "two"
    old = await client.get_secret("rt-acct1-g1", first.properties.version)
    assert old.value == "one"
    assert old.properties.content_type == "application/json"
    assert old.properties.tags == {"gen": "1"}
    assert first.properties.version != second.properties.version
    assert second.properties.recovery_level == "Recoverable+Purgeable"


async def test_missing_secret_is_secret_not_found(client: SecretClient):
    """404 SecretNotFound."""
    with pytest.raises(ResourceNotFoundError) as raised:
        await client.get_secret("nope")
    assert raised.value.error is not None
    assert raised.value.error.code == "SecretNotFound"


async def test_list_secrets_and_versions(client: SecretClient):
    """GET /secrets and /secrets/{name}/versions, paged with nextLink (at most 25 a page)."""
    for i in range(30):
        await client.set_secret(f"s{i:02d}", "v")
    await client.set_secret("s00", "v2")
    names = [p.name async for p in client.list_properties_of_secrets()]
    assert names == [f"s{i:02d}" for i in range(30)]
    versions = [p.version async for p in client.list_properties_of_secret_versions("s00")]
    assert len(versions) == 2


async def test_update_properties_and_tags(client: SecretClient):
    """PATCH /secrets/{name}/{version}: enabled, expiry and tags; a disabled secret cannot be read (403)."""
    secret = await client.set_secret("tagged", "v")
    expires = int(time.time()) + 3600
    updated = await client.update_secret_properties("tagged", secret.properties.version, tags={"a": "b"},
                                                    expires_on=_datetime(expires), enabled=False)
    assert updated.tags == {"a": "b"}
    assert updated.expires_on is not None
    assert int(updated.expires_on.timestamp()) == expires
    with pytest.raises(HttpResponseError) as raised:
        await client.get_secret("tagged")
    assert raised.value.status_code == 403


async def test_expired_and_not_yet_valid_secrets_are_still_returned(client: SecretClient):
    """The service returns secrets outside nbf/exp (Azure/AzureKeyVault#19); switch block_outside_validity
    gives the 403 SecretExpired the attribute docs describe instead."""
    await client.set_secret("old", "v", expires_on=_datetime(int(time.time()) - 60),
                            not_before=_datetime(int(time.time()) - 120))
    assert (await client.get_secret("old")).value == "v"


async def test_expired_secret_blocked_by_switch(client: SecretClient, vault: KeyVaultServer):
    """block_outside_validity=True: 403 Forbidden, inner code SecretExpired (assumed switch)."""
    await client.set_secret("old", "v", expires_on=_datetime(int(time.time()) - 60))
    vault.vault.switches.block_outside_validity = True
    with pytest.raises(HttpResponseError) as raised:
        await client.get_secret("old")
    assert raised.value.status_code == 403


async def test_delete_soft_deletes_and_the_name_conflicts_until_purged(client: SecretClient):
    """DELETE gives a DeletedSecretBundle (recoveryId, deletedDate, scheduledPurgeDate); while deleted the name
    gives 409 Conflict (ObjectIsDeletedButRecoverable) and the secret 404; purge frees the name."""
    await client.set_secret("gone", "v")
    deleted = await _bounded(client.delete_secret("gone"))
    assert deleted.recovery_id is not None
    assert deleted.recovery_id.endswith("/deletedsecrets/gone")
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
    with pytest.raises(ResourceNotFoundError):
        await client.get_secret("gone")
    with pytest.raises(ResourceExistsError) as raised:
        await client.set_secret("gone", "again")
    assert raised.value.status_code == 409
    assert "deleted but recoverable" in str(raised.value.message)
    assert [d.name async for d in client.list_deleted_secrets()] == ["gone"]
    assert (await client.get_deleted_secret("gone")).name == "gone"
    await client.purge_deleted_secret("gone")
    with pytest.raises(ResourceNotFoundError):
        await client.get_deleted_secret("gone")
    assert (await client.set_secret("gone", "again")).value == "again"


async def test_recover_brings_every_version_back(client: SecretClient):
    """POST /deletedsecrets/{name}/recover restores the secret with its versions."""
    first = await client.set_secret("back", "one")
    await client.set_secret("back", "two")
    await _bounded(client.delete_secret("back"))
    recovered = await _bounded(client.recover_deleted_secret("back"))
    assert recovered.name == "back"
    assert (await client.get_secret("back")).value == "two"
    assert (await client.get_secret("back", first.properties.version)).value == "one"


async def test_deletion_in_progress_is_object_being_deleted(client: SecretClient, vault: KeyVaultServer):
    """Deletion is not instant: the deleted secret is 404 until it completes, which the SDK's delete poller
    waits for, and the name gives 409 ObjectIsBeingDeleted meanwhile (delete_seconds, assumed switch)."""
    await client.set_secret("slow", "v")
    vault.vault.switches.delete_seconds = 30
    deleted = _raw(vault, "DELETE", "/secrets/slow?api-version=7.5", token=DEV_KEY_VAULT_TOKEN)
    assert deleted.status_code == 200
    with pytest.raises(ResourceNotFoundError):
        await client.get_deleted_secret("slow")
    with pytest.raises(ResourceExistsError) as raised:
        await client.set_secret("slow", "again")
    assert "being deleted" in str(raised.value.message)
    vault.vault.clock.advance(31)
    assert (await client.get_deleted_secret("slow")).name == "slow"


def test_control_lists_stored_values(vault: KeyVaultServer):
    """/_sim/secrets lists every stored value, for the product's leak scan."""
    vault.vault.set("scan", {"value": "needle"})
    response = _raw(vault, "GET", "/_sim/secrets")
    assert response.json()["secrets"]["scan"] == ["needle"]


async def _bounded(operation: Awaitable[T]) -> T:
    # The SDK's delete and recover pollers poll until the server agrees; a wrong server would loop forever.
    return await asyncio.wait_for(operation, timeout=10)


def _datetime(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
