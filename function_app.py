"""The table of contents: every Azure Function of the app, each a few lines that parse the trigger
input, await one handler in shared/, and shape the output.

Nothing here connects to anything at import time: the host imports this module to index the
functions, and a cold start must stay fast (the webhook answers Graph's handshake within 10 s).
Handlers that need msal, Key Vault or msgraph-sdk import them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared import health
from shared.config import CALLBACKS_QUEUE, OUTBOUND_QUEUE, SUBSCRIPTIONS_QUEUE, SYNC_QUEUE, poison_queue
from shared.http import HttpResult
from shared.ops.logging import install_redaction
from shared.webhook import receiver
from shared.wiring import get_services, get_work_queue

if TYPE_CHECKING:
    from shared.connect.connector import Connector

install_redaction()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def respond(result: HttpResult) -> func.HttpResponse:
    return func.HttpResponse(result.body, status_code=result.status, headers=dict(result.headers),
                             mimetype=result.content_type.split(";")[0], charset="utf-8")


def connector() -> Connector:
    from shared.connect.connector import Connector
    from shared.wiring import get_auth

    auth = get_auth()
    return Connector(get_services(), auth.identity, auth.vault, auth.directory, auth.subscriptions)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health_check(req: func.HttpRequest) -> func.HttpResponse:
    report = await health.check(get_services)
    return respond(HttpResult(report.http_status, report.to_json(details=False).encode(), "application/json"))


@app.route(route="health/details", methods=["GET"])
async def health_details(req: func.HttpRequest) -> func.HttpResponse:
    report = await health.check(get_services, details=True)
    return respond(HttpResult(report.http_status, report.to_json(details=True).encode(), "application/json"))


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import document_bytes

    return respond(HttpResult(200, document_bytes(), "application/json"))


@app.route(route="notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def notifications(req: func.HttpRequest) -> func.HttpResponse:
    handshake = receiver.validation_response(req.params)
    if handshake is not None:
        return respond(handshake)  # before anything else: Graph allows 10 s, a cold start included
    return respond(await receiver.receive(req.get_body(), req.headers.get("content-type", ""),
                                          receiver.plan_notifications, get_work_queue))


@app.route(route="lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    handshake = receiver.validation_response(req.params)
    if handshake is not None:
        return respond(handshake)
    return respond(await receiver.receive(req.get_body(), req.headers.get("content-type", ""),
                                          receiver.plan_lifecycle, get_work_queue))


@app.route(route="connect-sessions", methods=["POST"])
async def connect_sessions(req: func.HttpRequest) -> func.HttpResponse:
    return respond(await connector().create_session(req.get_body()))


@app.route(route="connect/{session}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def connect_link(req: func.HttpRequest) -> func.HttpResponse:
    return respond(await connector().open_link(req.route_params.get("session", "")))


@app.route(route="oauth/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def oauth_callback(req: func.HttpRequest) -> func.HttpResponse:
    # Entra ID posts the response as a form (response_mode=form_post); GET carries errors from older links.
    raw = req.get_body().decode("utf-8", "replace") if req.method == "POST" else req.url.partition("?")[2]
    return respond(await connector().callback(raw))


@app.route(route="accounts/{account}/confirm", methods=["POST"])
async def confirm_account(req: func.HttpRequest) -> func.HttpResponse:
    return respond(await connector().confirm(req.route_params.get("account", ""), req.get_body()))


@app.route(route="accounts/{account}", methods=["GET", "DELETE"])
async def account(req: func.HttpRequest) -> func.HttpResponse:
    account_id = req.route_params.get("account", "")
    if req.method == "DELETE":
        from shared.api import RequestError, query_boolean

        try:
            purge = query_boolean(req.params, "purge", default=False)
        except RequestError as exc:
            return respond(exc.result())
        return respond(await connector().disconnect(account_id, purge=purge))
    return respond(await connector().get_account(account_id))


@app.route(route="accounts/{account}/breaker", methods=["POST"])
async def breaker(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sync.breaker import breaker_route

    return respond(await breaker_route(get_services(), req.route_params.get("account", ""), req.get_body()))


@app.route(route="accounts/{account}/bookings/{booking}", methods=["GET", "PUT", "DELETE"])
async def account_booking(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bookings.api import cancel_booking, get_booking, put_booking

    account, booking = req.route_params.get("account", ""), req.route_params.get("booking", "")
    if req.method == "PUT":
        return respond(await put_booking(get_services(), account, booking, req.get_body()))
    if req.method == "DELETE":
        return respond(await cancel_booking(get_services(), account, booking))
    return respond(await get_booking(get_services(), account, booking))


@app.route(route="accounts/{account}/bookings", methods=["GET"])
async def account_bookings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bookings.api import list_bookings

    return respond(await list_bookings(get_services(), req.route_params.get("account", ""), req.params))


@app.route(route="accounts/{account}/calendars", methods=["GET", "PUT"])
async def account_calendars(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sync.calendars import list_calendars, select_calendars
    from shared.wiring import get_event_writer

    source = get_event_writer().source
    account = req.route_params.get("account", "")
    if req.method == "PUT":
        return respond(await select_calendars(get_services(), source, account, req.get_body()))
    return respond(await list_calendars(get_services(), source, account))


@app.route(route="accounts/{account}/events", methods=["GET"])
async def account_events(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sync.events_api import list_events

    return respond(await list_events(get_services(), req.route_params.get("account", ""), req.params))


@app.route(route="accounts/{account}/availability", methods=["GET"])
async def account_availability(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sync.availability import availability

    return respond(await availability(get_services(), req.route_params.get("account", ""), req.params))


@app.route(route="accounts/{account}/changes", methods=["GET"])
async def account_changes(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sync.feed import read_changes

    return respond(await read_changes(get_services(), req.route_params.get("account", ""), req.params))


@app.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def delta_reconciler(timer: func.TimerRequest) -> None:
    from shared.reconciler import run_reconciler
    from shared.wiring import get_auth

    auth = get_auth()
    await run_reconciler(get_services(), auth.vault, auth.broker)


@app.queue_trigger(arg_name="msg", queue_name=SUBSCRIPTIONS_QUEUE, connection="AzureWebJobsStorage")
async def subscription_worker(msg: func.QueueMessage) -> None:
    from shared.accounts.purge import account_work_handler
    from shared.dispatch import dispatch
    from shared.subscriptions.worker import SubscriptionWorker
    from shared.wiring import get_auth

    handle = account_work_handler(get_services(), SubscriptionWorker(get_services(), get_auth().subscriptions).handle)
    await dispatch(msg.get_body(), handle, get_services(), dequeue_count=msg.dequeue_count,
                   enqueued_at=msg.insertion_time.timestamp() if msg.insertion_time else None)


@app.queue_trigger(arg_name="msg", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
async def event_writer(msg: func.QueueMessage) -> None:
    from shared.dispatch import dispatch
    from shared.wiring import get_event_writer

    await dispatch(msg.get_body(), get_event_writer().handle, get_services(), dequeue_count=msg.dequeue_count,
                   enqueued_at=msg.insertion_time.timestamp() if msg.insertion_time else None)


@app.timer_trigger(schedule="%RENEW_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def subscription_renewer(timer: func.TimerRequest) -> None:
    from shared.subscriptions.renewer import run_renewer

    await run_renewer(get_services())


@app.queue_trigger(arg_name="msg", queue_name=CALLBACKS_QUEUE, connection="AzureWebJobsStorage")
async def callback_worker(msg: func.QueueMessage) -> None:
    from shared.dispatch import dispatch
    from shared.pushes.worker import CallbackWorker

    await dispatch(msg.get_body(), CallbackWorker(get_services()).handle, get_services(),
                   dequeue_count=msg.dequeue_count,
                   enqueued_at=msg.insertion_time.timestamp() if msg.insertion_time else None)


@app.queue_trigger(arg_name="msg", queue_name=OUTBOUND_QUEUE, connection="AzureWebJobsStorage")
async def outbound_writer(msg: func.QueueMessage) -> None:
    from shared.bookings.writer import OutboundWriter
    from shared.dispatch import dispatch
    from shared.wiring import get_auth

    await dispatch(msg.get_body(), OutboundWriter(get_services(), get_auth().gateway).handle, get_services(),
                   dequeue_count=msg.dequeue_count,
                   enqueued_at=msg.insertion_time.timestamp() if msg.insertion_time else None)


# The poison handlers: one per queue, on the host's `<queue>-poison` twin (docs/architecture.md, "Poison").
@app.queue_trigger(arg_name="msg", queue_name=poison_queue(SYNC_QUEUE), connection="AzureWebJobsStorage")
async def sync_poison(msg: func.QueueMessage) -> None:
    await hold_poisoned(SYNC_QUEUE, msg)


@app.queue_trigger(arg_name="msg", queue_name=poison_queue(SUBSCRIPTIONS_QUEUE), connection="AzureWebJobsStorage")
async def subscriptions_poison(msg: func.QueueMessage) -> None:
    await hold_poisoned(SUBSCRIPTIONS_QUEUE, msg)


@app.queue_trigger(arg_name="msg", queue_name=poison_queue(OUTBOUND_QUEUE), connection="AzureWebJobsStorage")
async def outbound_poison(msg: func.QueueMessage) -> None:
    await hold_poisoned(OUTBOUND_QUEUE, msg)


@app.queue_trigger(arg_name="msg", queue_name=poison_queue(CALLBACKS_QUEUE), connection="AzureWebJobsStorage")
async def callbacks_poison(msg: func.QueueMessage) -> None:
    await hold_poisoned(CALLBACKS_QUEUE, msg)


async def hold_poisoned(queue: str, msg: func.QueueMessage) -> None:
    from shared.poison.hold import PoisonedMessage, hold

    await hold(get_services(), PoisonedMessage(
        queue, msg.id or "", msg.get_body(), msg.dequeue_count,
        msg.insertion_time.timestamp() if msg.insertion_time else None,
        msg.expiration_time.timestamp() if msg.expiration_time else None))


@app.route(route="poison", methods=["GET"])
async def poison_list(req: func.HttpRequest) -> func.HttpResponse:
    from shared.poison.api import list_poison

    return respond(await list_poison(get_services(), req.params))


@app.route(route="poison/{queue}/{id}/replay", methods=["POST"])
async def poison_replay(req: func.HttpRequest) -> func.HttpResponse:
    from shared.poison.api import replay_poison

    return respond(await replay_poison(get_services(), req.route_params.get("queue", ""),
                                       req.route_params.get("id", "")))


@app.route(route="poison/{queue}/{id}/discard", methods=["POST"])
async def poison_discard(req: func.HttpRequest) -> func.HttpResponse:
    from shared.poison.api import discard_poison

    return respond(await discard_poison(get_services(), req.route_params.get("queue", ""),
                                        req.route_params.get("id", "")))
