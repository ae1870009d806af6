"""The local CA: made once with cryptography, reused afterwards; the server certificate names
IP:127.0.0.1 and DNS:localhost so clients verify it normally (msal accepts only https authorities, and the Key
Vault client sends its bearer token only over https). Stand-ins started at once make one consistent set."""

from __future__ import annotations

import fcntl
import ipaddress
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from devstack.certs import ca_dir, ensure_certs


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


def _make(directory: str, go: Any = None) -> None:
    if go is not None:
        go.wait(30)
    ensure_certs(Path(directory))


def test_a_second_stand_in_waits_for_the_one_making_the_certificates(tmp_path: Path):
    """While one process holds the folder's lock (it is making the set), another one starting on the fresh
    folder writes nothing; once the lock is released it makes (or reuses) one set the CA signed."""
    tmp_path.mkdir(exist_ok=True)
    context = multiprocessing.get_context("fork")
    go = context.Event()
    # Forked before the lock is taken: a child sharing the test's open lock file would share its lock too.
    worker = context.Process(target=_make, args=(str(tmp_path), go))
    worker.start()
    with open(tmp_path / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        go.set()
        worker.join(1.5)
        assert worker.is_alive()
        assert not any((tmp_path / name).exists() for name in ("ca.pem", "server.pem", "server-key.pem"))
    worker.join(60)
    assert worker.exitcode == 0
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()))


def test_stand_ins_started_at_once_agree_on_one_set(tmp_path: Path):
    """Four processes on a fresh folder at once: the server certificate left is one the final CA signed."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_make, args=(str(tmp_path),)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()))


def test_devstack_ca_dir_chooses_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEVSTACK_CA_DIR", str(tmp_path / "elsewhere"))
    assert ca_dir() == tmp_path / "elsewhere"
    assert ensure_certs().ca_pem == tmp_path / "elsewhere" / "ca.pem"
    assert (tmp_path / "elsewhere" / "ca.pem").exists()
