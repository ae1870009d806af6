"""The demo SaaS page of the local stack: a person connects a calendar from a browser."""

from __future__ import annotations

from aiohttp import web

from devstack.demo_saas import DemoSaas
from tests.devstack.world import browser


async def test_a_person_connects_a_calendar_through_the_demo_page(stack):
    demo = DemoSaas(stack.base, stack.function_key, f"http://127.0.0.1:{stack.demo_port}")
    runner = web.AppRunner(demo.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stack.demo_port).start()
    try:
        home = await stack.http.get(demo.public_url)
        assert "Connect Outlook calendar" in home.text
        started = await stack.http.post(f"{demo.public_url}/connect", data={"user": "person-7"})
        assert started.status_code == 302
        assert stack.http.cookies.get("demo_user") == "person-7"  # the demo's "logged-in user"
        opened = await stack.http.get(started.headers["location"])
        form = browser(stack.sim_session, stack.sim_url, opened.headers["location"], "megan@contoso.test")
        back = await stack.http.post(f"{stack.base}/api/oauth/callback", data=form)
        assert back.headers["location"].startswith(demo.return_url)
        landed = await stack.http.get(back.headers["location"])
        assert landed.status_code == 200, landed.text
        assert "Calendar connected" in landed.text
        assert "megan@contoso.test" in landed.text
        assert "<td>Connected</td>" in landed.text             # the status as a person reads it
        assert "Connected since" in landed.text
        assert " UTC" in landed.text
        assert "{" not in landed.text                          # not raw JSON

        # Cancel at the consent page: back to the demo product, which says why.
        started = await stack.http.post(f"{demo.public_url}/connect", data={"user": "person-7"})
        opened = await stack.http.get(started.headers["location"])
        form = browser(stack.sim_session, stack.sim_url, opened.headers["location"], "megan@contoso.test", "deny")
        back = await stack.http.post(f"{stack.base}/api/oauth/callback", data=form)
        assert back.status_code == 302
        assert back.headers["location"].startswith(demo.return_url + "?connect_error=access_denied")
        landed = await stack.http.get(back.headers["location"])
        assert "Not connected" in landed.text
        assert "cancelled" in landed.text
    finally:
        await runner.cleanup()
