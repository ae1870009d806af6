"""Commands and the ``up`` hook for the HTTPS stand-ins: the Microsoft 365 simulator and the Key Vault dev
server. Ports default to 7443 and 7444 (the sample settings' AUTHORITY_HOST, GRAPH_BASE_URL and
KEY_VAULT_URL); DEVSTACK_M365_PORT and DEVSTACK_KEYVAULT_PORT override them for ``up``."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from devstack.certs import ROOT, ensure_certs
from devstack.keyvault import DEFAULT_PORT as KEYVAULT_PORT
from devstack.keyvault import KeyVaultServer, Vault
from devstack.m365.control import DEMO_TENANT_ID, seed_demo
from devstack.m365.server import DEFAULT_PORT as M365_PORT
from devstack.m365.server import Simulator, load_or_new_state

DEMO_STATE_FILE = ROOT / ".devstack" / "m365-state.json"


@dataclass
class RunningSimulators:
    simulator: Simulator
    keyvault: KeyVaultServer

    def describe(self) -> list[str]:
        return [
            f"M365 sim  {self.simulator.url}  (AUTHORITY_HOST; GRAPH_BASE_URL {self.simulator.graph_url}; "
            f"control {self.simulator.url}/_sim/)",
            f"Key Vault {self.keyvault.url}  (KEY_VAULT_URL)",
            f"Local CA  {self.simulator.certs.ca_pem}  (LOCAL_CA_BUNDLE)",
        ]

    def stop(self) -> None:
        self.simulator.stop()
        self.keyvault.stop()


def start_simulator(port: int = M365_PORT, state_file: Path | None = None, seed: bool = True) -> Simulator:
    """The simulator, with the saved state if ``state_file`` exists, else seeded with the demo tenant; it admits
    the local runner's http://127.0.0.1 notification URLs."""
    state, loaded = load_or_new_state(state_file)
    if seed and not loaded:
        seed_demo(state)
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state.save(state_file)
    # The local runner serves the product's webhook on http://127.0.0.1 (Create subscription,
    # https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions, wants https).
    state.switches.allow_http_loopback_urls = True
    return Simulator(state=state, port=port, certs=ensure_certs(), state_file=state_file).start()


def start_keyvault(port: int = KEYVAULT_PORT) -> KeyVaultServer:
    return KeyVaultServer(Vault(tenant_id=DEMO_TENANT_ID), port=port, certs=ensure_certs()).start()


def start_simulators(m365_port: int | None = None, keyvault_port: int | None = None,
                     state_file: Path | None = DEMO_STATE_FILE) -> RunningSimulators:
    """Both stand-ins for ``up``: the demo tenant (kept in ``state_file`` across restarts) and an empty vault."""
    simulator = start_simulator(m365_port or int(os.environ.get("DEVSTACK_M365_PORT", M365_PORT)), state_file)
    try:
        keyvault = start_keyvault(keyvault_port or int(os.environ.get("DEVSTACK_KEYVAULT_PORT", KEYVAULT_PORT)))
    except BaseException:
        simulator.stop()
        raise
    return RunningSimulators(simulator, keyvault)


def wait_for_stop() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass


def run_m365(args: argparse.Namespace) -> int:
    simulator = start_simulator(args.port, args.state, seed=not args.no_seed)
    print(f"M365 sim  {simulator.url}  (authority {simulator.url}/organizations, Graph {simulator.graph_url}, "
          f"control {simulator.url}/_sim/)", flush=True)
    print(f"Local CA  {simulator.certs.ca_pem}", flush=True)
    try:
        wait_for_stop()
    finally:
        simulator.stop()
    return 0


def run_keyvault(args: argparse.Namespace) -> int:
    server = start_keyvault(args.port)
    print(f"Key Vault {server.url}  (control {server.url}/_sim/)", flush=True)
    print(f"Local CA  {server.certs.ca_pem}", flush=True)
    try:
        wait_for_stop()
    finally:
        server.stop()
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    m365 = commands.add_parser("m365", help="run the Microsoft 365 simulator (Entra ID sign-in and Graph) alone")
    m365.add_argument("--port", type=int, default=M365_PORT, help=f"HTTPS port (default {M365_PORT}; 0 picks one)")
    m365.add_argument("--state", type=Path, default=None, help="JSON file to load the state from and save it to")
    m365.add_argument("--no-seed", action="store_true", help="start empty instead of with the demo tenant")
    m365.set_defaults(func=run_m365)
    keyvault = commands.add_parser("keyvault", help="run the Key Vault dev server alone")
    keyvault.add_argument("--port", type=int, default=KEYVAULT_PORT,
                          help=f"HTTPS port (default {KEYVAULT_PORT}; 0 picks one)")
    keyvault.set_defaults(func=run_keyvault)
