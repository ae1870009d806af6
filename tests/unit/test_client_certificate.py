"""Reading the app's certificate credential out of a Key Vault certificate's backing secret, and when
the provider reads it again ("About Azure Key Vault certificates",
https://learn.microsoft.com/azure/key-vault/certificates/about-certificates)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth.certificate import PEM, PKCS12, ClientCertificate, parse_certificate_secret
from shared.auth.msal_provider import CERTIFICATE_RELOAD_SECONDS, MsalIdentityProvider
from shared.config import Settings
from shared.errors import ConfigError
from tests.certificates import make_certificate
from tests.unit.test_config import sample_values


@pytest.mark.parametrize("content_type", [PKCS12, PEM])
def test_both_export_formats_give_the_key_and_the_sha256_thumbprint(content_type):
    made = make_certificate()
    value = made.pfx_base64 if content_type == PKCS12 else made.pem_bundle
    parsed = parse_certificate_secret("app-cert", value, content_type, "v1")
    assert parsed.sha256_thumbprint == made.thumbprint(hashes.SHA256()).hex()
    assert parsed.msal_credential() == {"private_key": made.key_pem, "public_certificate": made.cert_pem}
    assert "PRIVATE" not in repr(parsed)


def test_a_pem_with_a_chain_uses_the_certificate_of_the_key():
    made, issuer = make_certificate("leaf"), make_certificate("issuer")
    parsed = parse_certificate_secret("app-cert", issuer.cert_pem + made.pem_bundle, PEM, "v1")
    assert parsed.certificate_pem == made.cert_pem


@pytest.mark.parametrize(("value", "content_type"), [
    ("bm90IGEgcGZ4", PKCS12),  # base64 of "not a pfx"
    ("%%%", PKCS12),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", PEM),
    ("anything", "text/plain"),
])
def test_what_is_not_a_certificate_with_its_key_is_a_configuration_error_that_quotes_nothing(value, content_type):
    with pytest.raises(ConfigError) as raised:
        parse_certificate_secret("app-cert", value, content_type, "v1")
    assert raised.value.problems[0].startswith("CLIENT_CERTIFICATE_NAME (app-cert): ")
    assert value not in str(raised.value)


def test_an_ec_key_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    made = make_certificate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(made.cert.not_valid_before_utc)
            .not_valid_after(made.cert.not_valid_after_utc).sign(key, hashes.SHA256()))
    pem = (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)).decode()
    with pytest.raises(ConfigError, match="not RSA"):
        parse_certificate_secret("app-cert", pem, PEM, "v1")


async def test_the_certificate_is_read_once_an_hour_or_at_once_after_a_refusal():
    made = make_certificate()
    versions = ["v1"]
    reads: list[str] = []
    now = [1_000.0]

    async def source() -> ClientCertificate:
        reads.append(versions[-1])
        return parse_certificate_secret("app-cert", made.pfx_base64, PKCS12, versions[-1])

    settings = Settings.from_env(sample_values() | {"CLIENT_SECRET": "", "CLIENT_CERTIFICATE_NAME": "app-cert"})
    provider = MsalIdentityProvider(settings, lambda: now[0], source)
    assert await provider._read_certificate() is False  # the first read is not a change
    now[0] += CERTIFICATE_RELOAD_SECONDS - 1
    await provider._read_certificate()
    assert reads == ["v1"]
    now[0] += 2
    await provider._read_certificate()
    assert reads == ["v1", "v1"]
    assert await provider._read_certificate(again=True) is False  # same version: no point retrying
    versions.append("v2")
    assert await provider._read_certificate(again=True) is True
