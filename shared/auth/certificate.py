"""The application's certificate credential: what a Key Vault certificate's backing secret holds, in
the form msal signs client assertions with.

A Key Vault certificate is readable with its private key as the secret of the same name, whose
content type says the format: ``application/x-pkcs12`` (base64 of a PFX, the default) or
``application/x-pem-file`` ("About Azure Key Vault certificates",
https://learn.microsoft.com/azure/key-vault/certificates/about-certificates). Given the private key
and the certificate, msal signs with PS256 and names the certificate by its SHA-256 thumbprint
(``x5t#S256``), as "Microsoft identity platform application authentication certificate credentials"
describes (https://learn.microsoft.com/entra/identity-platform/certificate-credentials). Pure code:
no I/O, so the parsing is tested without a vault.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.errors import ConfigError

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"


@dataclass(frozen=True)
class ClientCertificate:
    """One version of the certificate. ``version`` tells a rotation apart from a reread."""

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    sha256_thumbprint: str
    not_after: float
    version: str

    def msal_credential(self) -> dict[str, Any]:
        # No "thumbprint": given one, msal falls back to SHA-1 and RS256 (kept for ADFS only).
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


# Reads the current version of the named certificate (Key Vault in Azure, the dev server locally).
CertificateSource = Callable[[], Awaitable[ClientCertificate]]


def parse_certificate_secret(name: str, value: str, content_type: str | None, version: str) -> ClientCertificate:
    """The certificate and key in a backing secret. Errors name the setting and the problem, never any
    part of the value.

    :raises ConfigError: not a certificate with an RSA private key in a format Key Vault exports."""
    setting = f"CLIENT_CERTIFICATE_NAME ({name})"
    try:
        if content_type == PEM:
            key, certificate = _from_pem(value.encode())
        elif content_type in (PKCS12, None, ""):
            key, certificate = _from_pkcs12(base64.b64decode(value, validate=True))
        else:
            raise ConfigError([f"{setting}: content type {content_type!r} is neither {PKCS12} nor {PEM}"])
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError([f"{setting}: the secret does not hold a certificate with its private key "
                           "(is it a Key Vault certificate created with an exportable key?)"]) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        # The identity platform's assertions are RS256 or PS256: RSA keys only.
        raise ConfigError([f"{setting}: the key is not RSA; the identity platform signs assertions with RSA"])
    return ClientCertificate(
        private_key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex(),
        not_after=certificate.not_valid_after_utc.timestamp(),
        version=version,
    )


def _from_pkcs12(data: bytes) -> tuple[Any, x509.Certificate]:
    key, certificate, _ = pkcs12.load_key_and_certificates(data, None)
    if key is None or certificate is None:
        raise ValueError("no key or no certificate")
    return key, certificate


def _from_pem(data: bytes) -> tuple[Any, x509.Certificate]:
    certificates = x509.load_pem_x509_certificates(data)
    key = serialization.load_pem_private_key(data, None)
    # The PEM may carry the chain too; the credential is the one whose public key matches the key.
    for certificate in certificates:
        if _public_key_der(certificate.public_key()) == _public_key_der(key.public_key()):
            return key, certificate
    raise ValueError("no certificate matches the key")


def _public_key_der(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
