"""The renewer timer's fan-out (``%RENEW_SCHEDULE%``): ``renew`` for subscriptions expiring within
RENEW_MARGIN_MINUTES, read from the expiry time-bucket rows (no table scan), and ``subscribe`` for
accounts waiting in ``needsub`` longer than a grace period (a lost or failed subscribe).

Each message gets an initial delay derived from its account id, spread over up to an hour, so that a
fleet whose subscriptions expire together (a mass onboarding) never renews in one minute.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.context import Services
from shared.messages import Message, Renew, Subscribe
from shared.ops.journal import JournalEntry
from shared.store.fanout import send_all, spread_delay
from shared.store.ports import SUBSCRIPTIONS
from shared.subscriptions.rows import BUCKET_SECONDS, NEEDS_SUBSCRIPTION, bucket_partition

# Buckets this far in the past are read too: a renewal that failed must not be forgotten.
LOOKBACK_SECONDS = 24 * 3600
# A needsub row younger than this belongs to a subscribe still on its way.
NEEDS_SUBSCRIPTION_GRACE_SECONDS = 600
MAX_SPREAD_SECONDS = 3600


@dataclass(frozen=True)
class FanOut:
    messages: tuple[tuple[Message, float], ...]   # (message, initial delay in seconds)

    @property
    def renewals(self) -> int:
        return sum(1 for m, _ in self.messages if isinstance(m, Renew))

    @property
    def subscribes(self) -> int:
        return sum(1 for m, _ in self.messages if isinstance(m, Subscribe))


async def plan_renewals(services: Services) -> FanOut:
    now = services.clock()
    margin = services.settings.renew_margin_minutes * 60
    # Spread within a quarter of the margin, so every renewal still lands well before its expiry.
    spread = min(MAX_SPREAD_SECONDS, margin / 4)
    messages: dict[Message, float] = {}
    start = int((now - LOOKBACK_SECONDS) // BUCKET_SECONDS) * BUCKET_SECONDS
    for bucket_start in range(start, int(now + margin) + 1, BUCKET_SECONDS):
        async for row in services.tables.query(SUBSCRIPTIONS, bucket_partition(bucket_start)):
            account, subscription = row.get("account"), row.get("subscription")
            if not isinstance(account, str) or not isinstance(subscription, str):
                continue
            expires_at = float(row.get("expires_at", 0))
            if expires_at > now + margin:
                continue
            # Already expired: Graph has deleted it; subscribe recreates (renew would answer 404 anyway).
            message: Message = Subscribe(account=account) if expires_at <= now else \
                Renew(account=account, subscription=subscription)
            messages[message] = spread_delay(account, spread)
    async for row in services.tables.query(SUBSCRIPTIONS, NEEDS_SUBSCRIPTION):
        if float(row.get("since", now)) <= now - NEEDS_SUBSCRIPTION_GRACE_SECONDS:
            messages.setdefault(Subscribe(account=row.row), spread_delay(row.row, spread))
    return FanOut(tuple(messages.items()))


async def run_renewer(services: Services) -> FanOut:
    fan_out = await plan_renewals(services)
    await send_all(services.queue, fan_out.messages)
    if fan_out.messages:
        await services.journal.record(None, JournalEntry("renewer", "ok", counts={
            "renew": fan_out.renewals, "subscribe": fan_out.subscribes}))
    return fan_out
