"""Connecting a mailbox end to end: the SaaS backend and a browser talk HTTP to the function app on
the local runner, which talks to the Microsoft 365 simulator (real msal and msgraph-sdk), the Key Vault
dev server (real SecretClient) and Azurite."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.accounts.status import clear_app_alarm
from shared.errors import AccountAuthError, AppAuthError
from shared.wiring import get_auth, get_services
from tests.devstack.world import browser
from tests.e2e.conftest import SAMPLE
from tests.leaks import issued_secrets, leaked

ADELE = "a1b2c3d4-0000-4000-8000-0000000000a1"
SAMPLE_CLIENT_SECRET = str(SAMPLE["CLIENT_SECRET"])


async def connect(stack, *, ref: str = "saas-user-1", link: str | None = None, user: str = "adele@contoso.test"):
    """The SaaS creates a session (or reuses a reconnect link), the browser goes through consent and the
    callback, the SaaS confirms. Returns (account, confirm response)."""
    if link is None:
        created = await stack.http.post(f"{stack.base}/api/connect-sessions", headers=stack.keyed(),
                                        json={"external_ref": ref, "return_url": stack.return_url})
        assert created.status_code == 201, created.text
        link = created.json()["url"]
    opened = await stack.http.get(link)
    assert opened.status_code == 302, opened.text
    form = browser(stack.sim_session, stack.sim_url, opened.headers["location"], user)
    # response_mode=form_post: the browser posts the code and state to the callback.
    back = await stack.http.post(f"{stack.base}/api/oauth/callback", data=form)
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(stack.return_url)
    query = parse_qs(urlsplit(location).query)
    account = query["account"][0]
    confirmed = await stack.http.post(f"{stack.base}/api/accounts/{account}/confirm", headers=stack.keyed(),
                                      json={"result": query["connect_result"][0], "external_ref": ref})
    return account, confirmed


async def account_status(stack, account: str) -> dict:
    response = await stack.http.get(f"{stack.base}/api/accounts/{account}", headers=stack.keyed())
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.disabled_functions("subscription_worker", "event_writer")  # it reads both queues itself
async def test_connect_reconnect_and_disconnect_through_the_runner(stack):
    account, confirmed = await connect(stack)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "active"
    services = get_services()
    kinds = {json.loads(m)["kind"] for q in ("sync", "subscriptions") for m in await services.queue.peek(q)
             if json.loads(m)["account"] == account}
    assert kinds == {"sync", "subscribe"}
    secret_name = f"acct-{account}-g1"
    assert await get_auth().vault.get(secret_name) is not None

    # A reconnect: the live account keeps running on generation 1 until the SaaS confirms generation 2.
    created = await stack.http.post(f"{stack.base}/api/connect-sessions", headers=stack.keyed(),
                                    json={"external_ref": "saas-user-1", "return_url": stack.return_url})
    opened = await stack.http.get(created.json()["url"])
    form = browser(stack.sim_session, stack.sim_url, opened.headers["location"], "adele@contoso.test")
    back = await stack.http.post(f"{stack.base}/api/oauth/callback", data=form)
    query = parse_qs(urlsplit(back.headers["location"]).query)
    assert query["account"] == [account]
    during = await account_status(stack, account)
    assert (during["status"], during["generation"]) == ("active", 1)
    done = await stack.http.post(f"{stack.base}/api/accounts/{account}/confirm", headers=stack.keyed(),
                                 json={"result": query["connect_result"][0], "external_ref": "saas-user-1"})
    assert done.json()["generation"] == 2
    assert await get_auth().vault.get(secret_name) is None
    assert await get_auth().vault.get(f"acct-{account}-g2") is not None

    gone = await stack.http.delete(f"{stack.base}/api/accounts/{account}", headers=stack.keyed())
    assert gone.status_code == 200
    assert gone.json()["status"] == "disconnected"
    assert await get_auth().vault.get(f"acct-{account}-g2") is None


async def test_refresh_after_expiry_is_silent_and_a_dead_grant_is_healed_by_the_reconnect_link(stack):
    account, _ = await connect(stack)
    broker = get_auth().broker
    first = await broker.access_token(account)
    broker.forget(account)
    stack.control("clock/advance", {"seconds": 2 * 3600})
    second = await broker.access_token(account)
    assert second.token != first.token
    assert (await account_status(stack, account))["status"] == "active"

    stack.control(f"users/{ADELE}/expire-refresh-tokens")
    broker.forget(account)
    with pytest.raises(AccountAuthError):
        await broker.access_token(account)
    described = await account_status(stack, account)
    assert (described["status"], described["reason"]) == ("needs_reconnect", "invalid_grant:AADSTS700082")
    again, confirmed = await connect(stack, link=described["reconnect_url"])
    assert again == account
    assert confirmed.json()["status"] == "active"
    assert (await broker.access_token(account)).token


@pytest.mark.disabled_functions("subscription_worker")  # its token refresh would race the test's own
async def test_an_expired_client_secret_raises_the_app_alarm_on_health(stack):
    account, _ = await connect(stack)
    assert (await stack.http.get(f"{stack.base}/api/health")).json()["status"] == "ok"
    stack.control(f"apps/{get_services().settings.client_id}/expire-secrets")
    get_auth().broker.forget(account)
    try:
        with pytest.raises(AppAuthError):
            await get_auth().broker.access_token(account)
        health = await stack.http.get(f"{stack.base}/api/health")
        assert (health.status_code, health.json()) == (503, {"status": "alarm"})
        details = await stack.http.get(f"{stack.base}/api/health/details", headers=stack.keyed())
        assert details.json()["status"] == "alarm"
        assert "AADSTS7000222" in details.json()["problems"][0]
        assert (await stack.http.get(f"{stack.base}/api/health/details")).status_code == 401
        assert (await account_status(stack, account))["status"] == "active"
    finally:
        await clear_app_alarm(get_services())


async def test_function_key_routes_refuse_callers_without_a_key(stack):
    for method, path in (("POST", "/api/connect-sessions"), ("GET", "/api/accounts/abc"),
                         ("DELETE", "/api/accounts/abc"), ("POST", "/api/accounts/abc/confirm")):
        response = await stack.http.request(method, f"{stack.base}{path}", json={})
        assert response.status_code == 401, (method, path)


async def test_bad_callbacks_get_clear_4xx_pages_and_change_nothing(stack):
    async def stored_rows() -> int:
        return len([r for table in ("accounts", "oauthflows") async for r in get_services().tables.scan(table)])

    before = await stored_rows()
    forged = await stack.http.post(f"{stack.base}/api/oauth/callback", data={"state": "forged", "code": "x"})
    assert forged.status_code == 400
    assert "text/html" in forged.headers["content-type"]
    hostile = await stack.http.get(f"{stack.base}/api/oauth/callback",
                                   params={"error": "access_denied", "error_description": "<script>x</script>"})
    assert hostile.status_code == 400
    assert "<script>" not in hostile.text
    huge = await stack.http.post(f"{stack.base}/api/oauth/callback", data={"state": "s" * 10_000})
    assert huge.status_code == 414
    link = await stack.http.get(f"{stack.base}/api/connect/not-a-valid-link")
    assert link.status_code == 400
    assert await stored_rows() == before


async def test_no_issued_token_code_or_secret_reaches_logs_tables_or_queues(stack, caplog):
    caplog.set_level(logging.DEBUG)
    account, _ = await connect(stack)
    get_auth().broker.forget(account)
    await get_auth().broker.access_token(account)
    stack.control(f"users/{ADELE}/expire-refresh-tokens")
    get_auth().broker.forget(account)
    with pytest.raises(AccountAuthError):
        await get_auth().broker.access_token(account)
    secrets = issued_secrets(stack.sim_session, stack.sim_url, SAMPLE_CLIENT_SECRET)
    assert len(secrets) > 4
    assert await leaked(secrets, get_services(), caplog.text) == []


async def test_purge_runs_as_queued_work_through_the_runner(stack):
    import asyncio

    from shared.accounts.repository import AccountRepository
    from shared.store.ports import MAILBOX, Row

    account, confirmed = await connect(stack)
    assert confirmed.status_code == 200, confirmed.text
    await get_services().tables.upsert(MAILBOX, Row(account, "ev:cal:1", {"subject": "x"}))
    gone = await stack.http.delete(f"{stack.base}/api/accounts/{account}", params={"purge": "true"},
                                   headers=stack.keyed())
    assert (gone.status_code, gone.json()["purged"], gone.json()["mailbox"]) == (200, True, None)
    bad = await stack.http.delete(f"{stack.base}/api/accounts/{account}", params={"purge": "yes"},
                                  headers=stack.keyed())
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "purge")
    repo = AccountRepository(get_services().tables)
    for _ in range(100):  # the runner's subscription_worker takes the Purge message
        stored = await repo.get(account)
        if stored is not None and stored.purged_at is not None:
            break
        await asyncio.sleep(0.2)
    assert stored is not None
    assert stored.purged_at is not None
    assert [r async for r in get_services().tables.query(MAILBOX, account)] == []
