"""The product's dev credential against the Key Vault dev server, through the real async SecretClient."""

from __future__ import annotations

import pytest
from azure.keyvault.secrets.aio import SecretClient

from devstack.keyvault import KeyVaultServer
from shared.auth.devcredential import DevKeyVaultCredential, key_vault_credential_for
from shared.errors import ConfigError


def test_only_a_loopback_vault_gets_the_dev_credential():
    """The dev credential is for the local vault only; a real vault must not receive a static token."""
    assert isinstance(key_vault_credential_for("https://127.0.0.1:7444"), DevKeyVaultCredential)
    assert isinstance(key_vault_credential_for("https://localhost:7444/"), DevKeyVaultCredential)
    with pytest.raises(ConfigError):
        key_vault_credential_for("https://contoso.vault.azure.net")


async def test_secret_client_round_trip_with_the_dev_credential(vault: KeyVaultServer):
    """SecretClient answers the dev server's 401 challenge with the dev credential's token,
    trusting the local CA through a bundle path as the product's LOCAL_CA_BUNDLE does."""
    credential = key_vault_credential_for(vault.url)
    async with credential, SecretClient(vault.url, credential, verify_challenge_resource=False,
                                        connection_verify=str(vault.certs.ca_pem)) as client:
        await client.set_secret("conn-abc-g1", '{"refresh_token": "1.AfakeForTest"}')
        assert (await client.get_secret("conn-abc-g1")).value == '{"refresh_token": "1.AfakeForTest"}'


async def test_credential_speaks_both_azure_core_protocols():
    """get_token (AsyncTokenCredential) and get_token_info (AsyncSupportsTokenInfo), both unexpired."""
    async with DevKeyVaultCredential() as credential:
        token = await credential.get_token("https://vault.azure.net/.default", enable_cae=True)
        info = await credential.get_token_info("https://vault.azure.net/.default", options={"enable_cae": True})
    assert token.token == info.token
    assert info.expires_on > 0
