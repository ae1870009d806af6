"""Queue dispatch: errors to outcomes, and the retry model (docs/architecture.md, "Retries"): Graph's
Retry-After honoured, short ones inline, long ones by re-sending the message with that delay, so that
throttling never consumes the host's dequeue count."""

from __future__ import annotations

import json

import pytest

from shared.accounts.model import Status
from shared.dispatch import MAX_INLINE_WAITS, MAX_THROTTLE_RESENDS, dispatch
from shared.errors import AccountAuthError, BadMessage, MailboxUnsupported, Throttled, TransientGraphError
from shared.messages import Subscribe, Sync, parse_message
from tests.unit.test_subscriptions import Subs


@pytest.fixture
def subs() -> Subs:
    return Subs()


class Sleeps:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


async def account_with_empty_sync_queue(subs: Subs) -> str:
    """An active account; the sync its confirm queued is taken off, so the queue shows only re-sends."""
    account = await subs.active_account()
    subs.services.queue.clear("sync")  # type: ignore[attr-defined]
    return account


def throttling(times: int, retry_after: float | None):
    """A handler that Graph throttles ``times`` times, then lets through; records the messages it ran."""
    ran: list = []

    async def handler(message):
        ran.append(message)
        if len(ran) <= times:
            raise Throttled("busy", retry_after=retry_after, status=429, code="ApplicationThrottled",
                            request_id="req-1")
    return handler, ran


async def test_dispatch_settles_what_retrying_cannot_fix_and_raises_the_rest(subs):
    account = await subs.active_account()

    async def dead_grant(message):
        raise AccountAuthError("invalid_grant", aad_code="AADSTS700082")

    async def failing(message):
        raise TransientGraphError("Graph failed to answer", status=503, code="UnknownError")

    async def unsupported(message):
        raise MailboxUnsupported("gone", status=404, code="MailboxNotEnabledForRESTAPI")

    body = Subscribe(account=account).to_json()
    await dispatch(body, dead_grant, subs.services)
    with pytest.raises(TransientGraphError):
        await dispatch(body, failing, subs.services)
    await dispatch(body, unsupported, subs.services)
    assert (await subs.account(account)).status is Status.UNSUPPORTED
    with pytest.raises(BadMessage):
        await dispatch(b"{not json", dead_grant, subs.services)
    entries = await subs.services.journal.recent(account)
    assert {"AccountAuthError", "TransientGraphError", "MailboxUnsupported"} <= {e.error_class for e in entries}
    assert {e.graph_error_code for e in entries} >= {"UnknownError", "MailboxNotEnabledForRESTAPI"}


async def test_a_short_retry_after_is_waited_inline(subs):
    account = await account_with_empty_sync_queue(subs)
    handler, ran = throttling(2, retry_after=3)
    sleeps = Sleeps()
    await dispatch(Sync(account=account).to_json(), handler, subs.services, sleep=sleeps)
    assert sleeps.waited == [3, 3]
    assert len(ran) == 3
    assert subs.services.queue.all_bodies("sync") == []


async def test_a_long_retry_after_resends_the_message_with_that_delay_and_its_first_enqueue_time(subs):
    """Review finding 6: the re-sent copy is a new message (dequeue count 0); the current one completes."""
    account = await account_with_empty_sync_queue(subs)
    handler, ran = throttling(1, retry_after=120)
    sleeps = Sleeps()
    body = Sync(account=account, reason="notification").to_json()
    await dispatch(body, handler, subs.services, dequeue_count=1, enqueued_at=1_789_999_000.0, sleep=sleeps)
    assert sleeps.waited == []
    (resent_body,) = subs.services.queue.all_bodies("sync")
    resent = parse_message(resent_body)
    assert resent == Sync(account=account, reason="notification")
    assert (resent.enqueued_at, resent.throttled) == (1_789_999_000.0, 1)
    assert await subs.services.queue.peek("sync") == []  # invisible for Retry-After
    subs.clock.advance(121)
    assert len(await subs.services.queue.peek("sync")) == 1
    # The next copy runs with the original enqueue time, whatever its own insertion time.
    await dispatch(resent_body, handler, subs.services, enqueued_at=1_790_000_120.0, sleep=sleeps)
    assert ran[-1].enqueued_at == 1_789_999_000.0
    (entry, *_) = [e for e in await subs.services.journal.recent(account) if e.stage == "throttled"]
    assert (entry.http_status, entry.graph_error_code, entry.graph_request_id) == (429, "ApplicationThrottled", "req-1")


async def test_repeated_short_waits_end_inline_waiting_and_resend(subs):
    account = await account_with_empty_sync_queue(subs)
    handler, ran = throttling(100, retry_after=1)
    sleeps = Sleeps()
    await dispatch(Sync(account=account).to_json(), handler, subs.services, sleep=sleeps)
    assert len(sleeps.waited) == MAX_INLINE_WAITS
    assert len(ran) == MAX_INLINE_WAITS + 1
    assert parse_message(subs.services.queue.all_bodies("sync")[0]).throttled == 1


async def test_a_throttle_without_retry_after_resends_after_a_default_wait(subs):
    account = await account_with_empty_sync_queue(subs)
    handler, _ = throttling(1, retry_after=None)
    await dispatch(Sync(account=account).to_json(), handler, subs.services, sleep=Sleeps())
    assert await subs.services.queue.peek("sync") == []
    subs.clock.advance(31)
    assert len(await subs.services.queue.peek("sync")) == 1


async def test_a_message_throttled_without_end_finally_fails_like_any_other(subs):
    account = await account_with_empty_sync_queue(subs)
    handler, _ = throttling(1000, retry_after=600)
    worn = json.loads(Sync(account=account).to_json()) | {"throttled": MAX_THROTTLE_RESENDS}
    with pytest.raises(Throttled):
        await dispatch(json.dumps(worn), handler, subs.services, sleep=Sleeps())
    assert subs.services.queue.all_bodies("sync") == []
