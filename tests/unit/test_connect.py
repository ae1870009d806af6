"""Connecting a mailbox, on in-memory stores and fakes of the IdP, vault and Graph profile."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from shared.accounts.model import Identity, Status
from shared.accounts.repository import AccountRepository
from shared.accounts.status import APP_ALARM, mark_needs_reconnect
from shared.api import iso_utc
from shared.auth.memory import InMemoryTokenVault
from shared.config import Settings
from shared.connect.connector import RESULT_PARAM, Connector
from shared.errors import AccountAuthError, AppAuthError
from shared.ops.journal import JournalEntry
from shared.store.ports import ACCOUNTS, JOURNAL, MAILBOX, OAUTHFLOWS, OUTBOX, TABLES, Row, TableOp
from shared.wiring import in_memory_services
from tests.fakes import FakeClock, FakeDirectory, FakeIdentityProvider

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
RETURN_URL = SAMPLE["ALLOWED_RETURN_URLS"]
ADA = Identity(tenant="tenant-1", user="oid-ada", username="ada@contoso.test")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.services = in_memory_services(Settings.from_env(SAMPLE), self.clock)
        self.idp = FakeIdentityProvider()
        self.idp.add_user(ADA)
        self.vault = InMemoryTokenVault(self.clock)
        self.directory = FakeDirectory(self.idp)
        self.connector = Connector(self.services, self.idp, self.vault, self.directory)
        self.repo = AccountRepository(self.services.tables)

    async def session(self, ref: str = "saas-user-1", return_url: str = RETURN_URL) -> str:
        body = json.dumps({"external_ref": ref, "return_url": return_url}).encode()
        result = await self.connector.create_session(body)
        assert result.status == 201, result.text
        return json.loads(result.body)["url"].rsplit("/", 1)[1]

    async def open(self, link: str) -> str:
        result = await self.connector.open_link(link)
        assert result.status == 302
        return parse_qs(urlsplit(result.headers["Location"]).query)["state"][0]

    async def sign_in(self, ref: str = "saas-user-1", username: str = "ada@contoso.test") -> tuple[str, str]:
        """Session, link, consent and callback: returns (account, result token)."""
        state = await self.open(await self.session(ref))
        result = await self.connector.callback(urlencode({"state": state, "code": self.idp.code_for(username)}))
        assert result.status == 302, result.text
        query = parse_qs(urlsplit(result.headers["Location"]).query)
        return query["account"][0], query[RESULT_PARAM][0]

    async def confirm(self, account: str, token: str, ref: str = "saas-user-1", **extra):
        body = json.dumps({"result": token, "external_ref": ref, **extra}).encode()
        return await self.connector.confirm(account, body)

    async def rows(self, table: str) -> list[Row]:
        return self.services.tables.rows(table)  # type: ignore[attr-defined]


def ada_code(world: World) -> str:
    return world.idp.code_for("ada@contoso.test")


@pytest.fixture
def world() -> World:
    return World()


# --- sessions and links ----------------------------------------------------------------------------

async def test_session_returns_a_link_under_the_public_base_url(world):
    result = await world.connector.create_session(json.dumps({"external_ref": "u1", "return_url": RETURN_URL}).encode())
    body = json.loads(result.body)
    assert result.status == 201
    assert body["url"].startswith(SAMPLE["PUBLIC_BASE_URL"] + "/api/connect/")
    assert body["expires_at"] == iso_utc(world.clock.now + 30 * 60)
    assert body["expires_at"].endswith("Z")


@pytest.mark.parametrize("return_url", [
    RETURN_URL + "/extra",                                # path differs
    RETURN_URL.replace(":7080", ":7081"),                 # port differs
    RETURN_URL.replace("http:", "https:"),                # scheme differs
    RETURN_URL.replace("127.0.0.1", "evil.test"),         # host differs
    RETURN_URL.replace("//", "//user@"),                  # credentials smuggled
    RETURN_URL + "#x",                                    # fragment
    "javascript:alert(1)",
])
async def test_session_refuses_return_urls_off_the_allow_list(world, return_url):
    result = await world.connector.create_session(json.dumps({"external_ref": "u1", "return_url": return_url}).encode())
    assert result.status == 400
    assert json.loads(result.body)["error"] == {
        "code": "return_url_not_allowed", "field": "return_url",
        "message": "return_url must match one of ALLOWED_RETURN_URLS in scheme, host, port and path"}


async def test_session_accepts_an_allowed_url_with_its_own_query(world):
    result = await world.connector.create_session(
        json.dumps({"external_ref": "u1", "return_url": RETURN_URL + "?tab=calendar"}).encode())
    assert result.status == 201


@pytest.mark.parametrize(("body", "code", "field"), [
    (b"", "invalid_body", None), (b"not json", "invalid_json", None), (b"[]", "invalid_body", None),
    (b'{"return_url": "x"}', "missing_field", "external_ref"),
    (b'{"external_ref": " ", "return_url": "x"}', "invalid_field", "external_ref"),
    (json.dumps({"external_ref": "x" * 300, "return_url": RETURN_URL}).encode(), "invalid_field", "external_ref"),
    (json.dumps({"external_ref": "u1", "return_url": RETURN_URL, "login_hint": 7}).encode(), "invalid_field",
     "login_hint"),
])
async def test_session_refuses_malformed_requests_naming_the_field(world, body, code, field):
    result = await world.connector.create_session(body)
    assert result.status == 400
    error = json.loads(result.body)["error"]
    assert (error["code"], error.get("field")) == (code, field)


async def test_a_non_string_external_ref_is_called_what_it_is(world):
    result = await world.connector.create_session(json.dumps({"external_ref": 123, "return_url": RETURN_URL}).encode())
    assert json.loads(result.body)["error"] == {"code": "invalid_field", "field": "external_ref",
                                                "message": "external_ref must be a string"}


@pytest.mark.parametrize("return_url", [RETURN_URL.replace(":7080", ":70x0"), RETURN_URL.replace(":7080", ":99999")])
async def test_a_malformed_port_in_return_url_is_a_400_not_a_crash(world, return_url):
    result = await world.connector.create_session(json.dumps({"external_ref": "u1", "return_url": return_url}).encode())
    assert result.status == 400
    assert json.loads(result.body)["error"] == {"code": "invalid_field", "field": "return_url",
                                                "message": "return_url is not a valid URL"}


async def test_a_link_works_repeatedly_until_it_expires(world):
    link = await world.session()
    first, second = await world.open(link), await world.open(link)
    assert first != second  # a mail scanner opening it first does no harm: each open is a new flow
    world.clock.advance(31 * 60)
    expired = await world.connector.open_link(link)
    assert expired.status == 410
    assert "expired" in expired.text


async def test_a_tampered_link_is_refused(world):
    link = await world.session()
    middle = len(link) // 2
    tampered = link[:middle] + ("A" if link[middle] != "A" else "B") + link[middle + 1:]
    for bad in (tampered, link + "x", link[:-4], "not-a-token", "st1.", ""):
        result = await world.connector.open_link(bad)
        assert result.status == 400
    assert await world.rows(OAUTHFLOWS) == []


# --- callback ----------------------------------------------------------------------------------------

async def test_callback_records_a_pending_connection_and_redirects_with_a_result(world):
    account, _token = await world.sign_in()
    stored = await world.repo.get(account)
    assert stored is not None
    assert stored.status is Status.PENDING
    assert stored.generation == 0
    (pending,) = await world.repo.generations(account)
    assert pending.generation == 1
    assert pending.external_ref == "saas-user-1"
    assert pending.identity.mailbox == "ada@contoso.test"
    secret = await world.vault.get(pending.secret_name)
    assert secret is not None
    assert secret.expires_on == world.clock.now + 15 * 60
    assert world.vault.tags(pending.secret_name) == {"account": account, "generation": "1", "tenant": "tenant-1",
                                                     "user": "oid-ada"}
    assert await world.rows(OAUTHFLOWS) == []  # the flow is consumed
    assert await world.services.queue.peek("sync") == []  # nothing runs before the confirm


async def test_callback_state_works_once(world):
    state = await world.open(await world.session())
    code = world.idp.code_for("ada@contoso.test")
    assert (await world.connector.callback(urlencode({"state": state, "code": code}))).status == 302
    replay = await world.connector.callback(urlencode({"state": state, "code": code}))
    assert replay.status == 400
    assert "already used" in replay.text


@pytest.mark.parametrize("query", [
    {}, {"code": "x"}, {"state": "forged", "code": "x"}, {"state": "s" * 600, "code": "x"},
])
async def test_callback_without_a_known_state_is_refused(world, query):
    result = await world.connector.callback(urlencode(query))
    assert result.status == 400
    assert await world.rows(ACCOUNTS) == []


async def test_callback_after_the_flow_expired_is_refused(world):
    state = await world.open(await world.session())
    world.clock.advance(601)
    result = await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    assert result.status == 400
    assert await world.rows(ACCOUNTS) == []


async def test_oversized_callback_is_refused(world):
    result = await world.connector.callback("state=" + "x" * 20_000)
    assert result.status == 414


async def test_cancel_at_the_consent_page_goes_back_to_the_saas_with_connect_error(world):
    """Cancel at Microsoft's consent page answers error=access_denied (AADSTS65004): the person goes
    back to the return URL, and the SaaS learns why; the description (free text) goes nowhere."""
    state = await world.open(await world.session())
    hostile = 'AADSTS65004: User declined to consent. <script>alert("x")</script>'
    result = await world.connector.callback(urlencode({"state": state, "error": "access_denied",
                                                       "error_description": hostile}))
    assert result.status == 302
    location = urlsplit(result.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    assert parse_qs(location.query) == {"connect_error": ["access_denied"]}
    assert await world.rows(ACCOUNTS) == []
    assert world.vault.secrets == {}
    [entry] = [r for r in await world.rows(JOURNAL) if r.get("stage") == "authorize"]
    assert entry.get("detail") == "AADSTS65004"
    assert "<script>" not in json.dumps(dict(entry.data))


async def test_an_unknown_idp_error_is_reported_as_sign_in_failed(world):
    state = await world.open(await world.session())
    result = await world.connector.callback(urlencode({"state": state, "error": "server_error"}))
    assert parse_qs(urlsplit(result.headers["Location"]).query) == {"connect_error": ["sign_in_failed"]}


async def test_a_cancelled_reconnect_names_the_account(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await mark_needs_reconnect(world.services, account, AccountAuthError("invalid_grant", aad_code="AADSTS50173"),
                               generation=1)
    described = json.loads((await world.connector.get_account(account)).body)
    state = await world.open(described["reconnect_url"].rsplit("/", 1)[1])
    result = await world.connector.callback(urlencode({"state": state, "error": "access_denied"}))
    assert parse_qs(urlsplit(result.headers["Location"]).query) == {"connect_error": ["access_denied"],
                                                                    "account": [account]}


async def test_an_error_for_an_unknown_state_gets_the_products_own_page(world):
    result = await world.connector.callback(urlencode({"state": "forged", "error": "access_denied"}))
    assert result.status == 400
    assert "cannot be completed" in result.text


async def test_a_replayed_code_is_refused_and_stores_nothing(world):
    state1 = await world.open(await world.session())
    code = world.idp.code_for("ada@contoso.test")
    await world.connector.callback(urlencode({"state": state1, "code": code}))
    before = len(await world.rows(ACCOUNTS))
    state2 = await world.open(await world.session())
    result = await world.connector.callback(urlencode({"state": state2, "code": code}))
    assert result.status == 302
    assert parse_qs(urlsplit(result.headers["Location"]).query) == {"connect_error": ["sign_in_refused"]}
    assert len(await world.rows(ACCOUNTS)) == before


async def test_an_unsupported_mailbox_is_refused_at_connect(world):
    world.directory.unsupported_users.add("ada@contoso.test")
    state = await world.open(await world.session())
    result = await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    assert result.status == 302
    assert parse_qs(urlsplit(result.headers["Location"]).query) == {"connect_error": ["mailbox_unsupported"]}
    assert await world.rows(ACCOUNTS) == []


async def test_microsoft_unreachable_at_the_callback_is_a_503_page_and_stores_nothing(world):
    from shared.errors import IdentityUnavailable

    state = await world.open(await world.session())
    world.idp.fail_next = IdentityUnavailable("the identity provider is unreachable (ConnectionError)")
    result = await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    assert result.status == 503
    assert "could not be reached" in result.text
    assert await world.rows(ACCOUNTS) == []


async def test_an_app_credential_failure_raises_the_alarm_not_an_account_status(world):
    state = await world.open(await world.session())
    world.idp.fail_next = AppAuthError("invalid_client", aad_code="AADSTS7000222")
    result = await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    assert result.status == 503
    alarm = await world.repo.get_app_state(APP_ALARM)
    assert alarm is not None
    assert alarm.get("aad_code") == "AADSTS7000222"
    journal = await world.services.journal.recent(None)
    assert journal[0].operation == "app_alarm"


# --- confirm -----------------------------------------------------------------------------------------

async def test_confirm_makes_the_account_active_and_queues_subscribe_and_a_full_sync(world):
    account, token = await world.sign_in()
    result = await world.confirm(account, token)
    assert result.status == 200, result.text
    body = json.loads(result.body)
    assert (body["status"], body["generation"], body["external_ref"]) == ("active", 1, "saas-user-1")
    stored = await world.repo.get(account)
    assert stored.status is Status.ACTIVE
    assert (await world.vault.get(stored.secret_name)).expires_on is None
    assert await world.repo.generations(account) == []
    assert [json.loads(m)["kind"] for m in await world.services.queue.peek("subscriptions")] == ["subscribe"]
    assert [json.loads(m) for m in await world.services.queue.peek("sync")] == [
        {"v": 1, "kind": "sync", "account": account, "reason": "connect", "full": True}]
    outbox = await world.rows(OUTBOX)
    assert json.loads(outbox[-1].get("payload"))["status"] == "active"
    # The same confirm again changes nothing and answers the same.
    again = await world.confirm(account, token)
    assert again.status == 200
    assert len(await world.services.queue.peek("sync")) == 1


async def test_confirm_refuses_another_reference_another_account_and_bad_tokens(world):
    account, token = await world.sign_in()
    assert (await world.confirm(account, token, ref="saas-user-2")).status == 403
    assert (await world.connector.confirm("a" * 26, json.dumps(
        {"result": token, "external_ref": "saas-user-1"}).encode())).status == 403
    assert (await world.confirm(account, token[:-3] + "abc")).status == 400
    assert (await world.connector.confirm(account, b"{}")).status == 400
    world.clock.advance(16 * 60)
    assert (await world.confirm(account, token)).status == 410
    assert (await world.repo.get(account)).status is Status.PENDING


async def test_reconnect_keeps_the_live_account_running_until_the_confirm(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    again_account, again_token = await world.sign_in()
    assert again_account == account
    live = await world.repo.get(account)
    assert (live.status, live.generation) == (Status.ACTIVE, 1)
    assert [g.generation for g in await world.repo.generations(account)] == [2]
    result = await world.confirm(account, again_token)
    assert result.status == 200
    live = await world.repo.get(account)
    assert live.generation == 2
    assert await world.vault.get(f"acct-{account}-g1") is None
    assert f"acct-{account}-g1" in world.vault.deleted
    assert await world.vault.get(live.secret_name) is not None


async def test_a_mailbox_bound_to_another_reference_moves_only_when_asked(world):
    account, token = await world.sign_in(ref="saas-user-1")
    await world.confirm(account, token)
    again_account, again_token = await world.sign_in(ref="saas-user-2")
    refused = await world.confirm(again_account, again_token, ref="saas-user-2")
    assert refused.status == 409
    assert (await world.repo.get(account)).external_ref == "saas-user-1"
    moved = await world.confirm(again_account, again_token, ref="saas-user-2", move=True)
    assert moved.status == 200
    assert [a.account for a in await world.repo.list_by_ref("saas-user-2")] == [account]
    assert await world.repo.list_by_ref("saas-user-1") == []


async def test_an_unconfirmed_connection_expires(world):
    account, token = await world.sign_in()
    world.clock.advance(15 * 60 + 1)
    (pending,) = await world.repo.generations(account)
    assert await world.vault.get(pending.secret_name) is None  # the secret's own expiry
    assert (await world.confirm(account, token)).status == 410


# --- statuses, reading, disconnecting ----------------------------------------------------------------

async def test_dead_grant_turns_needs_reconnect_with_a_fresh_link(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await mark_needs_reconnect(world.services, account, AccountAuthError("invalid_grant", aad_code="AADSTS700082"),
                               generation=1)
    result = await world.connector.get_account(account)
    body = json.loads(result.body)
    assert (body["status"], body["reason"]) == ("needs_reconnect", "invalid_grant:AADSTS700082")
    assert body["reconnect_url"].startswith(SAMPLE["PUBLIC_BASE_URL"] + "/api/connect/")
    # The reconnect link leads through the same flow back to an active account.
    link = body["reconnect_url"].rsplit("/", 1)[1]
    state = await world.open(link)
    callback = await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    token2 = parse_qs(urlsplit(callback.headers["Location"]).query)[RESULT_PARAM][0]
    assert (await world.confirm(account, token2)).status == 200
    assert (await world.repo.get(account)).status is Status.ACTIVE
    statuses = [json.loads(r.get("payload"))["status"] for r in await world.rows(OUTBOX)]
    assert statuses == ["active", "needs_reconnect", "active"]


async def test_get_account_of_unknown_or_malformed_id_is_404(world):
    assert (await world.connector.get_account("a" * 26)).status == 404
    assert (await world.connector.get_account("../etc")).status == 404


async def run_purges(world) -> int:
    """Work the queued Purge messages as the subscriptions queue's trigger would; how many ran."""
    from shared.accounts.purge import purge_slice
    from shared.messages import Purge, parse_message

    runs = 0
    while bodies := world.services.queue.all_bodies("subscriptions"):
        world.services.queue.clear("subscriptions")
        for message in (parse_message(b) for b in bodies):
            if isinstance(message, Purge):
                await purge_slice(world.services, message)
                runs += 1
    return runs


