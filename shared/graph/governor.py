"""The per-mailbox governor: at most ``limit`` Graph requests in flight per mailbox in this process,
writes admitted before reads.

Outlook allows 4 concurrent requests per app and mailbox ("Microsoft Graph service-specific throttling
limits", Outlook service limits, https://learn.microsoft.com/en-us/graph/throttling-limits); a fifth is
answered 429 ``MailboxConcurrency``. This governor keeps one process under that limit. Across processes the
sync lease (shared/sync/lease.py) keeps delta reads to one worker per mailbox, and a ``MailboxConcurrency``
429 that still happens is waited out by the gateway's retry (its Retry-After), never a failure.

Writes go first so that a booking is not starved behind a large sync's pages.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

MAILBOX_CONCURRENCY = 4


@dataclass
class _Gate:
    running: int = 0
    writes: deque[asyncio.Future[None]] = field(default_factory=deque)
    reads: deque[asyncio.Future[None]] = field(default_factory=deque)

    @property
    def idle(self) -> bool:
        return self.running == 0 and not self.writes and not self.reads


class MailboxGovernor:
    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self._gates: dict[str, _Gate] = {}

    def in_flight(self, mailbox: str) -> int:
        gate = self._gates.get(mailbox)
        return gate.running if gate else 0

    @asynccontextmanager
    async def slot(self, mailbox: str, *, write: bool) -> AsyncIterator[None]:
        gate = self._gates.setdefault(mailbox, _Gate())
        await self._acquire(gate, write)
        try:
            yield
        finally:
            self._release(mailbox, gate)

    async def _acquire(self, gate: _Gate, write: bool) -> None:
        queued_ahead = gate.writes if write else (gate.writes or gate.reads)
        if gate.running < self.limit and not queued_ahead:
            gate.running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (gate.writes if write else gate.reads).append(waiter)
        try:
            await waiter  # _hand_over gives the slot: running already counts this caller
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                gate.running -= 1  # granted and cancelled at once: pass the slot on
                self._hand_over(gate)
            else:
                queue = gate.writes if write else gate.reads
                if waiter in queue:
                    queue.remove(waiter)
            raise

    def _release(self, mailbox: str, gate: _Gate) -> None:
        gate.running -= 1
        self._hand_over(gate)
        if gate.idle:
            self._gates.pop(mailbox, None)

    def _hand_over(self, gate: _Gate) -> None:
        for queue in (gate.writes, gate.reads):  # writes first
            while queue and gate.running < self.limit:
                waiter = queue.popleft()
                if waiter.done():  # cancelled while queued; its task removes nothing more
                    continue
                gate.running += 1
                waiter.set_result(None)
