"""The JSON line every benchmark prints per metric, so figures can be followed from run to run:
``{"metric", "ours", "baseline", "ratio", "unit"}``, the baseline being the naive way measured in the same
run, and ``ratio`` > 1 always meaning better (baseline / ours for a cost, ours / baseline for a rate; null
when ours is 0, or a rate's baseline is)."""

from __future__ import annotations

import json
from typing import Any


def emit(metric: str, ours: float, baseline: float, unit: str, *, cost: bool, **extra: Any) -> None:
    ratio = None if not ours or (not cost and not baseline) else (baseline / ours if cost else ours / baseline)
    print(json.dumps({"metric": metric, "ours": round(ours, 1), "baseline": round(baseline, 1),
                      "ratio": round(ratio, 2) if ratio is not None else None, "unit": unit, **extra}))
