"""The demo SaaS page as the product's customer: its POST /callbacks checks each push's signature, follows a
``changes`` push with GET /changes from its own cursor, and its account page shows the events API's next
14 days and the busy intervals, escaped. A fake of the product's HTTP API stands in for the app; the pushes
are signed here with this file's own HMAC code. The connect flow against the real app is tests/e2e."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devstack.__main__ import StackContext, start_demo_saas, start_pushes
from devstack.azurite import free_port
from devstack.demo_saas import DemoSaas

KEY = "test-function-key"
SECRET = os.urandom(32)
ACCOUNT = "acc-1"


def signed(body: dict[str, Any], key: bytes = SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body as bytes and the X-Signature header the product documents for it."""
    raw = json.dumps(body).encode()
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(key, b"%d." % stamp + raw, hashlib.sha256).hexdigest()
    return raw, {"X-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}


def change(seq: int, kind: str = "updated", **extra: str) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "calendar": "cal-1", "event": f"ev-{seq}", "dedupe": f"d-{seq}",
            "at": "2030-05-06T08:00:00Z", **extra}


class FakeProduct:
    """The product's HTTP API as its documentation describes it, with what the demo page asked of it."""

    def __init__(self) -> None:
        self.feed: list[dict[str, Any]] = []
        self.expired = False          # GET /changes answers 410 cursor_expired
        self.events: list[list[dict[str, Any]]] = [[]]   # pages
        self.events_down = False      # GET /events answers 503 with an HTML page
        self.busy: list[dict[str, str]] = []
        self.asked: list[tuple[str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._key])
        app.add_routes([web.get("/api/accounts/{account}", self.account),
                        web.get("/api/accounts/{account}/events", self.list_events),
                        web.get("/api/accounts/{account}/availability", self.availability),
                        web.get("/api/accounts/{account}/changes", self.changes)])
        return app

    def asked_for(self, tail: str) -> list[dict[str, str]]:
        return [query for path, query in self.asked if path.endswith(tail)]

    @web.middleware
    async def _key(self, request: web.Request, handler):
        if request.headers.get("x-functions-key") != KEY:
            return web.json_response({"error": {"code": "unauthorized", "message": "no key"}}, status=401)
        self.asked.append((request.path, dict(request.query)))
        return await handler(request)

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response({"account": request.match_info["account"], "status": "active",
                                  "mailbox": "megan@contoso.test", "consented_at": "2030-05-01T10:00:00Z"})

    async def list_events(self, request: web.Request) -> web.Response:
        if self.events_down:
            return web.Response(status=503, text="<html>unavailable</html>", content_type="text/html")
        index = int(request.query.get("page", "0"))
        more = index + 1 < len(self.events)
        return web.json_response({"events": self.events[index], "next_page": str(index + 1) if more else None})

    async def availability(self, request: web.Request) -> web.Response:
        return web.json_response({"start": request.query["start"], "end": request.query["end"],
                                  "calendars": ["cal-1"], "busy": self.busy})

    async def changes(self, request: web.Request) -> web.Response:
        if self.expired:
            return web.json_response({"error": {"code": "cursor_expired", "message": "past FEED_RETENTION_DAYS",
                                                "field": "cursor"}}, status=410)
        cursor = int(request.query["cursor"])
        after = [c for c in self.feed if c["seq"] > cursor]
        page = after[:2]  # short pages, as the API may answer
        return web.json_response({"changes": page, "cursor": page[-1]["seq"] if page else cursor,
                                  "more": len(after) > len(page), "latest": self.feed[-1]["seq"] if self.feed else 0})


@pytest.fixture
async def product() -> AsyncIterator[tuple[FakeProduct, str]]:
    fake = FakeProduct()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def serve(saas: DemoSaas) -> TestClient:
    client = TestClient(TestServer(saas.app()))
    await client.start_server()
    return client


@pytest.fixture
async def demo(product) -> AsyncIterator[TestClient]:
    client = await serve(DemoSaas(product[1], KEY, "http://127.0.0.1:7080", base64.b64encode(SECRET).decode()))
    try:
        yield client
    finally:
        await client.close()


async def push(demo: TestClient, raw: bytes, headers: dict[str, str]) -> int:
    async with demo.post("/callbacks", data=raw, headers=headers) as response:
        return response.status


