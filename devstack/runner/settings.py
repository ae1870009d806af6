"""App settings and host.json, read the way Core Tools and the host read them.

App settings live in the process environment, where the functions (shared/config.py) read them;
this module is the runner's only reader and writer of them (DEVSTACK_* names are in config.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.runner.config import RunnerConfig


def load_local_settings(app_dir: Path, env: MutableMapping[str, str] | None = None) -> Path | None:
    """Copy ``Values`` of local.settings.json (else local.settings.sample.json) into ``env``.

    Like Core Tools, a variable already set in the environment wins over the file. Returns the file
    used, or None when there is neither.
    """
    env = os.environ if env is None else env
    for name in ("local.settings.json", "local.settings.sample.json"):
        path = app_dir / name
        if path.is_file():
            values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
            for key, value in values.items():
                env.setdefault(key, str(value))
            return path
    return None


STORAGE = "AzureWebJobsStorage"


def app_setting(name: str) -> str | None:
    """An app setting as the host and the functions see it: from the process environment."""
    return os.environ.get(name) or None


def set_app_setting(name: str, value: str) -> None:
    os.environ[name] = value


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve(value: str, env: MutableMapping[str, str] | None = None) -> str:
    """Replace ``%NAME%`` with the app setting NAME, as the host does in binding values.

    :raises KeyError: a referenced setting is not set (the host refuses to index such a function).
    """
    env = os.environ if env is None else env

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"binding refers to app setting %{name}% which is not set")
        return env[name]

    return _SETTING_REF.sub(lookup, value)


def parse_timespan(text: str | float | int) -> float:
    """Seconds in a .NET TimeSpan string as host.json writes them: "hh:mm:ss[.fff]" or "d.hh:mm:ss"."""
    if isinstance(text, int | float):
        return float(text)
    days = 0
    if text.count(":") != 2:
        raise ValueError(f"{text!r} is not a TimeSpan (hh:mm:ss)")
    head, minutes, seconds = text.split(":")
    if "." in head:
        day_text, head = head.split(".", 1)
        days = int(day_text)
    return days * 86400 + int(head) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues`` with the host's defaults (Storage queues extension 5.x)."""

    batch_size: int = 16
    new_batch_threshold: int = 8          # host default: batchSize / 2 (as on the Consumption plan)
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0       # delay before a failed message is visible again
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"
    invisibility: float = 600.0           # while running: not in host.json, fixed at 10 min by the host


@dataclass(frozen=True)
class HostJson:
    route_prefix: str
    queues: QueueOptions
    function_timeout: float | None

    @classmethod
    def load(cls, app_dir: Path, config: RunnerConfig) -> HostJson:
        path = app_dir / "host.json"
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        extensions = data.get("extensions", {})
        q = extensions.get("queues", {})
        batch_size = min(int(_pick(config.queue_batch_size, q.get("batchSize"), 16)), 32)  # Storage caps at 32
        queues = QueueOptions(
            batch_size=batch_size,
            new_batch_threshold=int(_pick(config.queue_new_batch_threshold, q.get("newBatchThreshold"),
                                          batch_size // 2)),
            max_dequeue_count=int(_pick(config.queue_max_dequeue_count, q.get("maxDequeueCount"), 5)),
            visibility_timeout=parse_timespan(_pick(config.queue_visibility_timeout, q.get("visibilityTimeout"), 0)),
            max_polling_interval=parse_timespan(_pick(config.queue_max_polling_interval,
                                                      q.get("maxPollingInterval"), 60)),
            message_encoding=str(_pick(config.queue_message_encoding, q.get("messageEncoding"), "base64")).lower(),
            invisibility=config.queue_invisibility,
        )
        if queues.message_encoding not in ("base64", "none"):
            raise ValueError(f"host.json messageEncoding {queues.message_encoding!r}: expected base64 or none")
        timeout = data.get("functionTimeout")
        return cls(
            route_prefix=str(extensions.get("http", {}).get("routePrefix", "api")).strip("/"),
            queues=queues,
            function_timeout=parse_timespan(timeout) if timeout else None,
        )


def _pick(override: Any, from_file: Any, default: Any) -> Any:
    """The devstack override if set, else host.json's value, else the host's default."""
    if override is not None:
        return override
    return default if from_file is None else from_file
