"""The delta reconciler (and the change feed that reports what it found) through the real parts (Azurite,
the simulator, msal, msgraph-sdk, the Key Vault client): a change whose notification never came is found by
the round the timer asks for and counted as drift; a mailbox that is not due costs no Graph request."""

from __future__ import annotations

import json

from shared.connect.connector import FIRST_ROUND_GRACE_SECONDS
from shared.messages import Subscribe
from shared.store.ports import MAILBOX
from shared.subscriptions.worker import SubscriptionWorker
from shared.sync.drift import drift_total
from shared.sync.due import BUCKET_SECONDS
from shared.sync.feed import read_changes
from shared.sync.reconcile import plan_due
from shared.wiring import get_auth
from tests.devstack.webhook import Webhook
from tests.integration.sync_world import SyncWorld
from tests.integration.test_connect_real_clients import stack  # noqa: F401


async def test_dropped_notifications_are_found_by_the_reconciler_and_counted_as_drift(stack, certs, app_env):  # noqa: F811
    hook = Webhook(certs).start()
    try:
        # The notification URL is the test's webhook: the simulator validates it, and what it sends there
        # never reaches the product (and the next one is dropped by the simulator outright).
        base = hook.url("").rstrip("/")
        app_env.setenv("PUBLIC_BASE_URL", base)
        from shared.config import get_settings

        get_settings.cache_clear()
        stack.services = stack.services.__class__(get_settings(), stack.services.tables, stack.services.queue,
                                                  stack.services.journal, stack.services.clock)
        await plan_due(stack.services)  # the app's first timer run, before anyone connects
        account, confirmed = await stack.connect()
        assert confirmed.status == 200
        world = SyncWorld(stack, account)
        await world.drain()
        await SubscriptionWorker(stack.services, get_auth().subscriptions).handle(Subscribe(account=account))
        assert len(stack.sim.state.subscriptions) == 1
        await world.sync("connect")

        # Not due yet: the timer reads the index and asks Graph nothing.
        requests_before = len(stack.sim.state.requests)
        not_yet = await world.reconcile(after_seconds=FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)
        assert not_yet.looked_at == 1
        assert not_yet.due == ()
        assert len(stack.sim.state.requests) == requests_before

        stack.control("notifications/plan", {"drop": 5})
        made = world.create("lost notification", day=3)
        interval = stack.services.settings.reconcile_interval_minutes * 60
        plan = await world.reconcile(after_seconds=interval + BUCKET_SECONDS)
        assert plan.due == (account,)
        assert made in await world.store_projection()
        lease = await world.tables.get(MAILBOX, account, "lease")
        assert (lease.get("drift_changes"), lease.get("drift_rounds")) == (1, 1)
        total = await drift_total(stack.services)
        assert (total.changes, total.rounds) == (1, 1)
        assert stack.sim.state.notification_counts["dropped"] >= 1
        # The SaaS reading the change feed (through Azurite) sees the change the timer found, once.
        answer = await read_changes(stack.services, account, {"cursor": "0", "limit": "1000"})
        created = [c for c in json.loads(answer.body)["changes"] if c["event"] == made]
        assert [c["kind"] for c in created] == ["created"]
    finally:
        hook.stop()
