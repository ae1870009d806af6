"""A test webhook: a plain aiohttp server in its own thread (the simulator's deliveries must not wait on
the test's event loop) that answers Graph's validation handshake and records every notification POST.

Behaviour is set per test: how to answer the handshake, which status to return, how long to take.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devstack.certs import CertPaths
from devstack.serving import ServerThread


@dataclass
class Received:
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = json.loads(self.body)["value"]
        return value


@dataclass
class Webhook:
    certs: CertPaths | None = None  # None: plain http on 127.0.0.1 (needs allow_http_loopback_urls)
    # "echo" (correct), "encoded" (the token still URL-encoded), "json" (wrong content type),
    # "status" (answers ``validation_status``), "hang" (sleeps ``hang_seconds``)
    validation: str = "echo"
    validation_status: int = 500
    hang_seconds: float = 1.0
    status: int = 202  # answer to notifications
    statuses: dict[str, int] = field(default_factory=dict)  # per path, overrides ``status``
    delay: float = 0.0  # seconds before answering a notification
    validations: list[Received] = field(default_factory=list)
    posts: list[Received] = field(default_factory=list)
    server: ServerThread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Webhook:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.server = ServerThread(app, self.certs, 0).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def url(self, path: str = "notify") -> str:
        assert self.server is not None
        return f"{self.server.url}/{path}"

    def items(self, path: str = "/notify") -> list[dict[str, Any]]:
        """Every notification POSTed to ``path``, in arrival order."""
        with self._lock:
            return [item for post in self.posts if post.path == path for item in post.items]

    def batches(self, path: str = "/notify") -> list[list[dict[str, Any]]]:
        with self._lock:
            return [post.items for post in self.posts if post.path == path]

    def lifecycle_events(self, path: str = "/lifecycle") -> list[str]:
        return [item["lifecycleEvent"] for item in self.items(path)]

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(request.path, dict(request.query), request.headers.get("Content-Type", ""),
                            await request.read(), dict(request.headers))
        token = request.query.get("validationToken")
        if token is not None:
            with self._lock:
                self.validations.append(received)
            return await self._validate(request, token)
        with self._lock:
            self.posts.append(received)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.statuses.get(request.path, self.status))

    async def _validate(self, request: web.Request, token: str) -> web.Response:
        # aiohttp's request.query is already URL-decoded: echoing it is the correct answer.
        if self.validation == "echo":
            return web.Response(text=token, content_type="text/plain")
        if self.validation == "encoded":
            raw = request.raw_path.split("validationToken=", 1)[1].split("&", 1)[0]  # as sent, still encoded
            return web.Response(text=raw, content_type="text/plain")
        if self.validation == "json":
            return web.json_response(token)
        if self.validation == "hang":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(text=token, content_type="text/plain")
        return web.Response(status=self.validation_status, text=token, content_type="text/plain")