async def text(demo: TestClient, path: str) -> str:
    async with demo.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def test_a_signed_changes_push_is_acknowledged_and_the_feed_read_from_the_last_cursor(demo, product):
    fake, _ = product
    fake.feed = [change(1, "created"), change(2), change(3, "moved", to="cal-<2>")]
    assert await push(demo, *signed({"id": "p-1", "type": "changes", "account": ACCOUNT, "cursor": 3})) == 204
    assert fake.asked_for("/changes") == [{"cursor": "0", "limit": "100"}, {"cursor": "2", "limit": "100"}]

    fake.feed.append(change(4, "deleted"))
    assert await push(demo, *signed({"id": "p-2", "type": "changes", "account": ACCOUNT, "cursor": 4})) == 204
    assert [q["cursor"] for q in fake.asked_for("/changes")] == ["0", "2", "3"]   # from the last cursor
    # The same push again (a retry): nothing new to read.
    assert await push(demo, *signed({"id": "p-2", "type": "changes", "account": ACCOUNT, "cursor": 4})) == 204
    assert len(fake.asked_for("/changes")) == 3

    page = await text(demo, f"/accounts/{ACCOUNT}")
    assert "Cursor: 4" in page
    for seq, kind in ((1, "created"), (2, "updated"), (3, "moved"), (4, "deleted")):
        assert f"<tr><td>{seq}</td><td>{kind}</td><td>cal-1</td><td>ev-{seq}</td>" in page
    assert page.index("<td>4</td><td>deleted</td>") < page.index("<td>1</td><td>created</td>")  # newest first
    assert "cal-&lt;2&gt;" in page
    assert "cal-<2>" not in page
    assert page.count("<td>accepted</td>") == 3
    assert "read 3 changes, cursor 0 to 3" in page
    assert "already read up to 4" in page


async def test_an_account_status_push_is_kept_without_reading_the_feed(demo, product):
    fake, _ = product
    body = {"id": "s-1", "type": "account_status", "account": ACCOUNT, "external_ref": "person-7",
            "status": "needs_reconnect", "reason": "token_revoked", "at": "2030-05-06T08:00:00Z"}
    assert await push(demo, *signed(body)) == 204
    assert fake.asked_for("/changes") == []
    page = await text(demo, f"/accounts/{ACCOUNT}")
    assert "<td>needs_reconnect token_revoked</td><td>accepted</td>" in page
    assert "<td>s-1</td>" in page


def wrong_key() -> tuple[bytes, dict[str, str]]:
    return signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1}, key=os.urandom(32))


def stale() -> tuple[bytes, dict[str, str]]:
    return signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1}, at=int(time.time()) - 400)


def from_the_future() -> tuple[bytes, dict[str, str]]:
    return signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1}, at=int(time.time()) + 400)


def unsigned() -> tuple[bytes, dict[str, str]]:
    raw, _ = signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1})
    return raw, {"Content-Type": "application/json"}


def altered() -> tuple[bytes, dict[str, str]]:
    _, headers = signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1})
    return json.dumps({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 2}).encode(), headers


def garbled() -> tuple[bytes, dict[str, str]]:
    raw, headers = signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1})
    return raw, {**headers, "X-Signature": headers["X-Signature"].replace("t=", "ts=")}


@pytest.mark.parametrize(("make", "why"), [
    (wrong_key, "signature does not match"), (stale, "timestamp outside the 300 s window"),
    (from_the_future, "timestamp outside the 300 s window"), (unsigned, "no X-Signature header"),
    (altered, "signature does not match"), (garbled, "signature does not match")])
async def test_a_push_that_does_not_verify_is_refused_with_401(demo, product, make, why):
    fake, _ = product
    fake.feed = [change(1)]
    assert await push(demo, *make()) == 401
    assert fake.asked_for("/changes") == []
    listed = await text(demo, "/callbacks")
    assert f"<td>refused: {why}" in listed
    assert "accepted" not in listed
    assert "Cursor: 0" in await text(demo, f"/accounts/{ACCOUNT}")


@pytest.mark.parametrize("secret", [None, ""])
async def test_without_a_secret_every_push_is_refused(product, secret):
    fake, url = product
    fake.feed = [change(1)]
    client = await serve(DemoSaas(url, KEY, "http://127.0.0.1:7080", secret))
    try:   # an empty key would make anyone's HMAC valid
        assert await push(client, *signed({"id": "x", "type": "changes", "account": ACCOUNT, "cursor": 1},
                                          key=b"")) == 401
        assert fake.asked_for("/changes") == []
        assert "refused: no callback secret configured" in await text(client, "/callbacks")
    finally:
        await client.close()


async def test_an_expired_cursor_is_reported_and_the_feed_followed_from_the_push(demo, product):
    fake, _ = product
    fake.expired = True
    assert await push(demo, *signed({"id": "p-1", "type": "changes", "account": ACCOUNT, "cursor": 7})) == 204
    fake.expired, fake.feed = False, [change(7), change(8)]
    assert await push(demo, *signed({"id": "p-2", "type": "changes", "account": ACCOUNT, "cursor": 8})) == 204
    assert [q["cursor"] for q in fake.asked_for("/changes")] == ["0", "7"]
    page = await text(demo, f"/accounts/{ACCOUNT}")
    assert "410 cursor_expired" in page
    assert "Cursor: 8" in page
    assert "<td>8</td><td>updated</td>" in page
    assert "<td>7</td><td>updated</td>" not in page


def event(subject: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"id-{subject}", "calendar": "cal-1", "type": "singleInstance", "series_master_id": None,
        "subject": subject, "start": "2030-05-06T07:30:00Z", "end": "2030-05-06T08:00:00Z", "is_all_day": False,
        "start_date": None, "end_date": None, "zone": "Europe/Paris", "end_zone": "Europe/Paris",
        "zone_flag": None, "local_start": "2030-05-06T09:30:00", "local_end": "2030-05-06T10:00:00",
        "show_as": "busy", "is_cancelled": False, "location": None, "original_start": None, "recurrence": None,
        "recurrence_flag": None, "booking_id": None}
    return {**base, **fields}


