"""Sending many queue messages at once, with bounded concurrency: a webhook batch or a timer's fan-out
would otherwise pay one round trip after another."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable

from shared.messages import Message
from shared.store.ports import WorkQueue

SEND_CONCURRENCY = 16


async def send_all(queue: WorkQueue, messages: Iterable[tuple[Message, float]]) -> None:
    """Send each (message, initial delay in seconds); the first failure is raised."""
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(message: Message, delay: float) -> None:
        async with limit:
            await queue.send(message, delay_seconds=delay)

    await asyncio.gather(*(send(m, d) for m, d in messages))


def spread_delay(account: str, spread_seconds: float) -> float:
    """A stable delay in [0, spread) per account: the same account always lands at the same offset, and a
    fleet spreads evenly over the spread."""
    if spread_seconds <= 0:
        return 0.0
    digest = int.from_bytes(hashlib.sha256(account.encode()).digest()[:8], "big")
    return float(digest % int(spread_seconds))
