"""The simulator's HTTPS server: identity, Graph and control routes over one state, with Graph's
request-id headers, the request log and optional persistence to a JSON file."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from devstack.certs import CertPaths, ensure_certs
from devstack.m365.batch import BATCH_HEADER, batch_routes
from devstack.m365.calendarview import CalendarViews
from devstack.m365.control import Control
from devstack.m365.eventcontrol import EventControl
from devstack.m365.events import EventOps, Events
from devstack.m365.graph import Graph, GraphAuth, GraphError, graph_error_response
from devstack.m365.identity import Identity, Signer
from devstack.m365.notifications import Notifier
from devstack.m365.schedule import Schedules
from devstack.m365.state import LoggedRequest, SimState, new_id
from devstack.m365.subscriptions import SubscriptionControl, Subscriptions
from devstack.m365.throttling import gate_middleware
from devstack.serving import CLIENT_REQUEST_ID, MAILBOX, REQUEST_ID, ServerThread

DEFAULT_PORT = 7443


def build_app(state: SimState, signer: Signer, state_file: Path | None = None,
              client_ssl: ssl.SSLContext | None = None) -> web.Application:
    """``client_ssl``: trust for the simulator's own calls to webhooks (the local CA in tests and ``up``)."""
    auth = GraphAuth(state, signer)
    notifier = Notifier(state, client_ssl or ssl.create_default_context())
    subscriptions = Subscriptions(state, auth, notifier)

    @web.middleware
    async def around(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request[REQUEST_ID] = new_id()
        client_request_id = request.headers.get("client-request-id")
        is_graph = request.path.startswith("/v1.0/")
        # Graph answers with the client's client-request-id, or its own request id when none was sent.
        request[CLIENT_REQUEST_ID] = client_request_id or request_id
        log = state.requests  # a request still running when the state is reset is not logged in the fresh one
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            if not is_graph:
                raise
            segment = request.path.rstrip("/").rsplit("/", 1)[-1]
            response = graph_error_response(request, state, GraphError(
                400, "BadRequest", f"Resource not found for the segment '{segment}'."))
        if is_graph:
            response.headers["request-id"] = request_id
            response.headers["client-request-id"] = request[CLIENT_REQUEST_ID]
        else:
            response.headers["x-ms-request-id"] = request_id
            if client_request_id:
                response.headers["client-request-id"] = client_request_id
        if not request.path.startswith("/_sim/") and state.requests is log:
            route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
            with state.lock:
                state.log_request(LoggedRequest(
                    time=state.clock.now(), method=request.method, path=request.path, route=f"{request.method} {route}",
                    status=response.status, mailbox=request.get(MAILBOX), request_id=request_id,
                    client_request_id=client_request_id, connection=_peer(request),
                    batch=request.headers.get(BATCH_HEADER)))
        if state_file is not None and request.method != "GET":
            with state.lock:
                state.save(state_file)
        return response

    async def deliver_in_background(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(notifier.run_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await notifier.close()

    app = web.Application(middlewares=[around, gate_middleware(state, auth)])
    app.cleanup_ctx.append(deliver_in_background)
    app.add_routes(Identity(state, signer).routes())
    graph = Graph(state, auth)
    event_ops = EventOps(state, notifier)
    app.add_routes(graph.routes())
    events = Events(state, auth, graph, event_ops)
    app.add_routes(events.routes())
    app.add_routes(CalendarViews(state, auth, events).routes())
    app.add_routes(Schedules(state, auth, graph).routes())
    app.add_routes(EventControl(state, event_ops).routes())
    app.add_routes(subscriptions.routes())
    app.add_routes(Control(state, after_user_action=subscriptions.after_user_action,
                           after_clock=lambda: notifier.flush(10)).routes())
    app.add_routes(SubscriptionControl(state, subscriptions, notifier).routes())
    app.add_routes(batch_routes(state, auth, client_ssl or ssl.create_default_context(), app))
    return app


@dataclass
class Simulator:
    """The simulator on 127.0.0.1. ``port`` 0 picks a free port (tests)."""

    state: SimState = field(default_factory=SimState)
    port: int = DEFAULT_PORT
    certs: CertPaths = field(default_factory=ensure_certs)
    state_file: Path | None = None
    signer: Signer = field(default_factory=Signer)
    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "simulator not started"
        return self.server.url

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    def start(self) -> Simulator:
        app = build_app(self.state, self.signer, self.state_file, self.certs.client_ssl_context())
        self.server = ServerThread(app, self.certs, self.port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def load_or_new_state(state_file: Path | None) -> tuple[SimState, bool]:
    """The saved state if the file exists (True), else an empty one (False)."""
    if state_file is not None and state_file.exists():
        try:
            return SimState.load(state_file), True
        except (ValueError, TypeError, KeyError) as exc:
            raise RuntimeError(f"cannot load {state_file} ({exc}); delete it to start from the demo seed") from exc
    return SimState(), False


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else ""
