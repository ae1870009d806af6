"""A stand-in for the SaaS product, so a person running the local stack can connect a calendar from a
browser: http://127.0.0.1:7080 creates a connect session (server to server, with the function key),
sends the browser to the link, takes the return URL and confirms the connection for the "logged-in"
demo user. It plays the role the README's "Connecting calendars" section describes; not deployed.

It also plays the SaaS backend that reads the calendar: the account page shows the next 14 days of events
and busy intervals from the events and availability APIs, and ``POST /callbacks`` receives the app's signed
pushes (checked with docs/callbacks.md's function, in demo_verify.py), keeps the last 50 and, on a
``changes`` push, reads the change feed from its last cursor for that account. It uses only the HTTP API
and its documentation, as a customer would: nothing from shared/. All of it is in memory."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from devstack.demo_verify import verify

DEFAULT_PORT = 7080
USER_COOKIE = "demo_user"
SIGNATURE_HEADER = "X-Signature"
REPLAY_WINDOW = 300        # seconds; the product's CALLBACK_REPLAY_WINDOW_SECONDS default
KEPT_PUSHES = 50
KEPT_CHANGES = 500         # per account
CHANGES_LIMIT = 100        # per read of the feed
MAX_PAGES = 10             # per push (the next push continues from the cursor)
EVENT_DAYS = 14
EVENTS_LIMIT = 100
CALL_SECONDS = 10


@dataclass
class Push:
    """A push as received: what it claims (trusted only when verified) and what the page did with it."""

    received: str
    body: dict[str, Any]
    refused: str | None = None     # why, when the signature did not verify
    note: str = ""                 # what reading the changes gave

    @property
    def account(self) -> str:
        return str(self.body.get("account") or "")


@dataclass
class Inbox:
    """The last pushes, and per account the feed cursor and the changes read so far."""

    pushes: deque[Push] = field(default_factory=lambda: deque(maxlen=KEPT_PUSHES))
    cursors: dict[str, int] = field(default_factory=dict)
    changes: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, account: str) -> asyncio.Lock:
        return self.locks.setdefault(account, asyncio.Lock())

    def keep(self, account: str, changes: list[dict[str, Any]]) -> None:
        self.changes.setdefault(account, deque(maxlen=KEPT_CHANGES)).extend(changes)


@dataclass(frozen=True)
class DemoSaas:
    functions_url: str      # e.g. http://127.0.0.1:7071
    function_key: str
    public_url: str         # e.g. http://127.0.0.1:7080
    callback_secret: str | None = None   # SAAS_CALLBACK_SECRET (base64); None: every push is refused
    inbox: Inbox = field(default_factory=Inbox, compare=False, repr=False)

    @property
    def return_url(self) -> str:
        return f"{self.public_url}/connected"

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/", self.home), web.post("/connect", self.connect),
                        web.get("/connected", self.connected), web.get("/accounts/{account}", self.account),
                        web.post("/callbacks", self.callback), web.get("/callbacks", self.callbacks)])
        return app

    async def _call(self, method: str, path: str, body: dict[str, object] | None = None,
                    params: dict[str, str] | None = None) -> tuple[int, dict]:
        """The product's API with the function key: its status and JSON object (an error object when the
        answer is not one, or when the app cannot be reached)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_SECONDS)) as session, \
                    session.request(method, f"{self.functions_url}/api/{path}", json=body, params=params,
                                    headers={"x-functions-key": self.function_key}) as response:
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
                if not isinstance(answer, dict):
                    answer = {"error": {"code": "unexpected_answer", "message": f"HTTP {response.status}, "
                                                                               "not a JSON object"}}
                return response.status, answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 502, {"error": {"code": "unreachable", "message": f"the app did not answer ({exc!r})"}}

    async def home(self, request: web.Request) -> web.Response:
        user = request.cookies.get(USER_COOKIE, "demo-user-1")
        return _page("Demo SaaS", f"""
          <p>You are signed in to the demo product as <b>{html.escape(user)}</b>.</p>
          <form method="post" action="/connect">
            <label>Your user id in the product <input name="user" value="{html.escape(user)}"></label>
            <button>Connect Outlook calendar</button>
          </form>
          <p>The Microsoft sign-in page is the local simulator (https://127.0.0.1:7443, certificate from the
          local CA in .devstack/ca/). Demo users: adele@contoso.test, megan@contoso.test.</p>
          <p><a href="/callbacks">pushes received</a></p>""")

    async def connect(self, request: web.Request) -> web.Response:
        user = str((await request.post()).get("user") or request.cookies.get(USER_COOKIE) or "demo-user-1")[:64]
        status, body = await self._call("POST", "connect-sessions",
                                        {"external_ref": user, "return_url": self.return_url})
        if status != 201:
            return _page("Could not start", f"<pre>{html.escape(json.dumps(body, indent=2))}</pre>", status=502)
        response = web.HTTPFound(str(body["url"]))
        response.set_cookie(USER_COOKIE, user, httponly=True, samesite="Lax")
        raise response

    async def connected(self, request: web.Request) -> web.Response:
        account = request.query.get("account", "")
        result = request.query.get("connect_result", "")
        user = request.cookies.get(USER_COOKIE, "")
        error = request.query.get("connect_error", "")
        if error:
            again = f"<p><a href='/accounts/{html.escape(account)}'>account status</a></p>" if account else ""
            return _page("Not connected", f"<p>{html.escape(CONNECT_ERRORS.get(error, 'Signing in failed.'))}</p>"
                         f"<p>(<code>connect_error={html.escape(error)}</code>)</p>{again}"
                         "<form method='post' action='/connect'><button>Try again</button></form>"
                         "<p><a href='/'>home</a></p>")
        if not (account and result and user):
            return _page("Nothing to confirm", "<p>Start from <a href='/'>the home page</a>.</p>", status=400)
        status, body = await self._call("POST", _account_path(account, "/confirm"),
                                        {"result": result, "external_ref": user})
        if status != 200:
            return _page("Not connected", _error(body), status=400)
        return _page("Calendar connected", _describe(body))

    async def account(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        status, body = await self._call("GET", _account_path(account))
        if status != 200:
            return _page("Account", _error(body), status=status)
        start = _now()
        span = {"start": _iso(start), "end": _iso(start + timedelta(days=EVENT_DAYS))}
        events, busy = await asyncio.gather(self._events(account, span), self._busy(account, span))
        pushes = [p for p in self.inbox.pushes if p.account == account]
        changes = list(self.inbox.changes.get(account, ()))
        return _page("Account", _describe(body) + f"""
          <h2>Next {EVENT_DAYS} days</h2>{events}
          <h2>Busy</h2>{busy}
          <h2>Pushes received</h2>{_pushes(pushes)}
          <h2>Changes read</h2><p>Cursor: {self.inbox.cursors.get(account, 0)}</p>{_changes(changes)}""")

    async def _events(self, account: str, span: dict[str, str]) -> str:
        """The events API's pages for ``span`` (up to five), as a table."""
        found: list[dict[str, Any]] = []
        params = {**span, "limit": str(EVENTS_LIMIT)}
        page: str | None = None
        for _ in range(5):
            status, body = await self._call("GET", _account_path(account, "/events"),
                                            params={**params, "page": page} if page else params)
            if status != 200:
                return _error(body, home=False)
            found += body.get("events", [])
            page = body.get("next_page")
            if not page:
                break
        more = f"<p>Only the first {len(found)} are shown.</p>" if page else ""
        return _table(("Subject", "When", "Type", "Show as"), [
            ((e.get("subject") or "(no subject)") + (" (cancelled)" if e.get("is_cancelled") else ""),
             _when(e), e.get("type"), e.get("show_as")) for e in found]) + more

    async def _busy(self, account: str, span: dict[str, str]) -> str:
        status, body = await self._call("GET", _account_path(account, "/availability"), params=span)
        if status != 200:
            return _error(body, home=False)
        return _table(("From", "To", "Show as"), [(_utc_text(b.get("start")), _utc_text(b.get("end")),
                                                   b.get("show_as")) for b in body.get("busy", [])])

    async def callback(self, request: web.Request) -> web.Response:
        """A push from the app: 204 once its signature verifies (then a ``changes`` push is followed), else 401."""
        raw = await request.read()
        try:
            claimed = json.loads(raw)
        except ValueError:
            claimed = None
        push = Push(_iso(_now()), claimed if isinstance(claimed, dict) else {})
        push.refused = self._refusal(raw, request.headers.get(SIGNATURE_HEADER))
        self.inbox.pushes.append(push)
        if push.refused:
            return web.Response(status=401, text=f"refused: {push.refused}")
        if push.body.get("type") == "changes" and push.account:
            await self._follow(push)
        elif push.body.get("type") != "account_status":
            push.note = "not understood (acknowledged)"
        return web.Response(status=204)

    def _refusal(self, raw: bytes, header: str | None) -> str | None:
        if not self.callback_secret:
            return "no callback secret configured (pushes are off)"
        if not header:
            return f"no {SIGNATURE_HEADER} header"
        if verify(raw, header, self.callback_secret, REPLAY_WINDOW):
            return None
        stamp = re.search(r"(?:^|,)t=(\d+)(?:,|$)", header)
        if stamp and abs(time.time() - int(stamp.group(1))) > REPLAY_WINDOW:
            return f"timestamp outside the {REPLAY_WINDOW} s window"
        return "signature does not match (another secret, or an altered body)"

    async def _follow(self, push: Push) -> None:
        """Read the account's change feed from the last cursor, page after page, and keep what is new.

        Done before answering, which is enough here; a real SaaS would queue it and answer at once."""
        account, upto = push.account, push.body.get("cursor")
        async with self.inbox.lock(account):
            cursor = start = self.inbox.cursors.get(account, 0)
            if isinstance(upto, int) and upto <= cursor:
                push.note = f"already read up to {cursor}"
                return
            read: list[dict[str, Any]] = []
            for _ in range(MAX_PAGES):
                status, page = await self._call("GET", _account_path(account, "/changes"),
                                                params={"cursor": str(cursor), "limit": str(CHANGES_LIMIT)})
                if status != 200:
                    error = page.get("error", {})
                    push.note = f"reading the changes failed: {status} {error.get('code')}: {error.get('message')}"
                    if status == 410 and isinstance(upto, int):   # changes were lost: go on from the latest
                        cursor = upto
                        push.note += f"; following from {upto} (the events above are re-read on every visit)"
                    break
                try:
                    read += [c for c in page["changes"] if int(c["seq"]) > cursor]
                    cursor = max(cursor, int(page["cursor"]))
                except (KeyError, TypeError, ValueError) as exc:
                    push.note = f"the changes page was not as documented ({exc!r})"
                    break
                if not page.get("more"):
                    break
            self.inbox.keep(account, read)
            self.inbox.cursors[account] = cursor
            push.note = push.note or f"read {len(read)} changes, cursor {start} to {cursor}"

    async def callbacks(self, request: web.Request) -> web.Response:
        return _page("Pushes received", f"<p>The last {KEPT_PUSHES}, newest first.</p>"
                     f"{_pushes(list(self.inbox.pushes), with_account=True)}<p><a href='/'>home</a></p>")


CONNECT_ERRORS = {
    "access_denied": "You cancelled, or declined the permissions the calendar connection needs.",
    "consent_required": "Your organisation's administrator must approve this application first.",
    "interaction_required": "Microsoft needs you to complete more sign-in steps.",
    "login_required": "Microsoft needs you to sign in.",
    "sign_in_refused": "Microsoft did not accept the sign-in.",
    "mailbox_unsupported": "This mailbox cannot be reached through Microsoft Graph (for example, it is "
                           "hosted on-premises or has no Exchange Online licence).",
}

STATUS_TEXT = {
    "pending": "Waiting for confirmation", "active": "Connected", "degraded": "Connected, with problems",
    "needs_reconnect": "Needs you to sign in again", "unsupported": "Cannot be synced",
    "disconnected": "Disconnected",
}


def _describe(account: dict) -> str:
    """The account as a person reads it: status, mailbox, since when; a Reconnect button when needed."""
    rows = [("Status", STATUS_TEXT.get(str(account.get("status")), str(account.get("status")))),
            ("Mailbox", str(account.get("mailbox") or account.get("username") or "")),
            ("Name", str(account.get("display_name") or "")),
            ("Connected since", _utc_text(account.get("consented_at")))]
    if account.get("reason"):
        rows.append(("Reason", str(account["reason"])))
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    reconnect = ""
    if account.get("status") == "needs_reconnect" and account.get("reconnect_url"):
        reconnect = (f"<form method='get' action='{html.escape(str(account['reconnect_url']))}'>"
                     "<button>Reconnect</button></form>")
    links = f"<p><a href='/accounts/{html.escape(str(account.get('account')))}'>refresh</a> · <a href='/'>home</a></p>"
    return f"<table>{table}</table>{reconnect}{links}"


def _error(body: dict, home: bool = True) -> str:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return (f"<p>{html.escape(str(error.get('message', 'The request failed.')))}</p>"
            f"<p>(<code>{html.escape(str(error.get('code', '')))}</code>)</p>"
            + ("<p><a href='/'>home</a></p>" if home else ""))


def _pushes(pushes: list[Push], with_account: bool = False) -> str:
    """Newest first; what each says, whether it was accepted (or why not) and what reading it gave."""
    rows: list[tuple[object, ...]] = []
    for push in reversed(pushes):
        body, says = push.body, ""
        if body.get("type") == "changes":
            says = f"up to {body.get('cursor')}"
        elif body.get("type") == "account_status":
            says = f"{body.get('status')} {body.get('reason') or ''}".strip()
        row = (_utc_text(push.received), body.get("type"), says,
               f"refused: {push.refused}" if push.refused else "accepted", push.note, body.get("id"))
        rows.append((push.account, *row) if with_account else row)
    head = ("Received", "Type", "Says", "Result", "Done", "Id")
    return _table(("Account", *head) if with_account else head, rows)


def _changes(changes: list[dict[str, Any]]) -> str:
    return _table(("Seq", "Kind", "Calendar", "Event", "At", "To"), [
        (c.get("seq"), c.get("kind"), c.get("calendar"), c.get("event"), _utc_text(c.get("at")), c.get("to"))
        for c in reversed(changes)])


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """Rows as an HTML table, every cell escaped (None as empty); a line saying so when there are none."""
    if not rows:
        return "<p>None.</p>"
    cells = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                    for row in rows)
    return "<table><tr>" + "".join(f"<th align='left'>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"


def _when(event: dict[str, Any]) -> str:
    """An event's start as its organizer reads it: the dates when all-day, else the wall clock in its zone."""
    if event.get("is_all_day") and event.get("start_date"):
        first = str(event["start_date"])
        try:
            last = (date.fromisoformat(str(event["end_date"])) - timedelta(days=1)).isoformat()
        except (KeyError, TypeError, ValueError):
            last = first
        return f"{first} (all day)" if last <= first else f"{first} to {last} (all day)"
    if not event.get("local_start"):
        return _utc_text(event.get("start"))
    local, flag = str(event["local_start"]).replace("T", " ")[:16], event.get("zone_flag")
    return f"{local} UTC (its zone is {flag})" if flag else f"{local} {event.get('zone') or 'UTC'}"


def _utc_text(value: object) -> str:
    return str(value or "").replace("T", " ").replace("Z", " UTC")


def _account_path(account: str, tail: str = "") -> str:
    return f"accounts/{quote(account, safe='')}{tail}"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"))
