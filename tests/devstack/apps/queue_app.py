"""Test app for the runner's queue triggers. Each call is recorded in CALLS; the message body says
what to do: {"fail": true} raises, {"sleep": s} takes s seconds."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import azure.functions as func

app = func.FunctionApp()

CALLS: list[dict[str, Any]] = []


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
async def work(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    call = {"id": msg.id, "body": body, "dequeue_count": msg.dequeue_count, "pop_receipt": msg.pop_receipt,
            "insertion_time": msg.insertion_time, "expiration_time": msg.expiration_time,
            "next_visible": msg.time_next_visible, "type": f"{type(msg).__module__}.{type(msg).__name__}",
            "at": time.monotonic(), "finished": False}
    CALLS.append(call)
    try:
        order = json.loads(body)
    except ValueError:
        order = {}
    if isinstance(order, dict):
        await asyncio.sleep(order.get("sleep", 0))
        if order.get("fail"):
            raise RuntimeError(f"failing on purpose (attempt {msg.dequeue_count})")
    call["finished"] = True
    call["ended"] = time.monotonic()
