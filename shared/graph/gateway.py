"""The Graph gateway: every product call to Microsoft Graph goes through ``send`` (the event writer's delta
rounds, the subscription worker, connect's profile check).

msgraph-sdk still does what it is good at (URLs from its request builders, the account's token through
kiota's authentication provider, claims challenges, Graph's middleware), on the one pooled HTTP client of
the process. What the gateway adds, in one place:

- ``Prefer: IdType="ImmutableId"`` on every request ("Obtain immutable identifiers for Outlook resources",
  https://learn.microsoft.com/en-us/graph/outlook-immutable-id) and ``odata.maxpagesize`` where asked.
- The answer as bytes (kiota's native response handler): pages are decoded by shared/graph/wire.py, not
  into SDK models.
- Retries on its own terms, not the SDK's (whose retry handler is off for every call here): the same
  request again after a 429/503/504, honouring ``Retry-After`` ("Microsoft Graph throttling guidance",
  https://learn.microsoft.com/en-us/graph/throttling), at most ``MAX_ATTEMPTS`` attempts and only waits up
  to ``THROTTLE_INLINE_MAX_SECONDS`` inline; a longer wait is raised as ``Throttled`` for the queue to
  wait out (shared/dispatch.py). A create (``Call.replayable`` false) is sent again only after a 429:
  after a lost answer or a 5xx it may have been done. A 401 drops the cached token and tries once more
  with a fresh one (kiota itself answers a claims challenge first); a 401 after that turns the account
  ``needs_reconnect``. Connect's profile check brings the sign-in's own token, which nothing refreshes.
- The per-mailbox governor (shared/graph/governor.py): writes before reads, at most 4 in flight.
- One journal entry per attempt: method, path (never the query: it carries state tokens), status, Graph's
  error code, ``request-id`` and ``client-request-id``, account, calendar, stage, attempt, whether it was
  a retry after a token refresh, and how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption
from msgraph.graph_service_client import GraphServiceClient

from shared.accounts.repository import AccountRepository
from shared.accounts.status import mark_needs_reconnect
from shared.auth.credential import TokenBroker
from shared.context import Services
from shared.errors import AccountAuthError, GraphError, Throttled, TransientGraphError
from shared.graph.client import graph_client
from shared.graph.errors import graph_error
from shared.graph.governor import MailboxGovernor
from shared.ops.journal import JournalEntry, Outcome

# Attempts per call (the first and three retries): a round resumes from its checkpoint anyway.
MAX_ATTEMPTS = 4
# Backoff of a 5xx or a lost connection without Retry-After: 1, 2, 4 s.
BACKOFF_SECONDS = 1.0
IMMUTABLE_IDS = 'IdType="ImmutableId"'

Sleep = Callable[[float], Awaitable[None]]
RequestBuilder = Callable[[GraphServiceClient], RequestInformation]


@dataclass(frozen=True)
class Call:
    """Who is calling and why: what the journal says about a request."""

    account: str | None           # None: a sign-in that is no account yet (connect's profile check)
    stage: str                    # e.g. "delta", "subscribe", "profile"
    calendar: str | None = None
    write: bool = False
    cleanup: bool = False         # a token for cleanup only (deleting what a closed account left)
    # False for a create: sent again after a lost answer or a 5xx it could make a duplicate, so only a
    # 429 (refused before any work, "Microsoft Graph throttling guidance") is retried.
    replayable: bool = True


@dataclass(frozen=True)
class GraphResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]
    request_id: str | None
    client_request_id: str

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (a resource); raises TransientGraphError for anything else."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise TransientGraphError("Graph's answer was not a JSON object", request_id=self.request_id,
                                      client_request_id=self.client_request_id)
        return decoded


class GraphGateway:
    def __init__(self, services: Services, broker: TokenBroker, governor: MailboxGovernor,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._services = services
        self._broker = broker
        self._governor = governor
        self._sleep = sleep

    def client(self, call: Call, credential: Any = None) -> GraphServiceClient:
        """The SDK client of the call's account (or on ``credential``), for building requests."""
        if credential is None:
            assert call.account is not None, "a call without an account brings its own credential"
            credential = self._broker.credential(call.account, cleanup=call.cleanup)
        return graph_client(self._services.settings, credential)

    async def send(self, call: Call, build: RequestBuilder, *, page_size: int | None = None,
                   credential: Any = None) -> GraphResponse:
        """Send the request ``build`` makes (rebuilt per attempt, so each carries the current token).
        ``credential``: a sign-in's own token (connect), instead of the account's from the token broker.

        :raises GraphError: the mapped error of the last attempt (``Throttled`` when the wait is too long
            to spend inline). :raises AccountAuthError: Graph refused a freshly refreshed token, or the
            sign-in's own."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            client = self.client(call, credential)
            info = build(client)
            info.headers.add("Prefer", IMMUTABLE_IDS)
            if page_size is not None:
                info.headers.add("Prefer", f"odata.maxpagesize={page_size}")
            client_request_id = str(uuid.uuid4())
            info.headers.try_add("client-request-id", client_request_id)
            # The SDK's retry handler off: retries happen here, journaled, where idempotency is known.
            info.add_request_options([RetryHandlerOption(max_retries=0),
                                      ResponseHandlerOption(NativeResponseHandler())])
            started = time.perf_counter()
            try:
                async with self._slot(call):
                    # With the native response handler kiota hands back httpx's response (typed as None).
                    adapter: Any = client.request_adapter
                    answer = await adapter.send_primitive_async(info, "bytes", None)
            except httpx.TransportError as exc:
                error: GraphError = TransientGraphError(f"no answer from Graph ({type(exc).__name__})",
                                                        client_request_id=client_request_id)
                await self._journal(call, info, attempt, refreshed, started, None, error, client_request_id)
                lost_wait = self._retry_wait(call, error, attempt)
                if lost_wait is None:
                    raise error from None
                await self._sleep(lost_wait)
                continue
            response = answer if isinstance(answer, httpx.Response) else None
            if response is None:
                raise TransientGraphError("Graph's answer did not reach the gateway",
                                          client_request_id=client_request_id)
            headers = {k.lower(): v for k, v in response.headers.items()}
            request_id = headers.get("request-id")
            if response.status_code < 400:
                await self._journal(call, info, attempt, refreshed, started, response.status_code, None,
                                    client_request_id, request_id)
                return GraphResponse(response.status_code, response.content, headers, request_id, client_request_id)
            code, message = _error_code(response.content)
            error = graph_error(response.status_code, code, headers=headers, message=message,
                                client_request_id=client_request_id)
            await self._journal(call, info, attempt, refreshed, started, response.status_code, error,
                                client_request_id, request_id)
            if response.status_code == 401:
                if call.account is None or credential is not None:
                    raise AccountAuthError("graph_refused_sign_in_token")  # nothing to refresh it from
                if refreshed:
                    await self._refused_after_refresh(call.account)
                self._broker.forget(call.account)
                refreshed = True
                continue
            wait = self._retry_wait(call, error, attempt)
            if wait is None:
                raise error
            await self._sleep(wait)

    def _retry_wait(self, call: Call, error: GraphError, attempt: int) -> float | None:
        """Seconds to wait before the same request again, or None to raise ``error`` now."""
        if not isinstance(error, Throttled | TransientGraphError) or attempt >= MAX_ATTEMPTS:
            return None
        if not call.replayable and error.status != 429:
            return None  # a create may have been done: only a 429 was certainly refused before any work
        retry_after = error.retry_after if isinstance(error, Throttled) else None
        wait = retry_after if retry_after is not None else BACKOFF_SECONDS * 2 ** (attempt - 1)
        if wait > self._services.settings.throttle_inline_max_seconds:
            if isinstance(error, Throttled):
                return None  # the queue waits it out (dispatch re-sends the message with that delay)
            wait = float(self._services.settings.throttle_inline_max_seconds)
        return wait

    def _slot(self, call: Call) -> contextlib.AbstractAsyncContextManager[None]:
        if call.account is None:
            return contextlib.nullcontext()  # a sign-in: no mailbox of ours to share yet
        return self._governor.slot(call.account, write=call.write)

    async def _refused_after_refresh(self, account_id: str) -> None:
        error = AccountAuthError("graph_refused_fresh_token")
        account = await AccountRepository(self._services.tables).get(account_id)
        if account is not None:
            await mark_needs_reconnect(self._services, account_id, error, generation=account.generation)
        raise error

    async def _journal(self, call: Call, info: RequestInformation, attempt: int, refreshed: bool, started: float,
                       status: int | None, error: GraphError | None, client_request_id: str,
                       request_id: str | None = None) -> None:
        method = info.http_method.value if info.http_method else "GET"
        path = urlsplit(info.url).path
        retry = f", attempt {attempt}" + (" after a token refresh" if refreshed else "")
        outcome: Outcome = "ok" if error is None else "error"
        what = f"{status}" if status is not None else "no answer"
        await self._services.journal.record(call.account, JournalEntry(
            "graph", outcome, stage=call.stage, calendar=call.calendar, http_status=status,
            graph_error_code=error.code if error else None, graph_request_id=request_id,
            client_request_id=client_request_id, duration_ms=int((time.perf_counter() - started) * 1000),
            counts={"attempt": attempt}, error_class=type(error).__name__ if error else None,
            detail=f"{method} {path}: {what}{retry}"))


def _error_code(body: bytes) -> tuple[str | None, str | None]:
    """Graph's error code and message from an error body ("Microsoft Graph error responses and resource
    types", https://learn.microsoft.com/en-us/graph/errors), when it has one."""
    try:
        error = json.loads(body).get("error", {})
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)