async def test_purge_removes_personal_data_at_once_and_rows_in_queued_slices(world, monkeypatch):
    import shared.accounts.purge as purge_module

    monkeypatch.setattr(purge_module, "SLICE_ROWS", 40)
    account, token = await world.sign_in(ref="person-9")
    await world.confirm(account, token, ref="person-9")
    await world.services.tables.bulk_write(MAILBOX, [TableOp.upsert(Row(account, f"ev:cal:{i:03d}", {"subject": "x"}))
                                                     for i in range(100)])
    result = await world.connector.disconnect(account, purge=True)
    assert result.status == 200
    answered = json.loads(result.body)
    assert answered["purged"] is True
    # At once: GET shows no personal data, the indexes are gone, the secret is deleted.
    described = json.loads((await world.connector.get_account(account)).body)
    for field in ("display_name", "mailbox", "username", "external_ref", "user"):
        assert described[field] is None, field
    assert (described["status"], described["tenant"]) == ("disconnected", ADA.tenant)
    assert await world.repo.find_by_mailbox(ADA.tenant, ADA.user) is None
    assert await world.repo.list_by_ref("person-9") == []
    assert world.vault.secrets == {}
    account_text = json.dumps([dict(r.data) for r in await world.rows(ACCOUNTS)])
    assert "ada@contoso.test" not in account_text
    assert "person-9" not in account_text
    # The rows go in queued slices, not in the HTTP call.
    assert len([r async for r in world.services.tables.query(MAILBOX, account)]) == 100
    assert await run_purges(world) >= 3
    for table in (MAILBOX, JOURNAL):
        assert [r async for r in world.services.tables.query(table, account)] == [], table
    assert (await world.repo.get(account)).purged_at is not None
    # The SaaS is still owed its "disconnected" notice: the outbox keeps it until it is delivered.
    owed = [json.loads(r.get("payload")) for r in await world.rows(OUTBOX) if r.partition == account]
    assert owed[-1]["status"] == "disconnected"
    assert await run_purges(world) == 0  # done: nothing queued again


