"""Calling one user function as the Python worker does: async functions on the event loop, sync
ones in a worker thread; each call has an invocation id that its log lines carry."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from devstack.runner.index import FunctionSpec

log = logging.getLogger("devstack.runner")


async def invoke(spec: FunctionSpec, trigger_input: Any, *, reason: str, time_limit: float | None = None) -> Any:
    """Run the function once and return its result.

    Log lines follow the host's ("Executing 'Functions.x' (Reason=..., Id=...)"). A failure is
    logged with the function name, the invocation id and the traceback, then re-raised so the
    trigger decides what happens next (HTTP 500, queue retry, timer waits for the next occurrence).
    """
    invocation_id = str(uuid.uuid4())
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
    started = time.monotonic()
    kwargs = {spec.arg_name: trigger_input}
    try:
        call = spec.user_function(**kwargs) if spec.is_async else asyncio.to_thread(spec.user_function, **kwargs)
        result = await asyncio.wait_for(call, time_limit)
    except BaseException as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        if isinstance(exc, asyncio.CancelledError):
            log.warning("Executed 'Functions.%s' (Cancelled, Id=%s, Duration=%dms)", spec.name, invocation_id, elapsed)
        else:
            log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", spec.name, invocation_id, elapsed,
                      exc_info=exc)
        raise
    log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id,
             int((time.monotonic() - started) * 1000))
    return result
