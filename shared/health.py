"""Can this instance work? Checks the settings, storage and the application alarm (the app's own
credential refused by Entra ID).

``GET /api/health`` is anonymous (load balancers, uptime probes): it answers the status alone.
``GET /api/health/details`` needs a function key and adds the version and the problems: invalid
settings by name (never values), the storage error class, the alarm's reason and AADSTS code; and the
delta reconciler's last run and the drift it has counted in total (lost notifications).
Anyone may probe the first, so it says nothing that helps an attacker map the configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shared.config import get_settings
from shared.context import Services
from shared.errors import ConfigError

VERSION = "0.1.0"


@dataclass(frozen=True)
class HealthReport:
    status: str
    problems: tuple[str, ...] = field(default_factory=tuple)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return 200 if self.status == "ok" else 503

    def to_json(self, *, details: bool) -> str:
        if not details:
            return json.dumps({"status": self.status})
        return json.dumps({"status": self.status, "version": VERSION, "problems": list(self.problems), **self.facts})


async def check(services: Callable[[], Services], *, details: bool = False) -> HealthReport:
    """``services`` is called only once the settings are known to be valid (building them needs those);
    ``details`` adds the reconciler's facts (two more point reads)."""
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
        report = HealthReport("alarm", (f"app credential refused: {alarm.get('reason')} {code}".strip(),))
    else:
        report = HealthReport("ok")
    return replace(report, facts=await _reconciler_facts(services())) if details else report


async def _reconciler_facts(services: Services) -> dict[str, Any]:
    from shared.accounts.repository import AccountRepository
    from shared.api import iso_utc
    from shared.sync.drift import drift_total
    from shared.sync.reconcile import STATE

    state = await AccountRepository(services.tables).get_app_state(STATE)
    drift = await drift_total(services)
    ran_at = state.get("ran_at") if state is not None else None
    return {"reconciler": {"last_run": iso_utc(ran_at if isinstance(ran_at, int | float) else None),
                           "drift_changes": drift.changes, "drift_rounds": drift.rounds,
                           "last_drift_at": iso_utc(drift.last_at)}}
