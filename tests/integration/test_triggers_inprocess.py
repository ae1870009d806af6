"""Triggers called in-process through the azure-functions library's own request objects."""

from __future__ import annotations

import json

import azure.functions as func
import jsonschema

import function_app
from shared.accounts.status import raise_app_alarm
from shared.errors import AppAuthError
from shared.wiring import get_services
from tests.integration.conftest import SAMPLE


def health_request(path: str = "health") -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=f"http://localhost:7071/api/{path}", headers={}, params={},
                            route_params={}, body=b"")


async def test_health_is_ok_with_valid_settings(app_env):
    response = await function_app.health_check(health_request())
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body())["status"] == "ok"


async def test_health_names_missing_settings_without_values(app_env):
    app_env.delenv("CLIENT_ID")
    app_env.delenv("KEY_VAULT_URL")
    response = await function_app.health_details(health_request("health/details"))
    assert response.status_code == 503
    body = json.loads(response.get_body())
    assert body["status"] == "misconfigured"
    assert body["problems"] == ["KEY_VAULT_URL: missing", "CLIENT_ID: missing"]
    assert SAMPLE["CLIENT_SECRET"] not in response.get_body().decode()
    anonymous = await function_app.health_check(health_request())
    assert anonymous.status_code == 503
    assert json.loads(anonymous.get_body()) == {"status": "misconfigured"}  # no setting names for strangers


async def test_health_reports_the_app_alarm(app_env):
    await raise_app_alarm(get_services(), AppAuthError("invalid_client", aad_code="AADSTS7000222"))
    try:
        response = await function_app.health_details(health_request("health/details"))
        assert response.status_code == 503
        body = json.loads(response.get_body())
        assert body["status"] == "alarm"
        assert "AADSTS7000222" in body["problems"][0]
        anonymous = await function_app.health_check(health_request())
        assert json.loads(anonymous.get_body()) == {"status": "alarm"}
    finally:
        from shared.accounts.status import clear_app_alarm
        await clear_app_alarm(get_services())


async def test_health_details_tell_the_reconcilers_last_run_and_total_drift(app_env):
    from shared.openapi import SCHEMAS
    from shared.sync.reconcile import plan_due

    before = json.loads((await function_app.health_details(health_request("health/details"))).get_body())
    assert before["reconciler"]["last_run"] is None
    await plan_due(get_services())
    body = json.loads((await function_app.health_details(health_request("health/details"))).get_body())
    assert body["reconciler"]["last_run"].endswith("Z")
    assert (body["reconciler"]["drift_changes"], body["reconciler"]["drift_rounds"]) == (0, 0)
    schema = {"$ref": "#/components/schemas/HealthDetails", "components": {"schemas": SCHEMAS}}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


async def test_a_booking_through_its_trigger_is_stored_in_azurite_and_queued(app_env):
    from shared.accounts.model import Account, Identity, Status
    from shared.accounts.repository import AccountRepository
    from shared.ids import new_account_id
    from shared.messages import Outbound, parse_message

    services = get_services()
    account = new_account_id()
    await AccountRepository(services.tables).create(
        Account(account, Identity("t", "u", "u@contoso.test"), Status.ACTIVE, 1))
    body = {"version": 1, "subject": "Haircut", "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-10T09:30:00", "timeZone": "UTC"}}
    put = func.HttpRequest(method="PUT", url=f"http://localhost:7071/api/accounts/{account}/bookings/b-1",
                           headers={"content-type": "application/json"}, params={},
                           route_params={"account": account, "booking": "b-1"}, body=json.dumps(body).encode())
    answer = await function_app.account_booking(put)
    assert answer.status_code == 202, answer.get_body()
    get = func.HttpRequest(method="GET", url=f"http://localhost:7071/api/accounts/{account}/bookings/b-1",
                           headers={}, params={}, route_params={"account": account, "booking": "b-1"}, body=b"")
    read = json.loads((await function_app.account_booking(get)).get_body())
    assert (read["status"], read["desired"]["subject"]) == ("pending", "Haircut")
    queued = [parse_message(b) for b in await services.queue.peek("outbound")]
    assert Outbound(account=account, booking="b-1", version=1) in queued
