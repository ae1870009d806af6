"""A local certificate authority for the HTTPS stand-ins (Entra ID / Graph simulator, Key Vault dev server).

msal accepts only https authorities and the Key Vault client refuses bearer tokens over http, so the stand-ins serve
TLS with a server certificate from this CA. Clients trust the CA
through configuration (LOCAL_CA_BUNDLE); nothing turns verification off.

Files live in ``.devstack/ca/`` (gitignored) or the folder the devstack setting ``DEVSTACK_CA_DIR`` names, made on
first use and reused afterwards. Making them holds an exclusive lock on ``.lock`` in that folder, so stand-ins
started at the same moment on a fresh checkout make one CA and one server certificate signed by it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CA_DIR = ROOT / ".devstack" / "ca"
CA_DIR_SETTING = "DEVSTACK_CA_DIR"


def ca_dir() -> Path:
    """The folder of the local CA: ``DEVSTACK_CA_DIR`` when set, else ``.devstack/ca``."""
    configured = os.environ.get(CA_DIR_SETTING)
    return Path(configured).expanduser().resolve() if configured else DEFAULT_CA_DIR


@dataclass(frozen=True)
class CertPaths:
    ca_pem: Path
    server_pem: Path
    server_key: Path

    def server_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_pem, self.server_key)
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))


def ensure_certs(directory: Path | None = None) -> CertPaths:
    """The CA and server certificate in ``directory`` (default: ``ca_dir()``), generated if any file is missing
    or expiring."""
    directory = directory or ca_dir()
    paths = CertPaths(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if _complete(paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not _complete(paths):  # another process may have made them while this one waited
            _generate(paths)
    return paths


def _complete(paths: CertPaths) -> bool:
    """All three files present, the server certificate not expiring and signed by this CA."""
    if not all(p.exists() for p in (paths.ca_pem, paths.server_pem, paths.server_key)):
        return False
    server = x509.load_pem_x509_certificate(paths.server_pem.read_bytes())
    ca = x509.load_pem_x509_certificate(paths.ca_pem.read_bytes())
    try:
        server.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return server.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7)


def _generate(paths: CertPaths) -> None:
    ca_key, ca_cert = _make_ca()
    server_key, server_cert = _make_server_cert(ca_key, ca_cert)
    _write(paths.server_key, server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
    _write(paths.server_pem, server_cert.public_bytes(serialization.Encoding.PEM)
           + ca_cert.public_bytes(serialization.Encoding.PEM))
    # The CA last: its presence is what marks the set complete for a concurrent reader.
    _write(paths.ca_pem, ca_cert.public_bytes(serialization.Encoding.PEM))


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    # Atomic replace, so a process starting at the same moment never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Outlook sync devstack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Outlook sync devstack local CA"))
        .issuer_name(_name("Outlook sync devstack local CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate) -> tuple[rsa.RSAPrivateKey,
                                                                                      x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
