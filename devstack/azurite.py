"""Start and stop Azurite (from the project's node_modules) with its data in a temporary folder.

Flags measured on the CI machines: --disableTelemetry stops an outbound attempt,
--skipApiVersionCheck lets azure-storage-queue 12.18 (x-ms-version 2026-10-06) talk to Azurite 3.35.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

DEFAULT_PORTS = (10000, 10001, 10002)  # blob, queue, table: Azurite's and the sample settings' defaults


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT};"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclass
class Azurite:
    """One Azurite process. ``ports`` None picks free ports (tests); the run command uses the defaults."""

    ports: tuple[int, int, int] | None = None
    in_memory: bool = False  # benchmarks: no disk persistence pauses (Azurite saves its database periodically)
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None

    @property
    def connection_string(self) -> str:
        assert self.ports is not None, "Azurite is not started"
        return connection_string(*self.ports)

    def start(self, timeout: float = 30.0) -> Azurite:
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: run devstack/bootstrap.sh")
        if self.ports is None:
            self.ports = (free_port(), free_port(), free_port())
        for port in self.ports:
            if _wait_listening(port, time.monotonic()):
                raise RuntimeError(f"port {port} is already in use: is another Azurite running?")
        self.data_dir = Path(tempfile.mkdtemp(prefix="azurite-"))
        blob, queue, table = self.ports
        args = [
            str(AZURITE_BIN), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
            *(["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.data_dir)]),
            "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
        ]
        log = open(self.data_dir / "azurite.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            if not _wait_listening(port, deadline):
                self.stop()
                raise RuntimeError(f"Azurite did not listen on port {port} within {timeout:.0f} s")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.data_dir is not None and not os.environ.get("KEEP_AZURITE_DATA"):
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
