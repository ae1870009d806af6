"""Graph JSON batching: ``POST /v1.0/$batch``.

Sources: Combine multiple HTTP requests using JSON batching (https://learn.microsoft.com/en-us/graph/json-batching):
at most 20 requests, each with a unique ``id`` (case-insensitive; else the batch is 400), ``method``, a relative
``url``, ``headers`` (with Content-Type when there is a ``body``) and a ``body`` (JSON or base64); the batch answers
200 once it parses, each response carrying ``id``, ``status``, ``headers`` and ``body``, in any order; ``dependsOn``
orders requests and a request whose dependency failed gets 424. Microsoft Graph service-specific throttling limits,
"Outlook service limits for JSON batching" (https://learn.microsoft.com/en-us/graph/throttling-limits): Graph sends
Outlook at most four requests of a batch at a time, whatever mailboxes they target, and one at a time in
``dependsOn`` order. Microsoft Graph throttling guidance, "Throttling and batching"
(https://learn.microsoft.com/en-us/graph/throttling): each request is evaluated against the limits on its own and
may fail with 429 (and its own Retry-After) while the batch answers 200.

Each request runs as a real HTTPS request back through this simulator (its middlewares and routes, so throttling,
faults, the request log and every route apply to it as to a request sent alone), with the batch's Authorization.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from devstack.m365.graph import GraphAuth, GraphError, graph_error_response, read_body
from devstack.m365.state import SimState
from devstack.m365.throttling import is_outlook_path
from devstack.serving import REQUEST_ID

BATCH_HEADER = "x-sim-batch"  # marks a batch's requests in the request log (GET /_sim/requests: "batch")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT"})
# Transport headers of an item's own answer that a batch response does not repeat.
DROPPED_HEADERS = frozenset({"content-length", "date", "server", "connection", "keep-alive", "transfer-encoding",
                             "request-id", "client-request-id"})


@dataclass
class Item:
    id: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    depends_on: list[str] = field(default_factory=list)


def bad_batch(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def parse_items(body: dict[str, Any], limit: int) -> list[Item]:
    """The batch's requests, validated as the JSON batching page says; wording of the errors assumed."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise bad_batch("Invalid batch payload format.")
    if len(requests) > limit:
        raise bad_batch(f"The batch request contains {len(requests)} requests; at most {limit} are allowed.")
    items: list[Item] = []
    seen: set[str] = set()
    for raw in requests:
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw.get(k)
                                                for k in ("id", "method", "url")):
            raise bad_batch("Each request in a batch needs an id, a method and a url.")
        key = raw["id"].lower()  # ids are not case-sensitive
        if key in seen:
            raise bad_batch(f"Request id '{raw['id']}' is used more than once in the batch.")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict):
            raise bad_batch("Invalid batch payload format.")
        depends = raw.get("dependsOn") or []  # msgraph-sdk-python writes "depends_on", which Graph ignores
        if not isinstance(depends, list) or any(not isinstance(d, str) or d.lower() not in seen for d in depends):
            # A dependency must be a request earlier in the array (reported: msgraph-sdk-dotnet-core#891)
            raise bad_batch(f"Invalid dependency for request Id '{raw['id']}'.")
        item = Item(raw["id"], raw["method"].upper(), raw["url"], {str(k): str(v) for k, v in headers.items()},
                    raw.get("body"), list(depends))
        has_type = any(k.lower() == "content-type" for k in item.headers)
        if (item.body is not None and not has_type) or (item.method in WRITE_METHODS and item.body is None):
            # "headers ... required when the body is specified"; a write needs both (the page's example 4)
            raise bad_batch(f"Write request id : {item.id} does not contain Content-Type header or body.")
        seen.add(key)
        items.append(item)
    return items


