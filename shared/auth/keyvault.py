"""TokenVault on Azure Key Vault through the async azure-keyvault-secrets client.

Secret names carry the connection generation (``acct-{account}-g{n}``), so a name is never reused
and a soft-deleted secret never blocks a reconnect. Key Vault's limits and the envelope-encryption
path beyond them are in docs/tokens.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.certificate import ClientCertificate, parse_certificate_secret
from shared.auth.ports import StoredSecret
from shared.clock import Clock, system_clock
from shared.config import Settings, is_loopback_url
from shared.errors import ConfigError

CONTENT_TYPE = "application/vnd.outlook-sync.msal-refresh-state+json"


def key_vault_credential(settings: Settings, clock: Clock = system_clock) -> Any:
    """The dev credential for a vault on this machine (the local dev server), else azure-identity's
    default chain (the Function App's managed identity in Azure)."""
    if is_loopback_url(settings.key_vault_url):
        from shared.auth.devcredential import DevKeyVaultCredential

        return DevKeyVaultCredential(clock)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


class KeyVaultTokenVault:
    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self._clock = clock
        loopback = is_loopback_url(settings.key_vault_url)
        options: dict[str, Any] = {}
        if settings.local_ca_bundle:
            options["connection_verify"] = settings.local_ca_bundle
        # The challenge resource check compares the vault's host with vault.azure.net; a loopback dev
        # vault cannot match it, so only there is it off.
        self._client = SecretClient(settings.key_vault_url, key_vault_credential(settings, clock),
                                    verify_challenge_resource=not loopback, **options)

    async def close(self) -> None:
        await self._client.close()

    async def put(self, name: str, value: str, *, tags: Mapping[str, str], expires_on: float | None) -> None:
        await self._client.set_secret(name, value, tags=dict(tags), content_type=CONTENT_TYPE,
                                      expires_on=_datetime(expires_on))

    async def get(self, name: str) -> StoredSecret | None:
        try:
            secret = await self._client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if _disabled(exc):  # treat it as absent
                return None
            raise
        props = secret.properties
        expires = props.expires_on.timestamp() if props.expires_on else None
        if expires is not None and expires <= self._clock():
            return None
        updated = props.updated_on or props.created_on
        return StoredSecret(secret.value or "", updated.timestamp() if updated else 0.0, expires)

    async def clear_expiry(self, name: str) -> None:
        # Properties cannot unset an expiry (None means "leave it"), so write the value again without one.
        secret = await self._client.get_secret(name)
        await self._client.set_secret(name, secret.value or "", tags=dict(secret.properties.tags or {}),
                                      content_type=CONTENT_TYPE)

    async def delete(self, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self._client.delete_secret(name)

    async def read_certificate(self, name: str) -> ClientCertificate:
        """The current version of the Key Vault certificate ``name`` with its private key, read as the
        secret that backs it (the same vault, so the same client and role: Key Vault Secrets User or
        Officer suffices, no certificates permission).

        :raises ConfigError: absent, disabled, or not a certificate with an exportable RSA key."""
        try:
            secret = await self._client.get_secret(name)
        except ResourceNotFoundError:
            raise ConfigError([f"CLIENT_CERTIFICATE_NAME ({name}): no such certificate in KEY_VAULT_URL's vault"]
                              ) from None
        except HttpResponseError as exc:
            if _disabled(exc):
                raise ConfigError([f"CLIENT_CERTIFICATE_NAME ({name}): the certificate is disabled"]) from None
            raise
        return parse_certificate_secret(name, secret.value or "", secret.properties.content_type,
                                        secret.properties.version or "")


def _disabled(error: HttpResponseError) -> bool:
    """Key Vault refuses to read a disabled secret with 403 Forbidden."""
    return error.status_code == 403 and "disabled" in str(error.message or "").lower()


def _datetime(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch is not None else None
