"""The product's table store, metered for benchmarks: the time spent in it (how much of a run was
Azurite's) and the operations Table Storage bills (one per call, one per page of 1,000 rows a query
returns, one per transaction of 100 rows a bulk write sends)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any


class MeteredTables:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0
        self.ops = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in ("query", "scan"):
            def iterate(*args: Any, **kwargs: Any) -> Any:
                return self._metered_iter(attr(*args, **kwargs))
            return iterate
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def metered(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
            bulk = name == "bulk_write" and isinstance(result, int)
            self.ops += max(1, math.ceil(result / 100)) if bulk else 1
            return result
        return metered

    async def _metered_iter(self, rows: Any) -> Any:
        iterator = rows.__aiter__()
        n = 0
        while True:
            started = time.perf_counter()
            try:
                row = await iterator.__anext__()
            except StopAsyncIteration:
                self.ops += max(1, math.ceil(n / 1000))
                return
            finally:
                self.seconds += time.perf_counter() - started
            n += 1
            yield row
