"""HTTP triggers through the runner over real HTTP: routes, methods, auth levels, conversion."""

from __future__ import annotations

import logging

import httpx
import pytest

from devstack.runner.config import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY

pytestmark = pytest.mark.azurite


@pytest.fixture
async def http(start_runner):
    runner = await start_runner("http_app:app")
    async with httpx.AsyncClient(base_url=runner.base_url, timeout=10) as client:
        yield client


async def test_anonymous_route_needs_no_key(http):
    response = await http.get("/api/hello")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(("headers", "params", "status"), [
    ({}, {}, 401),
    ({"x-functions-key": "wrong"}, {}, 401),
    ({"x-functions-key": DEFAULT_FUNCTION_KEY}, {}, 200),
    ({}, {"code": DEFAULT_FUNCTION_KEY}, 200),
    ({"x-functions-key": DEFAULT_MASTER_KEY}, {}, 200),   # the master key opens every level
])
async def test_function_level_needs_a_key(http, headers, params, status):
    response = await http.get("/api/items/7", headers=headers, params=params)
    assert response.status_code == status
    if status == 401:
        assert response.content == b""


@pytest.mark.parametrize(("key", "status"), [
    (None, 401), (DEFAULT_FUNCTION_KEY, 401), (DEFAULT_MASTER_KEY, 200),
])
async def test_admin_level_needs_the_master_key(http, key, status):
    headers = {"x-functions-key": key} if key else {}
    assert (await http.get("/api/ops/secret", headers=headers)).status_code == status


async def test_skip_auth_switch_opens_every_level(start_runner):
    runner = await start_runner("http_app:app", skip_auth=True)
    async with httpx.AsyncClient(base_url=runner.base_url) as client:
        assert (await client.get("/api/items/7")).status_code == 200
        assert (await client.get("/api/ops/secret")).status_code == 200


async def test_unknown_route_is_404(http):
    assert (await http.get("/api/nothing-here")).status_code == 404
    assert (await http.get("/hello")).status_code == 404  # routes live under the api prefix


async def test_undeclared_method_is_404_like_the_host(http):
    # The host answers 404, not 405 (Azure/azure-functions-host#10098).
    assert (await http.post("/api/hello")).status_code == 404
    assert (await http.delete("/api/items/7", headers={"x-functions-key": DEFAULT_FUNCTION_KEY})).status_code == 404


async def test_request_is_converted_intact(http):
    response = await http.post(
        "/api/items/42?q=x&q=y&other=1", content=b"\x00\xffbody",
        headers={"x-functions-key": DEFAULT_FUNCTION_KEY, "X-Custom": "abc", "Content-Type": "application/x-test"})
    assert response.status_code == 200
    assert response.headers["x-echo"] == "1"
    assert response.headers["content-type"] == "application/json"
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["route_params"] == {"id": "42"}
    assert echo["params"] == {"q": "x,y", "other": "1"}
    assert echo["headers"]["x-custom"] == "abc"
    assert echo["headers"]["content-type"] == "application/x-test"
    assert echo["body"] == "\x00\xffbody"
    assert echo["url"].endswith("/api/items/42?q=x&q=y&other=1")


async def test_route_constraint_and_precedence(http):
    key = {"x-functions-key": DEFAULT_FUNCTION_KEY}
    assert (await http.get("/api/items/abc", headers=key)).status_code == 404   # {id:int} refuses text
    literal = await http.get("/api/items/new", headers=key)
    assert literal.text == "the literal route wins over {id}"
    assert (await http.get("/api/ITEMS/5", headers=key)).json()["route_params"] == {"id": "5"}  # case-insensitive


async def test_optional_route_parameter(http):
    assert (await http.get("/api/names/ann")).json()["route_params"] == {"name": "ann"}
    assert (await http.get("/api/names/ann/more")).json()["route_params"] == {"name": "ann", "detail": "more"}


async def test_binary_bodies_and_status_pass_through(http):
    payload = bytes(range(256))
    response = await http.put("/api/bytes", content=payload)
    assert response.status_code == 201
    assert response.content == payload[::-1]
    assert response.headers["x-length"] == "256"
    assert response.headers["content-type"] == "application/octet-stream"


async def test_failure_is_500_without_details_and_logged(http, caplog):
    with caplog.at_level(logging.INFO, logger="devstack.runner"):
        response = await http.get("/api/boom")
    assert response.status_code == 500
    assert b"internal detail" not in response.content
    assert b"Traceback" not in response.content
    failed = [r for r in caplog.records if "Functions.boom" in r.getMessage() and "Failed" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert "Id=" in failed[0].getMessage()


async def test_sync_function_runs_in_a_worker_thread(http):
    response = await http.get("/api/sync")
    assert response.status_code == 200
    assert response.text != "MainThread"


async def test_host_status_needs_the_master_key(http):
    assert (await http.get("/admin/host/status")).status_code == 401
    status = await http.get("/admin/host/status", headers={"x-functions-key": DEFAULT_MASTER_KEY})
    assert status.json()["state"] == "Running"


async def test_the_request_log_shows_each_answers_status(http, caplog):
    caplog.set_level(logging.INFO, logger="devstack.runner")
    await http.get("/api/hello")
    assert "HTTP GET /api/hello -> 200 (Functions.hello)" in caplog.text
