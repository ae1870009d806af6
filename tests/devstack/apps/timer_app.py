"""Test app for the runner's timer triggers; each firing is recorded in FIRED."""

from __future__ import annotations

from typing import Any

import azure.functions as func

app = func.FunctionApp()

FIRED: list[dict[str, Any]] = []


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=True)
async def tick(timer: func.TimerRequest) -> None:
    FIRED.append({"fn": "tick", "past_due": timer.past_due, "status": dict(getattr(timer, "schedule_status", {}))})


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", use_monitor=True)
def yearly(timer: func.TimerRequest) -> None:
    FIRED.append({"fn": "yearly", "past_due": timer.past_due, "status": dict(getattr(timer, "schedule_status", {}))})
