"""Self-signed RSA certificates for the certificate-credential tests, made with cryptography, in the
shapes Key Vault exports a certificate's backing secret (PFX as base64, or PEM with key and chain)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class KeyAndCertificate:
    key: rsa.RSAPrivateKey = field(repr=False)
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    @property
    def pfx_base64(self) -> str:
        """The value of a Key Vault certificate's secret with content type application/x-pkcs12."""
        return base64.b64encode(pkcs12.serialize_key_and_certificates(
            b"app", self.key, self.cert, None, serialization.NoEncryption())).decode()

    @property
    def pem_bundle(self) -> str:
        """The value with content type application/x-pem-file: the key, then the certificate."""
        return self.key_pem + self.cert_pem

    def thumbprint(self, algorithm: hashes.HashAlgorithm) -> bytes:
        return self.cert.fingerprint(algorithm)


def make_certificate(subject: str = "outlook-sync test", *, days: float = 30,
                     starts: datetime | None = None) -> KeyAndCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start = starts or datetime.now(UTC) - timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=days)).sign(key, hashes.SHA256()))
    return KeyAndCertificate(key, cert)
