"""The README run command (`bash devstack/run.sh`, i.e. `python -m devstack up`) in a subprocess:
Azurite and the runner serving function_app:app, stopped with SIGINT. Non-default ports so it can
run beside a developer's stack."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devstack.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.azurite


def serve_health_then_sigint(command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> str:
    """Start ``command``, check GET /api/health on ``port``, stop it with SIGINT; its output."""
    with log.open("wb") as out:
        # Free ports for the stand-ins and the demo page too, so this runs beside a developer's stack.
        ports = {name: str(free_port()) for name in
                 ("DEVSTACK_M365_PORT", "DEVSTACK_KEYVAULT_PORT", "DEVSTACK_DEMO_PORT")}
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", **ports, **(env or {})})
    try:
        response = None
        deadline = time.monotonic() + 60
        while response is None and time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None, log.read_text()
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
        assert (httpx.get(f"http://127.0.0.1:{port}/api/nothing", timeout=2)).status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert "Stopped." in output
    return output


def test_run_command_serves_health_and_stops_on_sigint(tmp_path):
    port = free_port()
    output = serve_health_then_sigint(["bash", "devstack/run.sh", "--port", str(port), "--azurite-ports", "auto"],
                                      port, tmp_path / "up.log")
    # A clean stop: the app's clients are closed (no "Unclosed client session"), and no line is withheld.
    assert "Unclosed" not in output
    assert "redaction failed" not in output
    found = re.search(r"Azurite\s+blob/queue/table on 127\.0\.0\.1:(\d+)/(\d+)/(\d+)", output)
    assert found, output
    for azurite_port in map(int, found.groups()):  # Azurite went down with the stack
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", azurite_port), timeout=1):
            pass


def test_runner_command_serves_the_app_alone(tmp_path, azurite):
    port = free_port()
    # Alone, the runner uses the storage its settings name: here the test session's Azurite.
    output = serve_health_then_sigint([".venv/bin/python", "-m", "devstack", "runner", "--port", str(port)],
                                      port, tmp_path / "runner.log", {"AzureWebJobsStorage": azurite.connection_string})
    assert "Azurite" not in output
