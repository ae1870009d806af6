"""The credential for the local Key Vault dev server: a fixed bearer token, valid only against a loopback
vault. In Azure the product uses a managed identity instead (wired later); this one exists so the real
``SecretClient`` runs unchanged against the dev server.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

from shared.clock import Clock, system_clock
from shared.config import is_loopback_url
from shared.errors import ConfigError

# Not a secret: the dev server on this machine accepts it, nothing else does.
DEV_KEY_VAULT_TOKEN = "devstack-key-vault-token"
_LIFETIME_SECONDS = 3600


class DevKeyVaultCredential:
    """azure-core async credential (``get_token`` and ``get_token_info``) returning the dev token."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        return AccessToken(DEV_KEY_VAULT_TOKEN, int(self._clock()) + _LIFETIME_SECONDS)

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return AccessTokenInfo(DEV_KEY_VAULT_TOKEN, int(self._clock()) + _LIFETIME_SECONDS)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> DevKeyVaultCredential:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None = None, exc_value: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        await self.close()


def key_vault_credential_for(url: str) -> DevKeyVaultCredential:
    """The credential for the vault at ``url``.

    :raises ConfigError: for a vault that is not on this machine (only the dev server is supported so far).
    """
    if not is_loopback_url(url):
        raise ConfigError(["KEY_VAULT_URL: only a loopback dev vault is supported until the managed identity "
                           "credential is wired"])
    return DevKeyVaultCredential()
