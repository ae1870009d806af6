"""GET /api/health: is this instance able to work? Reads settings only; connects to nothing, so a
load balancer probe costs nothing. Problems name settings, never their values."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shared.config import get_settings
from shared.errors import ConfigError

VERSION = "0.1.0"


@dataclass(frozen=True)
class HealthReport:
    status: str
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def http_status(self) -> int:
        return 200 if self.status == "ok" else 503

    def to_json(self) -> str:
        return json.dumps({"status": self.status, "version": VERSION, "problems": list(self.problems)})


def check() -> HealthReport:
    try:
        get_settings()
    except ConfigError as exc:
        return HealthReport("misconfigured", exc.problems)
    return HealthReport("ok")
