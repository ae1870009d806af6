"""The function index as the host sees it, through the azure-functions library."""

from __future__ import annotations

import json

import pytest

import function_app


@pytest.fixture(scope="module")
def triggers():
    # get_functions() may be called once per app instance; a local runner in the
    # same test session may have indexed this app already, so start from a clean index.
    function_app.app.functions_bindings = None
    functions = function_app.app.get_functions()
    return {f.get_function_name(): json.loads(f.get_raw_bindings()[0]) for f in functions}


@pytest.mark.parametrize(("name", "route", "methods", "auth"), [
    ("health_check", "health", ["GET"], "ANONYMOUS"),
    ("health_details", "health/details", ["GET"], "FUNCTION"),
    ("openapi_document", "openapi.json", ["GET"], "ANONYMOUS"),
    ("notifications", "notifications", ["POST"], "ANONYMOUS"),
    ("lifecycle", "lifecycle", ["POST"], "ANONYMOUS"),
    ("connect_sessions", "connect-sessions", ["POST"], "FUNCTION"),
    ("connect_link", "connect/{session}", ["GET"], "ANONYMOUS"),
    ("oauth_callback", "oauth/callback", ["GET", "POST"], "ANONYMOUS"),
    ("confirm_account", "accounts/{account}/confirm", ["POST"], "FUNCTION"),
    ("account", "accounts/{account}", ["GET", "DELETE"], "FUNCTION"),
    ("poison_list", "poison", ["GET"], "FUNCTION"),
    ("poison_replay", "poison/{queue}/{id}/replay", ["POST"], "FUNCTION"),
    ("poison_discard", "poison/{queue}/{id}/discard", ["POST"], "FUNCTION"),
])
def test_http_routes_methods_and_auth_levels(triggers, name, route, methods, auth):
    trigger = triggers[name]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == route
    assert sorted(trigger["methods"]) == sorted(methods)
    assert trigger["authLevel"] == auth


def test_the_delta_reconciler_runs_on_the_reconcile_schedule(triggers):
    assert "connection_sweeper" not in triggers  # merged into the reconciler's one timer
    trigger = triggers["delta_reconciler"]
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%RECONCILE_SCHEDULE%"


def test_subscription_worker_and_renewer_bindings(triggers):
    assert triggers["subscription_worker"]["type"] == "queueTrigger"
    assert triggers["subscription_worker"]["queueName"] == "subscriptions"
    assert triggers["subscription_worker"]["connection"] == "AzureWebJobsStorage"
    assert triggers["subscription_renewer"]["type"] == "timerTrigger"
    assert triggers["subscription_renewer"]["schedule"] == "%RENEW_SCHEDULE%"


def test_every_queue_has_a_poison_handler_on_its_poison_twin(triggers):
    from shared.config import QUEUES

    poison = {t["queueName"] for t in triggers.values() if t["type"] == "queueTrigger"
              and t["queueName"].endswith("-poison")}
    assert poison == {f"{queue}-poison" for queue in QUEUES}
    assert all(t["connection"] == "AzureWebJobsStorage" for t in triggers.values() if t["type"] == "queueTrigger")
