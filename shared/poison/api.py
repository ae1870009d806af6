"""The poison routes (function key): ``GET /api/poison``, ``POST /api/poison/{queue}/{id}/replay`` and
``.../discard``. Errors have the shared shape (shared/api.py)."""

from __future__ import annotations

from collections.abc import Mapping

from shared.api import RequestError
from shared.context import Services
from shared.http import HttpResult, json_result
from shared.poison import operator
from shared.poison.rows import to_json


async def list_poison(services: Services, params: Mapping[str, str]) -> HttpResult:
    try:
        filters = operator.parse_filters(dict(params))
        page = await operator.list_rows(services, **filters)  # type: ignore[arg-type]
    except RequestError as exc:
        return exc.result()
    return json_result(200, {"items": [to_json(row) for row in page.rows], "next_page_token": page.next_token})


async def replay_poison(services: Services, queue: str, message_id: str) -> HttpResult:
    try:
        return json_result(200, to_json(await operator.replay(services, queue, message_id)))
    except RequestError as exc:
        return exc.result()


async def discard_poison(services: Services, queue: str, message_id: str) -> HttpResult:
    try:
        return json_result(200, to_json(await operator.discard(services, queue, message_id)))
    except RequestError as exc:
        return exc.result()
