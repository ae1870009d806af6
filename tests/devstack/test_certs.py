"""The local CA: made once with cryptography, reused afterwards; the server certificate names
IP:127.0.0.1 and DNS:localhost so clients verify it normally (platform-notes §5, §6)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from devstack.certs import ensure_certs


def test_ca_and_server_certificate_are_made_once_and_reused(tmp_path: Path):
    first = ensure_certs(tmp_path)
    ca_bytes = first.ca_pem.read_bytes()
    server = x509.load_pem_x509_certificate(first.server_pem.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_bytes)

    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    second = ensure_certs(tmp_path)
    assert second.ca_pem.read_bytes() == ca_bytes
    assert (first.server_key.stat().st_mode & 0o777) == 0o600
