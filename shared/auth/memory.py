"""In-memory TokenVault for unit tests: same contract as Key Vault's (expiry hides a secret)."""

from __future__ import annotations

from collections.abc import Mapping

from shared.auth.ports import StoredSecret
from shared.clock import Clock


class InMemoryTokenVault:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.secrets: dict[str, tuple[str, dict[str, str], float, float | None]] = {}
        self.deleted: set[str] = set()

    async def put(self, name: str, value: str, *, tags: Mapping[str, str], expires_on: float | None) -> None:
        self.secrets[name] = (value, dict(tags), self._clock(), expires_on)
        self.deleted.discard(name)

    async def get(self, name: str) -> StoredSecret | None:
        stored = self.secrets.get(name)
        if stored is None or (stored[3] is not None and stored[3] <= self._clock()):
            return None
        return StoredSecret(stored[0], stored[2], stored[3])

    async def clear_expiry(self, name: str) -> None:
        value, tags, updated, _ = self.secrets[name]
        self.secrets[name] = (value, tags, updated, None)

    async def delete(self, name: str) -> None:
        if self.secrets.pop(name, None) is not None:
            self.deleted.add(name)

    def tags(self, name: str) -> dict[str, str]:
        return self.secrets[name][1]
