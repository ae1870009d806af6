"""The runner's own configuration, read from ``DEVSTACK_*`` environment variables.

These are devstack settings, not product settings: they are not in shared/config.py's list and the
deployed app never reads them. Every field has a documented default; tests build ``RunnerConfig``
directly with shortened timings instead of touching the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

# Well-known local keys, like Core Tools' fixed local keys: not secrets, only usable on 127.0.0.1.
DEFAULT_FUNCTION_KEY = "local-function-key"
DEFAULT_MASTER_KEY = "local-master-key"


@dataclass(frozen=True)
class RunnerConfig:
    """Defaults are the host's; ``None`` for a queue or timer setting means "take host.json's value"."""

    host: str = "127.0.0.1"                    # DEVSTACK_HOST
    port: int = 7071                           # DEVSTACK_PORT (Core Tools' default)
    function_key: str = DEFAULT_FUNCTION_KEY   # DEVSTACK_FUNCTION_KEY: accepted for FUNCTION level
    master_key: str = DEFAULT_MASTER_KEY       # DEVSTACK_MASTER_KEY: accepted for FUNCTION and ADMIN
    skip_auth: bool = False                    # DEVSTACK_SKIP_AUTH=1: no key checks, as Core Tools locally
    host_id: str = "devstack-local"            # DEVSTACK_HOST_ID: names timer status and lock blobs
    # Queue trigger overrides of host.json's extensions.queues (seconds as floats).
    queue_batch_size: int | None = None        # DEVSTACK_QUEUE_BATCH_SIZE
    queue_new_batch_threshold: int | None = None   # DEVSTACK_QUEUE_NEW_BATCH_THRESHOLD
    queue_max_dequeue_count: int | None = None     # DEVSTACK_QUEUE_MAX_DEQUEUE_COUNT
    queue_visibility_timeout: float | None = None  # DEVSTACK_QUEUE_VISIBILITY_TIMEOUT: retry delay
    queue_max_polling_interval: float | None = None  # DEVSTACK_QUEUE_MAX_POLLING_INTERVAL
    queue_message_encoding: str | None = None  # DEVSTACK_QUEUE_MESSAGE_ENCODING: base64 | none
    # The host hides a message for 10 minutes while its function runs and renews that at half-life.
    queue_invisibility: float = 600.0          # DEVSTACK_QUEUE_INVISIBILITY
    # Timers: the singleton listener lock is a blob lease (15-60 s, or -1 for infinite, in Storage).
    timer_lock_seconds: int = 15               # DEVSTACK_TIMER_LOCK_SECONDS
    timer_lock_retry: float = 1.0              # DEVSTACK_TIMER_LOCK_RETRY: seconds between acquire attempts
    # How long shutdown waits for running invocations (the host's functionTimeout bounds them too).
    shutdown_grace: float = 30.0               # DEVSTACK_SHUTDOWN_GRACE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerConfig:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"DEVSTACK_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = str(f.type)
            if "bool" in kind:
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif "int" in kind:
                values[f.name] = int(raw)
            elif "float" in kind:
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]
