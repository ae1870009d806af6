"""Test app for the simulator's notifications: a Graph webhook as an azure.functions app on the local runner.
It answers the validation handshake with the decoded token and otherwise keeps what it received and
answers 202 (Receive change notifications through webhooks, https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

RECEIVED: list[tuple[str, dict[str, Any]]] = []  # (route, notification item)


def _receive(route: str, req: func.HttpRequest) -> func.HttpResponse:
    token = req.params.get("validationToken")
    if token is not None:
        return func.HttpResponse(token, mimetype="text/plain")
    RECEIVED.extend((route, item) for item in json.loads(req.get_body())["value"])
    return func.HttpResponse(status_code=202)


@app.route(route="notifications", methods=["POST"])
async def notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _receive("notifications", req)


@app.route(route="lifecycle", methods=["POST"])
async def lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return _receive("lifecycle", req)
