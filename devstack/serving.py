"""Run an aiohttp application over HTTPS on 127.0.0.1 in a background thread with its own event loop.

A thread, not the caller's loop: msal is synchronous, so a test that calls msal from the event loop
that also served the simulator would deadlock.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from aiohttp import web

from devstack.certs import CertPaths

HOST = "127.0.0.1"

# Per-request values the middleware and the handlers share.
REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_REQUEST_ID = web.RequestKey("client_request_id", str)
MAILBOX = web.RequestKey("mailbox", str)


@dataclass
class ServerThread:
    """One HTTPS server (plain HTTP when ``certs`` is None). ``port`` 0 picks a free port; ``url`` is known
    once ``start`` returns."""

    app: web.Application
    certs: CertPaths | None
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.certs else 'http'}://{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"https-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"server did not start within {timeout:.0f} s")
        if errors:
            raise RuntimeError(f"server failed to start on port {self.port}: {errors[0]}") from errors[0]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        tls = self.certs.server_ssl_context() if self.certs else None
        site = web.TCPSite(self._runner, HOST, self.port, ssl_context=tls)
        await site.start()
        if self.port == 0:
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None
