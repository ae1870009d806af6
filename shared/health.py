"""Can this instance work? Checks the settings, storage and the application alarm (the app's own
credential refused by Entra ID).

``GET /api/health`` is anonymous (load balancers, uptime probes): it answers the status alone.
``GET /api/health/details`` needs a function key and adds the version and the problems: invalid
settings by name (never values), the storage error class, the alarm's reason and AADSTS code.
Anyone may probe the first, so it says nothing that helps an attacker map the configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.config import get_settings
from shared.context import Services
from shared.errors import ConfigError

VERSION = "0.1.0"


@dataclass(frozen=True)
class HealthReport:
    status: str
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def http_status(self) -> int:
        return 200 if self.status == "ok" else 503

    def to_json(self, *, details: bool) -> str:
        if not details:
            return json.dumps({"status": self.status})
        return json.dumps({"status": self.status, "version": VERSION, "problems": list(self.problems)})


async def check(services: Callable[[], Services]) -> HealthReport:
    """``services`` is called only once the settings are known to be valid (building them needs those)."""
    from shared.accounts.repository import AccountRepository
    from shared.accounts.status import APP_ALARM

    try:
        get_settings()
    except ConfigError as exc:
        return HealthReport("misconfigured", exc.problems)
    try:
        alarm = await AccountRepository(services().tables).get_app_state(APP_ALARM)
    except Exception as exc:  # any storage failure is the report itself, not a crash of the probe
        return HealthReport("degraded", (f"storage: {type(exc).__name__}",))
    if alarm is not None:
        code = alarm.get("aad_code") or ""
        return HealthReport("alarm", (f"app credential refused: {alarm.get('reason')} {code}".strip(),))
    return HealthReport("ok")
