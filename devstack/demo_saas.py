"""A stand-in for the SaaS product, so a person running the local stack can connect a calendar from a
browser: http://127.0.0.1:7080 creates a connect session (server to server, with the function key),
sends the browser to the link, takes the return URL and confirms the connection for the "logged-in"
demo user. It plays the role the README's "Connecting calendars" section describes; not deployed."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import aiohttp
from aiohttp import web

DEFAULT_PORT = 7080
USER_COOKIE = "demo_user"


@dataclass(frozen=True)
class DemoSaas:
    functions_url: str      # e.g. http://127.0.0.1:7071
    function_key: str
    public_url: str         # e.g. http://127.0.0.1:7080

    @property
    def return_url(self) -> str:
        return f"{self.public_url}/connected"

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/", self.home), web.post("/connect", self.connect),
                        web.get("/connected", self.connected), web.get("/accounts/{account}", self.account)])
        return app

    async def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as session, session.request(
                method, f"{self.functions_url}/api/{path}", json=body,
                headers={"x-functions-key": self.function_key}) as response:
            return response.status, await response.json(content_type=None)

    async def home(self, request: web.Request) -> web.Response:
        user = request.cookies.get(USER_COOKIE, "demo-user-1")
        return _page("Demo SaaS", f"""
          <p>You are signed in to the demo product as <b>{html.escape(user)}</b>.</p>
          <form method="post" action="/connect">
            <label>Your user id in the product <input name="user" value="{html.escape(user)}"></label>
            <button>Connect Outlook calendar</button>
          </form>
          <p>The Microsoft sign-in page is the local simulator (https://127.0.0.1:7443, certificate from the
          local CA in .devstack/ca/). Demo users: adele@contoso.test, megan@contoso.test.</p>""")

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
        status, body = await self._call("POST", f"accounts/{account}/confirm",
                                        {"result": result, "external_ref": user})
        if status != 200:
            return _page("Not connected", _error(body), status=400)
        return _page("Calendar connected", _describe(body))

    async def account(self, request: web.Request) -> web.Response:
        status, body = await self._call("GET", f"accounts/{request.match_info['account']}")
        if status != 200:
            return _page("Account", _error(body), status=status)
        return _page("Account", _describe(body))


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
    since = str(account.get("consented_at") or "")
    rows = [("Status", STATUS_TEXT.get(str(account.get("status")), str(account.get("status")))),
            ("Mailbox", str(account.get("mailbox") or account.get("username") or "")),
            ("Name", str(account.get("display_name") or "")),
            ("Connected since", since.replace("T", " ").replace("Z", " UTC"))]
    if account.get("reason"):
        rows.append(("Reason", str(account["reason"])))
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    reconnect = ""
    if account.get("status") == "needs_reconnect" and account.get("reconnect_url"):
        reconnect = (f"<form method='get' action='{html.escape(str(account['reconnect_url']))}'>"
                     "<button>Reconnect</button></form>")
    links = f"<p><a href='/accounts/{html.escape(str(account.get('account')))}'>refresh</a> · <a href='/'>home</a></p>"
    return f"<table>{table}</table>{reconnect}{links}"


def _error(body: dict) -> str:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return (f"<p>{html.escape(str(error.get('message', 'The request failed.')))}</p>"
            f"<p>(<code>{html.escape(str(error.get('code', '')))}</code>)</p><p><a href='/'>home</a></p>")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"))
