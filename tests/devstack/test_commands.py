"""The commands and the demo tenant: `python -m devstack m365` / `keyvault` start one server each and print
its URL and the CA path; the demo seed is usable with the sample settings' app; state survives a restart
through the JSON file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import msal
import pytest
import requests

from devstack.certs import ROOT, CertPaths
from devstack.m365.control import DEMO_REDIRECT_URI, product_app_credentials, seed_demo
from devstack.m365.server import Simulator
from devstack.simulators import start_simulator, start_simulators
from tests.devstack.world import World, browser


@pytest.mark.parametrize("command", ["m365", "keyvault"])
def test_command_starts_prints_and_stops(command: str, certs: CertPaths):
    args = [sys.executable, "-m", "devstack", command, "--port", "0"] + (["--no-seed"] if command == "m365" else [])
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(30, process.kill)  # bounds the blocking reads below if the server hangs
    watchdog.start()
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = re.search(r"https://127\.0\.0\.1:\d+", first)
        assert url, first
        assert "Local CA" in process.stdout.readline()
        session = _session(certs)
        if command == "m365":
            assert session.get(f"{url.group(0)}/_sim/health", timeout=5).json() == {"status": "ok"}
        else:
            assert session.get(f"{url.group(0)}/secrets?api-version=7.5", timeout=5).status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()


def _session(certs: CertPaths) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(certs.ca_pem)
    return session


def test_demo_tenant_works_with_the_sample_settings_app(world: World):
    """The demo seed: the product's CLIENT_ID/CLIENT_SECRET from local.settings.sample.json, two users with
    calendars, the product's callback as redirect URI."""
    world.state.reset()
    seed_demo(world.state)
    client_id, secret = product_app_credentials()
    app = msal.ConfidentialClientApplication(client_id, client_credential=secret,
                                             authority=f"{world.sim.url}/organizations", instance_discovery=False,
                                             http_client=world.session)
    flow = app.initiate_auth_code_flow(["Calendars.ReadWrite", "User.Read"], redirect_uri=DEMO_REDIRECT_URI,
                                       response_mode="form_post")
    result = app.acquire_token_by_auth_code_flow(flow, world.browser(flow["auth_uri"], "megan@contoso.test"))
    assert result["id_token_claims"]["preferred_username"] == "megan@contoso.test"
    calendars = world.session.get(f"{world.sim.graph_url}/me/calendars", timeout=10,
                                  headers={"Authorization": f"Bearer {result['access_token']}"}).json()
    assert [c["name"] for c in calendars["value"]] == ["Calendar", "Team"]


def test_state_file_keeps_the_directory_and_refresh_tokens(tmp_path: Path, certs: CertPaths):
    """Persistence for the local demo: a restarted simulator loads the seeded directory and honours refresh
    tokens issued before the restart."""
    state_file = tmp_path / "m365.json"
    client_id, secret = product_app_credentials()
    session = _session(certs)
    first = start_simulator(port=0, state_file=state_file)
    try:
        app = msal.ConfidentialClientApplication(client_id, client_credential=secret,
                                                 authority=f"{first.url}/organizations", instance_discovery=False,
                                                 http_client=session)
        flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=DEMO_REDIRECT_URI, response_mode="form_post")
        refresh_token = app.acquire_token_by_auth_code_flow(
            flow, browser(session, first.url, flow["auth_uri"], "adele@contoso.test"))["refresh_token"]
    finally:
        first.stop()
    second: Simulator = start_simulator(port=0, state_file=state_file)
    try:
        assert second.state.find_user("megan@contoso.test") is not None
        again = msal.ConfidentialClientApplication(client_id, client_credential=secret,
                                                   authority=f"{second.url}/organizations", instance_discovery=False,
                                                   http_client=session)
        assert "access_token" in again.acquire_token_by_refresh_token(refresh_token, ["User.Read"])
    finally:
        second.stop()


def test_start_simulators_for_up(tmp_path: Path):
    """The hook `up` calls: both servers, the demo tenant, a handle that describes and stops them."""
    running = start_simulators(m365_port=0, keyvault_port=0, state_file=tmp_path / "state.json")
    try:
        lines = running.describe()
        assert running.simulator.state.switches.allow_http_loopback_urls  # the runner's webhook URL
        assert running.simulator.url in lines[0]
        assert running.keyvault.url in lines[1]
        assert str(running.simulator.certs.ca_pem) in lines[2]
        assert running.simulator.state.find_user("adele@contoso.test") is not None
        assert (tmp_path / "state.json").exists()
    finally:
        running.stop()
    assert running.simulator.server is None


def test_seeded_mailbox_states(world: World):
    """Mailbox states are seedable: a disabled mailbox and a deleted user from the seed itself."""
    created = world.control("POST", "seed", {"tenants": [{"name": "T", "domain": "t.test", "users": [
        {"upn": "off@t.test", "displayName": "Off Line", "mailbox": "notEnabledForRestApi"},
        {"upn": "gone@t.test", "displayName": "Gone Away", "deleted": True}]}]})
    off, gone = (world.state.users[i] for i in created["users"])
    assert off.mailbox == "notEnabledForRestApi"
    assert gone.deleted
