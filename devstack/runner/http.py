"""HTTP triggers on aiohttp.web: the routes, methods and auth levels the decorators declare.

What follows the host:
- Routes are ``/<routePrefix>/<route>`` (routePrefix from host.json, default ``api``), matched
  case-insensitively, with ASP.NET-style parameters: ``{name}``, ``{id:int}`` (also long, alpha,
  bool, guid, double, float, decimal), optional ``{x?}``, defaults ``{x=v}`` and catch-all ``{*rest}``.
  More specific templates win over less specific ones (literal > constrained > plain > optional).
- A known route called with a method the function does not declare answers 404, not 405: the host's
  routing selects on route and method together (Azure/azure-functions-host#10098, "Function app
  should return 405 for request on known route but unsupported HTTP method", still open).
- FUNCTION level needs the function key or the master key in ``x-functions-key`` or ``?code=``; ADMIN
  needs the master key; ANONYMOUS needs nothing. A missing or wrong key is 401 with an empty body.
- A function that raises gives 500 with an empty body; the traceback goes to the log only.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devstack.runner.config import RunnerConfig
from devstack.runner.index import FunctionSpec, UnsupportedFunction
from devstack.runner.invoke import invoke

log = logging.getLogger("devstack.runner")

_CONSTRAINTS = {
    "int": r"-?\d+", "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])",
    "guid": r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?",
    "double": r"-?\d+(?:\.\d+)?", "float": r"-?\d+(?:\.\d+)?", "decimal": r"-?\d+(?:\.\d+)?",
}
_PARAM = re.compile(r"\{([^{}]+)\}")
_SPEC = re.compile(r"^(?P<star>\*)?(?P<name>\w+)(?P<constraints>(?::\w+)*)(?P<optional>\?)?(?:=(?P<default>[^?]*))?$")


@dataclass(frozen=True)
class Route:
    spec: FunctionSpec
    template: str                      # as the client sees it, e.g. /api/items/{id:int}
    pattern: re.Pattern[str]
    methods: frozenset[str] | None     # None: every method
    auth_level: str
    defaults: dict[str, str]
    precedence: tuple[int, ...]        # lower sorts first: more specific

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        params = {k: v for k, v in found.groupdict().items() if v is not None}
        return {**self.defaults, **params}


def compile_route(template: str, prefix: str) -> tuple[re.Pattern[str], dict[str, str], tuple[int, ...]]:
    """Turn an ASP.NET-style route template into a regex over the request path."""
    full = "/".join(part for part in (prefix, template.strip("/")) if part)
    regex, defaults, precedence = "", {}, []
    for segment in full.split("/"):
        params = list(_PARAM.finditer(segment))
        if not params:
            regex += "/" + re.escape(segment)
            precedence.append(0)
            continue
        seg_regex, pos, rank = "", 0, 0
        for param in params:
            seg_regex += re.escape(segment[pos:param.start()])
            pos = param.end()
            parsed = _SPEC.match(param.group(1))
            if parsed is None:
                raise UnsupportedFunction(f"route {template!r}: cannot read parameter {param.group(0)}")
            constraints = [c.lower() for c in parsed["constraints"].split(":") if c]
            unknown = [c for c in constraints if c not in _CONSTRAINTS]
            if unknown:
                raise UnsupportedFunction(f"route {template!r}: constraints {unknown} are not supported")
            if parsed["default"] is not None:
                defaults[parsed["name"]] = parsed["default"]
            if parsed["star"]:
                value, param_rank = r".*", 4
            elif parsed["optional"] or parsed["default"] is not None:
                value, param_rank = (_CONSTRAINTS[constraints[-1]] if constraints else r"[^/]+"), 3
            elif constraints:
                value, param_rank = _CONSTRAINTS[constraints[-1]], 1
            else:
                value, param_rank = r"[^/]+", 2
            rank = max(rank, param_rank)
            seg_regex += f"(?P<{parsed['name']}>{value})"
        seg_regex += re.escape(segment[pos:])
        if rank >= 3 and len(params) == 1 and segment == params[0].group(0):
            # An optional or catch-all parameter that is a whole segment may be left out with its slash.
            regex += f"(?:/{seg_regex})?"
        else:
            regex += "/" + seg_regex
        precedence.append(rank)
    return re.compile(regex, re.IGNORECASE), defaults, tuple(precedence)


def build_routes(specs: list[FunctionSpec], prefix: str) -> list[Route]:
    routes = []
    for spec in specs:
        if spec.trigger_type != "httpTrigger":
            continue
        template = spec.trigger.get("route") or spec.name
        pattern, defaults, precedence = compile_route(template, prefix)
        methods = spec.trigger.get("methods")
        routes.append(Route(
            spec=spec, template="/" + "/".join(p for p in (prefix, template.strip("/")) if p), pattern=pattern,
            methods=frozenset(m.upper() for m in methods) if methods else None,
            auth_level=str(spec.trigger.get("authLevel", "FUNCTION")).upper(),
            defaults=defaults, precedence=precedence,
        ))
    return sorted(routes, key=lambda r: r.precedence)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers or query values become one comma-joined value, as ASP.NET's StringValues."""
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {key: ",".join(values) for key, values in out.items()}


