"""Test app for the runner's timer triggers; each firing is recorded in FIRED."""

from __future__ import annotations

from typing import Any

import azure.functions as func

app = func.FunctionApp()

FIRED: list[dict[str, Any]] = []


def _record(name: str, timer: func.TimerRequest) -> None:
    # schedule_status is on the concrete azure.functions.timer.TimerRequest the runner builds.
    FIRED.append({"fn": name, "past_due": timer.past_due, "status": dict(getattr(timer, "schedule_status", {}))})


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=True)
async def tick(timer: func.TimerRequest) -> None:
    _record("tick", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", use_monitor=True)
def yearly(timer: func.TimerRequest) -> None:
    _record("yearly", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
async def on_startup(timer: func.TimerRequest) -> None:
    _record("on_startup", timer)
