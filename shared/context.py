"""The context every handler receives: settings, the stores, the journal and the clock.

Only ports live here, no adapter: a handler written against ``Services`` runs the same on Azure, on
Azurite and on the in-memory stores. What builds one is ``shared.wiring``, which sits above every
package it wires together.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock, system_clock
from shared.config import Settings
from shared.ops.journal import Journal
from shared.store.ports import TableStore, WorkQueue


@dataclass
class Services:
    settings: Settings
    tables: TableStore
    queue: WorkQueue
    journal: Journal
    clock: Clock = system_clock

    async def close(self) -> None:
        for resource in (self.tables, self.queue):
            close = getattr(resource, "close", None)
            if close is not None:
                await close()
