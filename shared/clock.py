"""The one clock type: epoch seconds from an injectable callable, so every expiry path (tokens, secrets,
leases, subscriptions) is tested by moving a fake clock instead of waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

system_clock: Clock = time.time
