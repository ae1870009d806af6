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
        user = str((await request.post()).get("user") or "demo-user-1")[:64]
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
        if not (account and result and user):
            return _page("Nothing to confirm", "<p>Start from <a href='/'>the home page</a>.</p>", status=400)
        status, body = await self._call("POST", f"accounts/{account}/confirm",
                                        {"result": result, "external_ref": user})
        title = "Calendar connected" if status == 200 else "Not connected"
        links = f"<p><a href='/accounts/{html.escape(account)}'>account status</a> · <a href='/'>home</a></p>"
        return _page(title, f"<pre>{html.escape(json.dumps(body, indent=2))}</pre>{links}",
                     status=200 if status == 200 else 400)

    async def account(self, request: web.Request) -> web.Response:
        status, body = await self._call("GET", f"accounts/{request.match_info['account']}")
        return _page("Account", f"<pre>{html.escape(json.dumps(body, indent=2))}</pre><p><a href='/'>home</a></p>",
                     status=status)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"))
