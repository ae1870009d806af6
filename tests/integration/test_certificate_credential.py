"""The app's certificate credential end to end (review finding 6): the certificate's backing secret in
the Key Vault dev server, read by the product through the real SecretClient, client assertions signed
by the real msal and verified by the Microsoft 365 simulator ("Microsoft identity platform application
authentication certificate credentials",
https://learn.microsoft.com/entra/identity-platform/certificate-credentials; "About Azure Key Vault
certificates", https://learn.microsoft.com/azure/key-vault/certificates/about-certificates)."""

from __future__ import annotations

import json

import pytest
from azure.keyvault.secrets.aio import SecretClient

from shared.accounts.status import APP_ALARM
from shared.auth.certificate import PEM, PKCS12
from shared.auth.keyvault import key_vault_credential
from shared.errors import AppAuthError
from shared.wiring import get_services
from tests.certificates import KeyAndCertificate, make_certificate
from tests.integration.conftest import SAMPLE
from tests.integration.test_connect_real_clients import (
    RETURN_URL,
    stack,  # noqa: F401 (the fixture)
)

APP = SAMPLE["CLIENT_ID"]
NAME = "app-cert"


async def _import(certificate: KeyAndCertificate, content_type: str = PKCS12) -> None:
    """What importing a certificate into Key Vault leaves readable: a secret of the same name."""
    settings = get_services().settings
    value = certificate.pfx_base64 if content_type == PKCS12 else certificate.pem_bundle
    async with SecretClient(settings.key_vault_url, key_vault_credential(settings), verify_challenge_resource=False,
                            connection_verify=settings.local_ca_bundle) as client:
        await client.set_secret(NAME, value, content_type=content_type)


@pytest.fixture
def with_certificate(app_env):
    app_env.setenv("CLIENT_SECRET", "")
    app_env.setenv("CLIENT_CERTIFICATE_NAME", NAME)


@pytest.mark.parametrize("content_type", [PKCS12, PEM])
async def test_connect_and_refresh_with_a_certificate(with_certificate, stack, content_type):  # noqa: F811
    certificate = make_certificate()
    await _import(certificate, content_type)
    stack.control(f"apps/{APP}/certificates", {"certificate": certificate.cert_pem})
    stack.sim.state.apps[APP].secrets.clear()  # no secret to fall back on: the certificate is the credential

    account, confirmed = await stack.connect()
    assert confirmed.status == 200, confirmed.text
    stack.auth.broker.forget(account)
    assert (await stack.auth.broker.access_token(account)).token


async def test_a_rotated_certificate_is_picked_up_when_entra_refuses_the_old_one(with_certificate, stack):  # noqa: F811
    old, new = make_certificate("old"), make_certificate("new")
    await _import(old)
    old_key = stack.control(f"apps/{APP}/certificates", {"certificate": old.cert_pem})["keyId"]
    stack.sim.state.apps[APP].secrets.clear()
    account, _ = await stack.connect()

    # Rotation: a new version in Key Vault, the new certificate on the app registration, the old one removed.
    await _import(new)
    stack.control(f"apps/{APP}/certificates", {"certificate": new.cert_pem})
    stack.session.delete(f"{stack.sim.url}/_sim/apps/{APP}/certificates/{old_key}", timeout=10).raise_for_status()

    stack.auth.broker.forget(account)
    assert (await stack.auth.broker.access_token(account)).token  # refused with the old, retried with the new


async def test_a_certificate_without_its_private_key_raises_the_app_alarm(with_certificate, stack, caplog):  # noqa: F811
    """Like a refused secret: the app cannot authenticate, so one app alarm (health says so), and the log
    says what is wrong without quoting the value."""
    settings = get_services().settings
    async with SecretClient(settings.key_vault_url, key_vault_credential(settings), verify_challenge_resource=False,
                            connection_verify=settings.local_ca_bundle) as client:
        await client.set_secret(NAME, make_certificate().cert_pem, content_type=PEM)
    with pytest.raises(AppAuthError) as raised:
        await stack.auth.identity.start("https://localhost/callback")
    assert raised.value.reason == "client_certificate_unusable"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "CLIENT_CERTIFICATE_NAME (app-cert): the secret does not hold a certificate" in logged
    assert "BEGIN CERTIFICATE" not in logged

    link = await stack.connector.create_session(
        b'{"external_ref": "saas-1", "return_url": "' + RETURN_URL.encode() + b'"}')
    opened = await stack.connector.open_link(json.loads(link.body)["url"].rsplit("/", 1)[1])
    assert opened.status == 503, opened.text  # the product's page, not a crash
    assert await stack.repo.get_app_state(APP_ALARM) is not None
