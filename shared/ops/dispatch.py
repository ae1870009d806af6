"""How every queue trigger runs a message: parse it, hand it to its handler, and turn a failure into
what the error's disposition says (shared/errors.py). Failures that retrying cannot fix for this
account are settled here (status changed, journaled) and the message is done; everything else is
raised, so the host retries it and, after maxDequeueCount, moves it to the poison queue."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from shared.accounts.status import mark_unsupported
from shared.errors import Disposition, MailboxUnsupported, disposition
from shared.messages import Message, parse_message
from shared.ops.journal import JournalEntry
from shared.ops.logging import log_context
from shared.services import Services

log = logging.getLogger("shared.dispatch")


async def dispatch(body: str | bytes, handler: Callable[[Message], Awaitable[None]], services: Services,
                   *, dequeue_count: int | None = None) -> None:
    """:raises BadMessage: a malformed message (the host retries it into the poison queue).
    :raises Exception: anything retryable, unchanged."""
    message = parse_message(body)
    with log_context(account=message.account, stage=message.kind):
        try:
            await handler(message)
        except Exception as exc:
            outcome = disposition(exc)
            await services.journal.record(message.account, JournalEntry.failure(
                message.kind, exc, stage="queue", counts={"dequeue_count": dequeue_count or 0}))
            if outcome.disposition is Disposition.UNSUPPORTED and isinstance(exc, MailboxUnsupported):
                await mark_unsupported(services, message.account, exc)
                return
            if outcome.disposition in (Disposition.NEEDS_RECONNECT, Disposition.DROP):
                # The account's status already says it (needs_reconnect), or there is nothing left to do.
                log.info("%s for %s settled: %s", message.kind, message.account, outcome.disposition.value)
                return
            raise
