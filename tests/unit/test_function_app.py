"""The function index as the host sees it, through the azure-functions library."""

from __future__ import annotations

import json

import pytest

import function_app


@pytest.fixture(scope="module")
def functions():
    # get_functions() may be called once per app instance (platform notes §4).
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def test_health_route_is_anonymous_get(functions):
    trigger = json.loads(functions["health_check"].get_raw_bindings()[0])
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "health"
    assert trigger["methods"] == ["GET"]
    assert trigger["authLevel"] == "ANONYMOUS"