async def test_the_account_page_shows_the_next_two_weeks_of_events_and_busy_time_escaped(demo, product):
    fake, _ = product
    fake.events = [
        [event('<script>alert("x")</script>', type="occurrence", show_as="tentative"),
         event("Offsite", is_all_day=True, start_date="2030-05-07", end_date="2030-05-09", zone=None,
               local_start=None, local_end=None, show_as="oof")],
        [event("Custom zone", zone=None, zone_flag="custom", local_start="2030-05-08T12:00:00"),
         event("Holiday", is_all_day=True, start_date="2030-05-10", end_date="2030-05-11", show_as="free")]]
    fake.busy = [{"start": "2030-05-06T07:30:00Z", "end": "2030-05-06T08:00:00Z", "show_as": "tentative"},
                 {"start": "2030-05-06T22:00:00Z", "end": "2030-05-08T22:00:00Z", "show_as": "<oof>"}]
    before = datetime.now(UTC)
    page = await text(demo, f"/accounts/{ACCOUNT}")

    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert "<td>2030-05-06 09:30 Europe/Paris</td><td>occurrence</td><td>tentative</td>" in page
    assert "<td>Offsite</td><td>2030-05-07 to 2030-05-08 (all day)</td><td>singleInstance</td><td>oof</td>" in page
    assert "<td>Custom zone</td><td>2030-05-08 12:00 UTC (its zone is custom)</td>" in page   # the second page
    assert "<td>Holiday</td><td>2030-05-10 (all day)</td>" in page
    assert "<tr><td>2030-05-06 07:30:00 UTC</td><td>2030-05-06 08:00:00 UTC</td><td>tentative</td></tr>" in page
    assert "<td>&lt;oof&gt;</td>" in page

    first, second = fake.asked_for("/events")
    assert second == {**first, "page": "1"}
    assert first["limit"] == "100"
    start, end = (datetime.fromisoformat(first[k].replace("Z", "+00:00")) for k in ("start", "end"))
    assert first["start"].endswith("Z")
    assert end - start == timedelta(days=14)
    assert before - timedelta(seconds=1) <= start <= datetime.now(UTC)
    assert fake.asked_for("/availability") == [{"start": first["start"], "end": first["end"]}]


async def test_the_account_page_shows_an_events_error_in_place(demo, product):
    fake, _ = product
    fake.events_down = True
    page = await text(demo, f"/accounts/{ACCOUNT}")
    assert "megan@contoso.test" in page
    assert "HTTP 503, not a JSON object" in page
    assert "unexpected_answer" in page
    assert "unavailable" not in page
    assert "<h2>Busy</h2><p>None.</p>" in page


async def test_pushes_off_leave_the_app_settings_alone(monkeypatch):
    monkeypatch.setenv("DEVSTACK_PUSHES", "0")
    monkeypatch.setenv("SAAS_CALLBACK_URL", "")
    monkeypatch.setenv("SAAS_CALLBACK_SECRET", "")
    ctx = StackContext(argparse.Namespace())
    started = await start_pushes(ctx)
    assert os.environ["SAAS_CALLBACK_URL"] == os.environ["SAAS_CALLBACK_SECRET"] == ""
    assert "callback_secret" not in ctx.extra
    assert "off" in started.lines[0]


async def test_pushes_on_give_the_runner_and_the_demo_page_one_secret(monkeypatch, product):
    fake, url = product
    fake.feed = [change(1)]
    port = free_port()
    monkeypatch.setenv("DEVSTACK_PUSHES", "1")
    monkeypatch.setenv("DEVSTACK_DEMO_PORT", str(port))
    monkeypatch.setenv("SAAS_CALLBACK_URL", "")     # restored after the test: start_pushes sets them
    monkeypatch.setenv("SAAS_CALLBACK_SECRET", "")
    ctx = StackContext(argparse.Namespace(), extra={"functions_url": url, "function_key": KEY})
    await start_pushes(ctx)
    assert os.environ["SAAS_CALLBACK_URL"] == f"http://127.0.0.1:{port}/callbacks"
    secret = base64.b64decode(os.environ["SAAS_CALLBACK_SECRET"], validate=True)
    assert len(secret) == 32
    started = await start_demo_saas(ctx)
    try:
        async with aiohttp.ClientSession() as session:
            for key, expected in ((os.urandom(32), 401), (secret, 204)):
                raw, headers = signed({"id": "p", "type": "changes", "account": ACCOUNT, "cursor": 1}, key=key)
                async with session.post(os.environ["SAAS_CALLBACK_URL"], data=raw, headers=headers) as response:
                    assert response.status == expected
        assert fake.asked_for("/changes") == [{"cursor": "0", "limit": "100"}]
    finally:
        await started.stop()