class Batch:
    def __init__(self, state: SimState, auth: GraphAuth, client_ssl: ssl.SSLContext) -> None:
        self.state = state
        self.auth = auth
        self.client_ssl = client_ssl
        self.session: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1.0/$batch", self.handle)]

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def handle(self, request: web.Request) -> web.Response:
        try:
            self.auth.authenticate(request)  # the batch itself needs a valid token (401 otherwise)
            body = await read_body(request)
            items = parse_items(body, self.state.switches.batch_max_requests)
        except GraphError as exc:
            return graph_error_response(request, self.state, exc)
        origin = f"{request.scheme}://{request.host}"
        context = _Run(origin, request.headers["Authorization"], request[REQUEST_ID])
        if any(item.depends_on for item in items):
            # dependsOn: Graph sends the requests one at a time, in the order given
            for item in items:
                await self._run_item(item, context)
        else:
            limit = asyncio.Semaphore(max(1, self.state.switches.batch_outlook_concurrency))
            await asyncio.gather(*(self._run_item(item, context, limit) for item in items))
        with self.state.lock:
            self.state.batch_counts["batches"] += 1
            self.state.batch_counts["requests"] += len(items)
        order = self.state.switches.batch_response_order
        responses = context.done  # completion order
        if order == "request":
            responses = [context.results[item.id.lower()] for item in items]
        elif order == "reversed":
            responses = [context.results[item.id.lower()] for item in reversed(items)]
        return web.json_response({"responses": responses})

    async def _run_item(self, item: Item, run: _Run, limit: asyncio.Semaphore | None = None) -> None:
        failed = [d for d in item.depends_on if not 200 <= run.results[d.lower()]["status"] < 300]
        if failed:
            answer = _error(424, "FailedDependency", f"The request depends on request '{failed[0]}', which failed.")
            with self.state.lock:
                self.state.batch_counts["failedDependency"] += 1
        elif limit is not None and is_outlook_path("/v1.0/" + item.url.lstrip("/")):
            async with limit:  # at most batch_outlook_concurrency Outlook requests of this batch at a time
                answer = await self._send(item, run)
        else:
            answer = await self._send(item, run)
        result = {"id": item.id, **answer}
        run.results[item.id.lower()] = result
        run.done.append(result)

    async def _send(self, item: Item, run: _Run) -> dict[str, Any]:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", item.url):
            # Graph resolves the url against /v1.0, so an absolute URL fails on its first segment (reported:
            # msgraph-sdk-python#1015, whose BatchRequestItem sends absolute URLs)
            segment = item.url.split("/", 1)[0]
            return _error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        path = "/" + item.url.lstrip("/")
        if path.split("?", 1)[0].rstrip("/").lower() == "/$batch":
            return _error(400, "BadRequest", "A batch cannot contain another batch.")  # assumed
        headers = {k: v for k, v in item.headers.items() if k.lower() not in ("authorization", "host")}
        headers.update({"Authorization": run.authorization, BATCH_HEADER: run.batch_id})
        data: bytes | None = None
        if isinstance(item.body, str):
            try:
                data = base64.b64decode(item.body + "=" * (-len(item.body) % 4), altchars=b"-_")
            except ValueError:
                return _error(400, "BadRequest", "The body of a batch request is not valid base64.")
        elif item.body is not None:
            data = json.dumps(item.body).encode()
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.client_ssl, limit=0))
        try:
            async with self.session.request(item.method, run.origin + "/v1.0" + path, headers=headers,
                                            data=data) as response:
                content = await response.read()
                out = {k: v for k, v in response.headers.items() if k.lower() not in DROPPED_HEADERS}
                answer: dict[str, Any] = {"status": response.status, "headers": out}
                if content:
                    if "json" in response.headers.get("Content-Type", ""):
                        answer["body"] = json.loads(content)
                    else:
                        answer["body"] = base64.b64encode(content).decode()
                return answer
        except aiohttp.ClientError:
            # The request's own connection failed (a fault closed it): the batch reports a gateway timeout (assumed)
            return _error(504, "UnknownError", "The request did not complete.")


@dataclass
class _Run:
    origin: str
    authorization: str
    batch_id: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # by lower-cased id
    done: list[dict[str, Any]] = field(default_factory=list)  # in completion order


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"status": status, "headers": {"Content-Type": "application/json"},
            "body": {"error": {"code": code, "message": message}}}


def batch_routes(state: SimState, auth: GraphAuth, client_ssl: ssl.SSLContext,
                 app: web.Application) -> list[web.RouteDef]:
    """The route, with the loopback client closed when the app stops."""
    batch = Batch(state, auth, client_ssl)

    async def close_client(_: web.Application) -> AsyncIterator[None]:
        yield
        await batch.close()

    app.cleanup_ctx.append(close_client)
    return batch.routes()

