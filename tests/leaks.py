"""The leak scan: every token, code and secret the simulator issued (and the client secret) must be
absent from logs, every table and every queue."""

from __future__ import annotations

import json

import requests

from shared.config import QUEUES
from shared.context import Services
from shared.store.ports import TABLES


def issued_secrets(session: requests.Session, sim_url: str, client_secret: str | None) -> set[str]:
    issued = session.get(f"{sim_url}/_sim/issued", timeout=10).json()["issued"]
    return {str(item["value"]) for item in issued if item.get("value")} | {str(client_secret)}


async def leaked(secrets: set[str], services: Services, log_text: str) -> list[str]:
    dumped = [log_text]
    for table in TABLES:
        dumped += [json.dumps(dict(r.data), default=str) async for r in services.tables.scan(table)]
    for queue in QUEUES:
        dumped += await services.queue.peek(queue)
    haystack = "\n".join(dumped)
    return sorted(s for s in secrets if s in haystack)
