"""The OpenAPI document: it covers exactly the routes function_app.py declares, it is valid OpenAPI 3.1,
and what the handlers really answer fits its schemas."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openapi_spec_validator import validate

import function_app
from shared.openapi import ERROR_CODES, SCHEMAS, document
from tests.unit.test_connect import RETURN_URL, World


def declared_routes() -> set[tuple[str, str]]:
    function_app.app.functions_bindings = None  # get_functions() indexes once per app instance
    routes = set()
    for function in function_app.app.get_functions():
        binding = json.loads(function.get_raw_bindings()[0])
        if binding["type"] == "httpTrigger":
            routes |= {(f"/api/{binding['route']}", method.lower()) for method in binding["methods"]}
    return routes


def test_every_declared_route_is_documented_and_nothing_else():
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert declared_routes() == documented


def test_key_and_anonymous_routes_are_documented_as_such():
    function_app.app.functions_bindings = None
    anonymous = set()
    for function in function_app.app.get_functions():
        binding = json.loads(function.get_raw_bindings()[0])
        if binding["type"] == "httpTrigger" and binding["authLevel"] == "ANONYMOUS":
            anonymous.add(f"/api/{binding['route']}")
    for path, item in document()["paths"].items():
        for operation in item.values():
            assert (operation["security"] == []) == (path in anonymous), path


def test_the_document_is_valid_openapi_3_1():
    validate(document())


def fits(schema_name: str, body: bytes) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SCHEMAS}}
    jsonschema.validate(json.loads(body), schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def world() -> World:
    return World()


async def test_connect_answers_fit_their_schemas(world):
    created = await world.connector.create_session(
        json.dumps({"external_ref": "u1", "return_url": RETURN_URL}).encode())
    fits("ConnectSession", created.body)
    refused = await world.connector.create_session(b'{"external_ref": 5}')
    fits("Error", refused.body)
    account, token = await world.sign_in()
    confirmed = await world.confirm(account, token)
    fits("Account", confirmed.body)
    assert json.loads(confirmed.body)["consented_at"].endswith("Z")
    fits("Account", (await world.connector.get_account(account)).body)
    fits("Account", (await world.connector.disconnect(account, purge=False)).body)
    fits("Error", (await world.connector.get_account("nope")).body)


def test_a_schema_check_can_fail():
    with pytest.raises(jsonschema.ValidationError):
        fits("Error", b'{"error": {"code": "no_such_code", "message": "x"}}')
    assert "invalid_field" in ERROR_CODES
