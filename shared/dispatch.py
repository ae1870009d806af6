"""How every queue trigger runs a message: parse it, hand it to its handler, and turn a failure into what
the error's disposition says (shared/errors.py). The retry model, written down in docs/architecture.md
("Retries"):

- **Throttling is not a failure.** Graph's Retry-After of up to THROTTLE_INLINE_MAX_SECONDS is waited
  inline and the handler runs again (at most ``MAX_INLINE_WAITS`` times per invocation). A longer one ends
  the invocation: the message is sent again with that delay, carrying its original enqueue time and one
  more in its throttle count, and the current copy completes. So throttling never consumes the host's
  dequeue count, and claims and coalescing rules still see the original message.
- **Failures that retrying cannot fix for this account** (a dead grant, an unsupported mailbox, a thing
  already gone) are settled here: status changed, journaled, message done.
- **Everything else is a real failure**: raised, so the host retries it after ``visibilityTimeout`` and,
  after ``maxDequeueCount`` deliveries, moves it to the ``-poison`` queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from shared.accounts.status import mark_unsupported
from shared.context import Services
from shared.errors import Disposition, MailboxUnsupported, Throttled, disposition
from shared.messages import Message, read_message
from shared.ops.journal import JournalEntry
from shared.ops.logging import log_context

log = logging.getLogger("shared.dispatch")

# Inline waits per invocation: the function timeout (10 minutes) stays far away.
MAX_INLINE_WAITS = 3
# A throttled response without Retry-After: wait this long before the message runs again.
DEFAULT_THROTTLE_SECONDS = 30.0
# Storage queues keep a message invisible for at most 7 days.
MAX_RESEND_DELAY_SECONDS = 7 * 24 * 3600 - 60
# A message throttled this often is treated as failing, so a runaway loop still ends in the poison queue.
MAX_THROTTLE_RESENDS = 100

Sleep = Callable[[float], Awaitable[None]]


async def dispatch(body: str | bytes, handler: Callable[[Message], Awaitable[None]], services: Services,
                   *, dequeue_count: int | None = None, enqueued_at: float | None = None,
                   sleep: Sleep = asyncio.sleep) -> None:
    """Run one queue message through its handler.

    :param enqueued_at: when the host says this copy was enqueued (its insertion time); a re-sent message
        keeps the first copy's.
    :raises BadMessage: a malformed message (the host retries it into the poison queue).
    :raises Exception: anything retryable, unchanged."""
    read = read_message(body)
    message = read.message
    if message.enqueued_at is None and enqueued_at is not None:
        message = replace(message, enqueued_at=enqueued_at)
    with log_context(account=message.account, stage=message.kind):
        inline_waits = 0
        while True:
            try:
                await handler(message)
                return
            except Throttled as exc:
                wait = exc.retry_after if exc.retry_after is not None else DEFAULT_THROTTLE_SECONDS
                if inline_waits < MAX_INLINE_WAITS and wait <= services.settings.throttle_inline_max_seconds:
                    inline_waits += 1
                    log.info("%s throttled by Graph; waiting %.1f s inline", message.kind, wait)
                    await sleep(wait)
                    continue
                if message.throttled >= MAX_THROTTLE_RESENDS:
                    await _journal_failure(services, message, exc, dequeue_count)
                    raise
                await _resend_later(services, message, exc, wait)
                return
            except Exception as exc:
                await _journal_failure(services, message, exc, dequeue_count)
                if await _settled(services, message, exc):
                    return
                raise


async def _resend_later(services: Services, message: Message, error: Throttled, wait: float) -> None:
    delay = min(max(wait, 1.0), MAX_RESEND_DELAY_SECONDS)
    again = replace(message, throttled=message.throttled + 1)
    await services.queue.send(again, delay_seconds=delay)
    await services.journal.record(message.account, JournalEntry(
        message.kind, "info", stage="throttled", http_status=error.status, graph_error_code=error.code,
        graph_request_id=error.request_id, client_request_id=error.client_request_id,
        counts={"throttled": again.throttled, "delay_seconds": int(delay)},
        detail=f"Graph asked to wait {wait:.0f} s; sent again with that delay"))


async def _settled(services: Services, message: Message, error: Exception) -> bool:
    """Settle what retrying cannot fix for this account; False for a real failure."""
    outcome = disposition(error)
    if outcome.disposition is Disposition.UNSUPPORTED and isinstance(error, MailboxUnsupported):
        await mark_unsupported(services, message.account, error)
        return True
    if outcome.disposition in (Disposition.NEEDS_RECONNECT, Disposition.DROP):
        # The account's status already says it (needs_reconnect), or there is nothing left to do.
        log.info("%s for %s settled: %s", message.kind, message.account, outcome.disposition.value)
        return True
    return False


async def _journal_failure(services: Services, message: Message, error: Exception, dequeue_count: int | None) -> None:
    await services.journal.record(message.account, JournalEntry.failure(
        message.kind, error, stage="queue", counts={"dequeue_count": dequeue_count or 0}))