async def test_a_repeated_purge_request_changes_nothing_more(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await world.connector.disconnect(account, purge=True)
    await run_purges(world)
    again = await world.connector.disconnect(account, purge=True)
    assert json.loads(again.body)["purged"] is True
    assert await run_purges(world) == 0


async def test_disconnect_without_purge_keeps_the_data(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await world.services.tables.upsert(MAILBOX, Row(account, "ev:cal:1", {"subject": "x"}))
    result = await world.connector.disconnect(account, purge=False)
    stored = await world.repo.get(account)
    assert (json.loads(result.body)["purged"], stored.status) == (False, Status.DISCONNECTED)
    assert await world.vault.get(stored.secret_name) is None
    assert len([r async for r in world.services.tables.query(MAILBOX, account)]) == 1
    assert json.loads(result.body)["mailbox"] is not None
    # Disconnected is terminal: the same mailbox connects as a new account.
    new_account, _new_token = await world.sign_in()
    assert new_account != account


async def test_no_token_or_code_reaches_a_table_or_queue(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await world.sign_in()
    dumped = []
    for table in TABLES:
        dumped += [json.dumps(dict(r.data), default=str) for r in await world.rows(table)]
    for queue in ("sync", "subscriptions", "outbound"):
        dumped += await world.services.queue.peek(queue)
    text = "\n".join(dumped)
    assert world.idp.issued
    for secret in world.idp.issued:
        assert secret not in text
    assert len(await world.rows(JOURNAL)) > 0


async def test_sweep_removes_abandoned_flows_generations_and_unconfirmed_accounts(world):
    from shared.connect.sweep import sweep_connections

    await world.open(await world.session())                    # a flow never called back
    account, _ = await world.sign_in()                          # a connection never confirmed
    live, _ = await world.sign_in(username="ada@contoso.test")
    assert live == account
    assert (await sweep_connections(world.services, world.vault)).generations == 0  # nothing expired yet
    world.clock.advance(16 * 60)
    counts = await sweep_connections(world.services, world.vault)
    assert (counts.flows, counts.generations, counts.accounts) == (1, 2, 1)
    assert await world.repo.get(account) is None
    assert await world.rows(OAUTHFLOWS) == []
    assert await sweep_connections(world.services, world.vault) == type(counts)(0, 0, 0)


async def test_a_crash_after_the_secret_write_leaves_nothing_the_sweeper_misses(world):
    """Key Vault's expiry deletes nothing: a secret written by a callback that then died must still be
    found and deleted, through the generation row written before it."""
    from shared.connect.sweep import sweep_connections

    class CrashAfterWrite(InMemoryTokenVault):  # the secret lands, then the process dies
        async def put(self, name, value, *, tags, expires_on):
            await super().put(name, value, tags=tags, expires_on=expires_on)
            raise SystemExit("worker died")

    world.vault.__class__ = CrashAfterWrite
    state = await world.open(await world.session())
    with pytest.raises(SystemExit):
        await world.connector.callback(urlencode({"state": state, "code": ada_code(world)}))
    assert len(world.vault.secrets) == 1
    world.clock.advance(16 * 60)
    counts = await sweep_connections(world.services, world.vault)
    assert counts.generations == 1
    assert world.vault.secrets == {}


async def test_the_sweeper_expires_old_journal_entries(world):
    from shared.connect.sweep import sweep_connections

    await world.services.journal.record("acct-x", JournalEntry("old", "ok"))
    world.clock.advance(31 * 86_400)
    counts = await sweep_connections(world.services, world.vault)
    assert counts.journal == 1
    assert [e.operation for e in await world.services.journal.recent("acct-x")] == []


async def test_the_sweeper_reads_the_journal_once_a_day(world, monkeypatch):
    from shared.connect.sweep import sweep_connections

    calls = []
    expire = world.services.journal.expire

    async def counted(days):
        calls.append(world.clock())
        return await expire(days)

    monkeypatch.setattr(world.services.journal, "expire", counted)
    for _ in range(3 * 24 * 12):  # three days of five-minute timer runs
        await sweep_connections(world.services, world.vault)
        world.clock.advance(300)
    assert len(calls) == 3


async def test_sweep_keeps_the_live_account_of_an_abandoned_reconnect(world):
    from shared.connect.sweep import sweep_connections

    account, token = await world.sign_in()
    await world.confirm(account, token)
    await world.sign_in()                                       # a reconnect never confirmed
    world.clock.advance(16 * 60)
    counts = await sweep_connections(world.services, world.vault)
    assert (counts.generations, counts.accounts) == (1, 0)
    live = await world.repo.get(account)
    assert (live.status, live.generation) == (Status.ACTIVE, 1)
    assert await world.vault.get(live.secret_name) is not None


async def test_a_mailbox_found_unsupported_later_turns_unsupported_and_is_reported(world):
    from shared.accounts.status import mark_unsupported
    from shared.errors import MailboxUnsupported

    account, token = await world.sign_in()
    await world.confirm(account, token)
    error = MailboxUnsupported("gone", status=404, code="MailboxNotEnabledForRESTAPI")
    changed = await mark_unsupported(world.services, account, error)
    assert changed is not None
    assert (changed.status, changed.reason) == (Status.UNSUPPORTED, "MailboxNotEnabledForRESTAPI")
    assert not changed.rules.runs_inbound_sync
    statuses = [json.loads(r.get("payload"))["status"] for r in await world.rows(OUTBOX)]
    assert statuses[-1] == "unsupported"
    # A disconnected account stays disconnected.
    await world.connector.disconnect(account, purge=False)
    assert await mark_unsupported(world.services, account, error) is None


async def test_connect_tokens_do_not_show_what_they_carry(world):
    """The link and the result travel in URLs (browser history, proxies): the external reference and
    the return URL must not be readable in them, not even base64-decoded."""
    import base64

    ref = "saas-user-with-a-findable-reference"
    link = await world.session(ref)
    account, result = await world.sign_in(ref)
    for token in (link, result):
        assert token.startswith("st1.")
        body = token[4:]
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        for secret in (ref.encode(), b"127.0.0.1", b"connected", account.encode()):
            assert secret not in decoded
            assert secret.decode() not in token


async def test_a_token_for_one_purpose_cannot_be_opened_as_another(world):
    link = await world.session()
    account, _ = await world.sign_in()
    refused = await world.confirm(account, link)  # a link token offered as a result token
    assert (refused.status, json.loads(refused.body)["error"]["code"]) == (400, "result_invalid")


async def test_a_purge_request_survives_a_concurrent_change_of_the_account(world):
    from dataclasses import replace

    from shared.accounts.purge import request_purge

    account, token = await world.sign_in()
    await world.confirm(account, token)
    stale = await world.repo.get(account)
    await world.repo.save(replace(stale, last_token_refresh=world.clock.now))  # a worker touched the row
    purged = await request_purge(world.services, stale)
    assert purged.purge_requested_at is not None
    assert (await world.repo.get(account)).identity.username == ""