def to_func_request(request: web.Request, body: bytes, route_params: dict[str, str]) -> func.HttpRequest:
    headers = _joined((k.lower(), v) for k, v in request.headers.items())
    return func.HttpRequest(method=request.method, url=str(request.url), headers=headers,
                            params=_joined(request.query.items()), route_params=route_params, body=body)


_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


def to_web_response(result: Any) -> web.Response:
    if result is None:
        return web.Response(status=204)  # assumed: no $return value -> 204 No Content
    if isinstance(result, str | bytes):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse")
    headers = [(k, v) for k, v in result.headers.items() if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "content-type" for k, _ in headers):
        # As the Python worker does: text types carry the charset.
        mimetype = result.mimetype
        headers.append(("Content-Type", f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/")
                        else mimetype))
    return web.Response(status=result.status_code, body=result.get_body(), headers=CIMultiDict(headers))


class HttpHost:
    """The aiohttp application that serves every HTTP trigger of the app."""

    def __init__(self, specs: list[FunctionSpec], config: RunnerConfig, route_prefix: str,
                 timeout: float | None = None) -> None:
        self.routes = build_routes(specs, route_prefix)
        self.config = config
        self.timeout = timeout
        self.app = web.Application(client_max_size=100 * 1024 * 1024)  # the host's 100 MB request limit
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    def _authorized(self, request: web.Request, level: str) -> bool:
        if self.config.skip_auth or level == "ANONYMOUS":
            return True
        given = request.headers.get("x-functions-key") or request.query.get("code") or ""
        accepted = [self.config.master_key]
        if level == "FUNCTION":
            accepted.append(self.config.function_key)
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in accepted)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") if request.path != "/" else "/"
        if path == "/" and request.method in ("GET", "HEAD"):
            return web.Response(text="Your Functions app is up and running (devstack runner).\n")
        if path.lower() == "/admin/host/status":
            if not self._authorized(request, "ADMIN"):
                return web.Response(status=401)
            return web.json_response({"id": self.config.host_id, "state": "Running", "version": "devstack"})
        for route in self.routes:
            route_params = route.match(path)
            if route_params is None or (route.methods is not None and request.method not in route.methods):
                continue
            if not self._authorized(request, route.auth_level):
                return web.Response(status=401)
            return await self._call(route, request, route_params)
        return web.Response(status=404)

    async def _call(self, route: Route, request: web.Request, route_params: dict[str, str]) -> web.Response:
        body = await request.read()
        try:
            result = await invoke(route.spec, to_func_request(request, body, route_params),
                                  reason=f"HTTP {request.method} {request.path}", time_limit=self.timeout)
            response = to_web_response(result)
        except Exception:
            # invoke() logged the failure with the function name and invocation id; the caller gets
            # no detail, like the host.
            response = web.Response(status=500)
        # The request log a support engineer reads: which answer each request got.
        log.info("HTTP %s %s -> %d (Functions.%s)", request.method, request.path, response.status, route.spec.name)
        return response


def describe(routes: list[Route], base_url: str) -> list[str]:
    """One line per route, like Core Tools' list of functions at start."""
    return [f"{r.spec.name}: [{','.join(sorted(r.methods or {'*'}))}] {base_url}{r.template} ({r.auth_level})"
            for r in routes]
