"""Test app for the runner's HTTP triggers: every auth level, route parameters, sync and async."""

from __future__ import annotations

import json
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "method": req.method, "url": req.url, "route_params": dict(req.route_params), "params": dict(req.params),
        "headers": dict(req.headers), "body": req.get_body().decode("latin-1"),
    }), mimetype="application/json", headers={"x-echo": "1"})


@app.route(route="hello", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")


@app.route(route="items/{id:int}", methods=["GET", "POST"])
async def items(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="items/new", methods=["GET"])
async def items_new(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the literal route wins over {id}")


@app.route(route="names/{name}/{detail?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def names(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="ops/secret", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def ops_secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin only")


@app.route(route="bytes", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
async def raw_bytes(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body()[::-1], status_code=201, mimetype="application/octet-stream",
                             headers={"x-length": str(len(req.get_body()))})


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("internal detail that must not reach the caller")


@app.route(route="sync", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def sync_function(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(threading.current_thread().name)
