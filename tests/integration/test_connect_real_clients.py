"""Connecting a mailbox with the real msal, SecretClient and msgraph-sdk against the Microsoft 365
simulator and the Key Vault dev server, storage on Azurite. (The same through the local runner over
HTTP is in tests/e2e.)"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from devstack.m365.control import seed_demo
from shared.accounts.model import Status
from shared.accounts.repository import AccountRepository
from shared.accounts.status import APP_ALARM, clear_app_alarm
from shared.connect.connector import RESULT_PARAM, Connector
from shared.errors import AccountAuthError, AppAuthError
from shared.graph.client import graph_client
from shared.ops.logging import install_redaction
from shared.wiring import get_auth, get_services
from tests.devstack.world import browser
from tests.integration.conftest import SAMPLE
from tests.leaks import issued_secrets, leaked

RETURN_URL = SAMPLE["ALLOWED_RETURN_URLS"]
ADELE = "a1b2c3d4-0000-4000-8000-0000000000a1"


class Stack:
    def __init__(self, simulator, session: requests.Session) -> None:
        self.sim = simulator
        self.session = session
        auth = get_auth()
        self.services = get_services()
        self.auth = auth
        self.connector = Connector(self.services, auth.identity, auth.vault, auth.directory)
        self.repo = AccountRepository(self.services.tables)

    def control(self, path: str, body: dict | None = None) -> dict:
        response = self.session.post(f"{self.sim.url}/_sim/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else {}

    async def connect(self, user: str = "adele@contoso.test", ref: str = "saas-1", link: str | None = None):
        """Session -> link -> consent page -> callback -> confirm. Returns (account, confirm result)."""
        if link is None:
            session = await self.connector.create_session(
                json.dumps({"external_ref": ref, "return_url": RETURN_URL}).encode())
            link = json.loads(session.body)["url"].rsplit("/", 1)[1]
        opened = await self.connector.open_link(link)
        assert opened.status == 302
        answer = browser(self.session, self.sim.url, opened.headers["Location"], user)
        back = await self.connector.callback(urlencode(answer))
        assert back.status == 302, back.text
        query = parse_qs(urlsplit(back.headers["Location"]).query)
        account, token = query["account"][0], query[RESULT_PARAM][0]
        confirmed = await self.connector.confirm(
            account, json.dumps({"result": token, "external_ref": ref}).encode())
        return account, confirmed


@pytest.fixture
async def stack(app_env, simulator, keyvault_server, certs):
    app_env.setenv("AUTHORITY_HOST", simulator.url)
    app_env.setenv("GRAPH_BASE_URL", simulator.graph_url)
    app_env.setenv("KEY_VAULT_URL", keyvault_server.url)
    app_env.setenv("LOCAL_CA_BUNDLE", str(certs.ca_pem))
    simulator.state.reset()
    seed_demo(simulator.state)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(certs.ca_pem)
    with session:
        yield Stack(simulator, session)


async def test_connect_confirm_and_call_graph_with_a_silently_refreshed_token(stack):
    account, confirmed = await stack.connect()
    assert confirmed.status == 200, confirmed.text
    body = json.loads(confirmed.body)
    assert (body["status"], body["mailbox"], body["user"]) == ("active", "adele@contoso.test", ADELE)
    assert "Calendars.ReadWrite" in body["scopes"]
    live = await stack.repo.get(account)
    secret = await stack.auth.vault.get(live.secret_name)
    assert secret is not None
    assert secret.expires_on is None
    assert "RefreshToken" in json.loads(secret.value)
    assert "AccessToken" not in json.loads(secret.value)
    queued = [json.loads(m) for m in await stack.services.queue.peek("sync")]
    assert {"v": 1, "kind": "sync", "account": account, "reason": "connect", "full": True} in queued

    # An access token from the stored refresh state, used by msgraph-sdk; then again after expiry.
    client = graph_client(stack.services.settings, stack.auth.broker.credential(account))
    me = await client.me.get()
    assert me is not None
    assert me.id == ADELE
    stack.auth.broker.forget(account)
    stack.control("clock/advance", {"seconds": 2 * 3600})
    me = await graph_client(stack.services.settings, stack.auth.broker.credential(account)).me.get()
    assert me is not None
    assert me.user_principal_name == "adele@contoso.test"
    assert (await stack.repo.get(account)).last_token_refresh is not None


async def test_msal_and_key_vault_expiries_follow_the_injected_clock(stack):
    """Review finding 10: one clock everywhere, so expiry paths are tested without waiting."""
    from shared.auth.keyvault import KeyVaultTokenVault
    from shared.auth.msal_provider import MsalIdentityProvider

    account, _ = await stack.connect()
    live = await stack.repo.get(account)
    secret = await stack.auth.vault.get(live.secret_name)
    assert secret is not None
    fake_now = 2_000_000_000.0
    token = await MsalIdentityProvider(stack.services.settings, lambda: fake_now).refresh(secret.value)
    assert fake_now < token.expires_at <= fake_now + 24 * 3600

    now = stack.services.clock()
    await stack.auth.vault.put("clock-check", "value", tags={}, expires_on=now + 3600)
    assert await stack.auth.vault.get("clock-check") is not None
    later = KeyVaultTokenVault(stack.services.settings, lambda: now + 7200)
    try:
        assert await later.get("clock-check") is None  # expired on the injected clock, not on the wall's
    finally:
        await later.close()


@pytest.mark.parametrize(("action", "expected"), [
    ("expire-refresh-tokens", "invalid_grant:AADSTS700082"),
    ("revoke-sessions", "invalid_grant:AADSTS50173"),
    ("withdraw-consent", "invalid_grant/consent_required:AADSTS65001"),
    ("require-interaction", "interaction_required"),
])
async def test_each_dead_grant_turns_needs_reconnect_and_the_reconnect_link_restores_it(stack, action, expected):
    account, _ = await stack.connect()
    stack.control(f"users/{ADELE}/{action}")
    with pytest.raises(AccountAuthError):
        await stack.auth.broker.access_token(account)
    stored = await stack.repo.get(account)
    assert stored.status is Status.NEEDS_RECONNECT
    assert stored.reason.startswith(expected)
    described = json.loads((await stack.connector.get_account(account)).body)
    link = described["reconnect_url"].rsplit("/", 1)[1]
    stack.control(f"users/{ADELE}/require-interaction", {"required": False})
    again, confirmed = await stack.connect(link=link)
    assert again == account
    assert confirmed.status == 200, confirmed.text
    assert (await stack.repo.get(account)).status is Status.ACTIVE
    assert (await stack.auth.broker.access_token(account)).token


async def test_an_expired_client_secret_raises_the_app_alarm_not_an_account_status(stack):
    account, _ = await stack.connect()
    stack.auth.broker.forget(account)
    stack.control(f"apps/{stack.services.settings.client_id}/expire-secrets")
    try:
        with pytest.raises(AppAuthError) as raised:
            await stack.auth.broker.access_token(account)
        assert raised.value.aad_code == "AADSTS7000222"
        assert (await stack.repo.get(account)).status is Status.ACTIVE
        alarm = await stack.repo.get_app_state(APP_ALARM)
        assert alarm is not None
        assert alarm.get("aad_code") == "AADSTS7000222"
    finally:
        await clear_app_alarm(stack.services)


async def test_an_unsupported_mailbox_is_refused_and_nothing_is_stored(stack):
    before = await stack.repo.find_by_mailbox("5e3f1d2c-0000-4000-8000-00000000de30", ADELE)
    stack.control(f"users/{ADELE}/mailbox", {"state": "notEnabledForRestApi"})
    session = await stack.connector.create_session(
        json.dumps({"external_ref": "saas-1", "return_url": RETURN_URL}).encode())
    opened = await stack.connector.open_link(json.loads(session.body)["url"].rsplit("/", 1)[1])
    answer = browser(stack.session, stack.sim.url, opened.headers["Location"], "adele@contoso.test")
    result = await stack.connector.callback(urlencode(answer))
    assert result.status == 302  # back to the SaaS, which learns why
    assert result.headers["Location"] == RETURN_URL + "?connect_error=mailbox_unsupported"
    after = await stack.repo.find_by_mailbox("5e3f1d2c-0000-4000-8000-00000000de30", ADELE)
    assert after == before  # no new account, no change to an existing one


async def test_disconnect_deletes_the_secret_in_key_vault(stack):
    account, _ = await stack.connect()
    name = (await stack.repo.get(account)).secret_name
    result = await stack.connector.disconnect(account, purge=False)
    assert result.status == 200
    assert await stack.auth.vault.get(name) is None
    with pytest.raises(AccountAuthError):
        await stack.auth.broker.access_token(account)


async def test_no_issued_token_code_or_secret_reaches_tables_queues_or_logs(stack, caplog):
    caplog.set_level(logging.DEBUG)
    install_redaction()  # as function_app.py does at import; this test must not depend on another importing it
    account, _ = await stack.connect()
    stack.auth.broker.forget(account)
    await stack.auth.broker.access_token(account)
    stack.control(f"users/{ADELE}/expire-refresh-tokens")
    stack.auth.broker.forget(account)
    with pytest.raises(AccountAuthError):
        await stack.auth.broker.access_token(account)
    secrets = issued_secrets(stack.session, stack.sim.url, stack.services.settings.client_secret)
    assert len(secrets) > 4
    assert await leaked(secrets, stack.services, caplog.text) == []
