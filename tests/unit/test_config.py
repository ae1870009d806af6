"""Settings: one canonical list, validated in one go, read on first use only."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import SETTINGS, ReadBy, Settings
from shared.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def sample_values() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def test_sample_settings_hold_exactly_the_canonical_list():
    assert list(sample_values()) == [s.name for s in SETTINGS]


def test_sample_settings_are_valid():
    settings = Settings.from_env(sample_values())
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert settings.scopes == ("Calendars.ReadWrite", "User.Read")
    assert settings.authority == "https://127.0.0.1:7443/organizations"
    assert settings.client_state_keys[0].key_id == "k1"
    assert len(settings.connect_signing_key) == 32
    assert settings.callbacks_enabled is False


def test_host_read_settings_are_marked():
    host = {s.name for s in SETTINGS if s.read_by in (ReadBy.HOST, ReadBy.BOTH)}
    assert host == {"AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME", "RECONCILE_SCHEDULE", "RENEW_SCHEDULE",
                    "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}


def test_every_missing_required_setting_is_named_in_one_error():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})
    names = {p.split(":")[0] for p in raised.value.problems}
    assert names == {"AzureWebJobsStorage", "KEY_VAULT_URL", "CLIENT_ID", "PUBLIC_BASE_URL", "CLIENT_STATE_KEYS",
                     "CONNECT_SIGNING_KEY", "ALLOWED_RETURN_URLS", "CLIENT_SECRET or CLIENT_CERTIFICATE_NAME"}


def test_malformed_values_are_reported_without_their_values():
    env = sample_values() | {"CONNECT_SIGNING_KEY": "not base64 secret!!", "LEASE_SECONDS": "-3",
                             "SCOPES": "openid Calendars.Read", "PUBLIC_BASE_URL": "http://example.com",
                             "CONFLICT_POLICY": "coin_flip", "CLIENT_STATE_KEYS": "k1:c2hvcnQ="}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    text = str(raised.value)
    for name in ("CONNECT_SIGNING_KEY", "LEASE_SECONDS", "SCOPES", "PUBLIC_BASE_URL", "CONFLICT_POLICY",
                 "CLIENT_STATE_KEYS"):
        assert name in text
    assert "not base64 secret" not in text
    assert "c2hvcnQ=" not in text


def test_empty_values_mean_absent_and_defaults_apply():
    env = sample_values() | {"LEASE_SECONDS": "", "SAAS_CALLBACK_URL": ""}
    settings = Settings.from_env(env)
    assert settings.lease_seconds == 300
    assert settings.saas_callback_url is None


def test_callback_url_and_secret_go_together():
    with pytest.raises(ConfigError, match="SAAS_CALLBACK_URL and SAAS_CALLBACK_SECRET"):
        Settings.from_env(sample_values() | {"SAAS_CALLBACK_URL": "https://saas.example.com/hook"})


def test_identity_based_storage_is_accepted():
    env = sample_values() | {"AzureWebJobsStorage": "",
                             "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
                             "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
                             "AzureWebJobsStorage__credential": "managedidentity",
                             "AzureWebJobsStorage__clientId": "1111"}
    storage = Settings.from_env(env).storage
    assert storage.connection_string is None
    assert storage.table_uri == "https://acct.table.core.windows.net"
    assert (storage.credential, storage.client_id) == ("managedidentity", "1111")


def test_the_managed_identity_client_id_must_be_a_guid():
    client_id = "11111111-2222-3333-4444-555555555555"
    assert Settings.from_env(sample_values() | {"AZURE_CLIENT_ID": client_id}).managed_identity_client_id \
        == client_id
    assert Settings.from_env(sample_values()).managed_identity_client_id is None
    with pytest.raises(ConfigError, match="AZURE_CLIENT_ID: expected a GUID"):
        Settings.from_env(sample_values() | {"AZURE_CLIENT_ID": "id-abc123"})


def test_secrets_are_not_in_repr():
    settings = Settings.from_env(sample_values())
    text = repr(settings)
    assert sample_values()["CLIENT_SECRET"] not in text
    assert "connect_signing_key" not in text


def test_importing_the_app_reads_no_settings_and_loads_no_graph_sdk():
    # The host imports function_app.py to index functions, with whatever settings exist; a cold
    # start must not pay for msgraph-sdk on the webhook path.
    code = ("import sys, function_app; function_app.app.get_functions(); "
            "print(any(m.startswith(('msgraph', 'msal')) for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_the_webhook_path_loads_neither_the_table_sdk_nor_msal():
    # The receiver only queues: building its queue client must not import azure-data-tables, msal or
    # msgraph-sdk, which a cold start would pay for before answering Graph.
    code = ("import json, os, sys; os.environ.update(json.load(open('local.settings.sample.json'))['Values']); "
            "import function_app; from shared.wiring import get_work_queue; get_work_queue(); "
            "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] if m.startswith('azure.') else m.split('.')[0] "
            "for m in sys.modules if m.startswith(('azure.data', 'msal', 'msgraph'))}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "value"), [("PER_CALENDAR_SUBSCRIPTIONS", "true"), ("SHARED_CALENDARS", "true")])
def test_a_setting_that_turns_on_an_unbuilt_feature_is_refused_by_name(name, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(sample_values() | {name: value})
    assert list(raised.value.problems) == [f"{name}: not supported yet; leave it empty or false"]


def test_a_certificate_credential_replaces_the_client_secret():
    settings = Settings.from_env(sample_values() | {"CLIENT_SECRET": "", "CLIENT_CERTIFICATE_NAME": "app-cert"})
    assert (settings.client_secret, settings.client_certificate_name) == (None, "app-cert")


def test_a_certificate_and_a_secret_together_are_refused():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(sample_values() | {"CLIENT_CERTIFICATE_NAME": "app-cert"})
    assert [p.split(":")[0] for p in raised.value.problems] == ["CLIENT_SECRET and CLIENT_CERTIFICATE_NAME"]


def test_a_certificate_name_key_vault_cannot_hold_is_refused():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(sample_values() | {"CLIENT_SECRET": "", "CLIENT_CERTIFICATE_NAME": "app_cert.pfx"})
    assert raised.value.problems[0].startswith("CLIENT_CERTIFICATE_NAME")


def test_callbacks_need_a_base64_key_of_32_bytes():
    env = sample_values() | {"SAAS_CALLBACK_URL": "https://saas.example.com/hook", "SAAS_CALLBACK_SECRET": "s3cret"}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert list(raised.value.problems) == ["SAAS_CALLBACK_SECRET: expected base64"]
    key = base64.b64encode(b"k" * 32).decode()
    settings = Settings.from_env(env | {"SAAS_CALLBACK_SECRET": key})
    assert (settings.callbacks_enabled, settings.saas_callback_secret) == (True, b"k" * 32)
    assert "k" * 32 not in repr(settings)


def test_the_unbuilt_features_off_are_accepted():
    env = sample_values() | {"PER_CALENDAR_SUBSCRIPTIONS": "false", "SHARED_CALENDARS": "false",
                             "CLIENT_CERTIFICATE_NAME": "", "SAAS_CALLBACK_URL": ""}
    settings = Settings.from_env(env)
    assert (settings.per_calendar_subscriptions, settings.shared_calendars) == (False, False)


UNRESOLVED = "@Microsoft.KeyVault(VaultName=kv-example;SecretName=client-state-keys)"


@pytest.mark.parametrize("name", ["CLIENT_SECRET", "CLIENT_STATE_KEYS", "CONNECT_SIGNING_KEY", "CLIENT_ID"])
def test_an_unresolved_key_vault_reference_is_refused_by_name(name):
    # App Service leaves a reference it cannot resolve in place, verbatim: that must not pass as a value.
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(sample_values() | {name: UNRESOLVED})
    assert list(raised.value.problems) == [f"{name}: an unresolved Key Vault reference (the secret does not exist "
                                     "yet, or the app's identity may not read it)"]
    assert "kv-example" not in str(raised.value)
    assert "client-state-keys" not in str(raised.value)


def test_an_unresolved_reference_in_lower_case_or_for_an_optional_setting_is_refused_too():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(sample_values() | {"SAAS_CALLBACK_SECRET": UNRESOLVED.lower()})
    assert [p.split(":")[0] for p in raised.value.problems] == ["SAAS_CALLBACK_SECRET"]


def test_an_unresolved_reference_in_a_storage_setting_is_refused():
    env = sample_values() | {"AzureWebJobsStorage": "",
                             "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
                             "AzureWebJobsStorage__queueServiceUri": UNRESOLVED}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert [p.split(":")[0] for p in raised.value.problems] == ["AzureWebJobsStorage__queueServiceUri"]
    with pytest.raises(ConfigError, match="AzureWebJobsStorage: an unresolved Key Vault reference"):
        Settings.from_env(sample_values() | {"AzureWebJobsStorage": UNRESOLVED})


def test_a_value_that_only_mentions_a_reference_is_a_value():
    settings = Settings.from_env(sample_values() | {"CLIENT_SECRET": "x@Microsoft.KeyVault(y)"})
    assert settings.client_secret == "x@Microsoft.KeyVault(y)"
