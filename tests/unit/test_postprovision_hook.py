"""The azd postprovision hook (infra/hooks/postprovision.sh) against a stand-in `az` on PATH that keeps its
vault in a JSON file: keys are created once, well-formed, never printed nor passed on a command line, and
a second run (a second `azd up`) leaves every one as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "infra" / "hooks" / "postprovision.sh"

FAKE_AZ = """\
import json, os, sys
state_path = os.environ["FAKE_AZ_STATE"]
state = json.load(open(state_path))
state["calls"].append(sys.argv[1:])
args = sys.argv[1:]
def opt(name):
    return args[args.index(name) + 1]
try:
    if args[:3] == ["keyvault", "secret", "list"]:
        if state["list_failures"] > 0:
            state["list_failures"] -= 1
            print("ERROR: (Forbidden) the caller may not list secrets", file=sys.stderr)
            sys.exit(1)
        assert opt("--vault-name") == state["vault"]
        print("\\n".join(state["secrets"]))
    elif args[:3] == ["keyvault", "secret", "set"]:
        assert opt("--vault-name") == state["vault"]
        state["secrets"][opt("--name")] = open(opt("--file"), encoding="utf-8").read()
    else:
        sys.exit(2)
finally:
    json.dump(state, open(state_path, "w"))
"""


@pytest.fixture
def vault(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!/bin/sh\nexec {sys.executable} {bin_dir / 'az.py'} \"$@\"\n")
    az.chmod(0o755)
    (bin_dir / "az.py").write_text(FAKE_AZ)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"vault": "kv-test", "secrets": {}, "calls": [], "list_failures": 0}))
    return bin_dir, state


def run_hook(vault: tuple[Path, Path], **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir, state = vault
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_AZ_STATE": str(state),
                "AZURE_KEY_VAULT_NAME": "kv-test", "POSTPROVISION_RETRY_SECONDS": "0", **env}
    return subprocess.run(["sh", str(HOOK)], env=full_env, capture_output=True, text=True, timeout=60)


def read_state(vault: tuple[Path, Path]) -> dict:
    return json.loads(vault[1].read_text())


def test_first_run_creates_well_formed_keys(vault):
    done = run_hook(vault)
    assert done.returncode == 0, done.stderr
    secrets = read_state(vault)["secrets"]
    assert set(secrets) == {"client-state-keys", "connect-signing-key"}
    # The product's own parsing accepts them, as the app settings' Key Vault references will deliver them.
    env = {s.name: "" for s in SETTINGS} | {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "KEY_VAULT_URL": "https://kv-test.vault.azure.net",
        "CLIENT_ID": "app", "CLIENT_SECRET": "s", "PUBLIC_BASE_URL": "https://func.example.net",
        "ALLOWED_RETURN_URLS": "https://saas.example.com/connected",
        "CLIENT_STATE_KEYS": secrets["client-state-keys"], "CONNECT_SIGNING_KEY": secrets["connect-signing-key"]}
    settings = Settings.from_env(env)
    assert [k.key_id for k in settings.client_state_keys] == ["k1"]
    assert len(settings.client_state_keys[0].key) == 32
    assert len(settings.connect_signing_key) == 32
    assert settings.client_state_keys[0].key != settings.connect_signing_key


def test_no_value_is_printed_or_passed_on_a_command_line(vault):
    done = run_hook(vault, SAAS_CALLBACKS_ENABLED="true")
    state = read_state(vault)
    assert set(state["secrets"]) == {"client-state-keys", "connect-signing-key", "saas-callback-secret"}
    calls = json.dumps(state["calls"])
    for value in state["secrets"].values():
        secret_part = value.partition(":")[2] or value
        assert secret_part not in done.stdout + done.stderr
        assert secret_part not in calls


def test_a_second_run_rotates_nothing(vault):
    assert run_hook(vault, SAAS_CALLBACKS_ENABLED="true").returncode == 0
    first = read_state(vault)["secrets"]
    done = run_hook(vault, SAAS_CALLBACKS_ENABLED="true")
    assert done.returncode == 0
    assert read_state(vault)["secrets"] == first
    assert done.stdout.count("left as it is") == 3
    sets = [c for c in read_state(vault)["calls"] if c[:3] == ["keyvault", "secret", "set"]]
    assert len(sets) == 3  # all from the first run


def test_an_existing_key_is_kept_and_only_the_missing_one_is_created(vault):
    state = read_state(vault)
    state["secrets"]["client-state-keys"] = "k2:operator-chosen"
    vault[1].write_text(json.dumps(state))
    assert run_hook(vault).returncode == 0
    secrets = read_state(vault)["secrets"]
    assert secrets["client-state-keys"] == "k2:operator-chosen"
    assert "connect-signing-key" in secrets


def test_a_vault_it_cannot_list_yet_is_retried_and_then_written(vault):
    state = read_state(vault)
    state["list_failures"] = 2  # a role assignment still propagating
    vault[1].write_text(json.dumps(state))
    done = run_hook(vault)
    assert done.returncode == 0, done.stderr
    assert set(read_state(vault)["secrets"]) == {"client-state-keys", "connect-signing-key"}


def test_a_vault_it_cannot_list_at_all_gets_no_write(vault):
    state = read_state(vault)
    state["list_failures"] = 100
    vault[1].write_text(json.dumps(state))
    done = run_hook(vault, POSTPROVISION_ATTEMPTS="3")
    assert done.returncode != 0
    assert "nothing was written" in done.stderr
    calls = read_state(vault)["calls"]
    assert len(calls) == 3
    assert all(c[:3] == ["keyvault", "secret", "list"] for c in calls)
    assert read_state(vault)["secrets"] == {}


def test_a_missing_client_secret_is_pointed_out_unless_a_certificate_is_used(vault):
    assert "client-secret is not in kv-test" in run_hook(vault).stdout
    assert "client-secret" not in run_hook(vault, CLIENT_CERTIFICATE_NAME="app-cert").stdout
