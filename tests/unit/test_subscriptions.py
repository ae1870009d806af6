"""The subscription worker and the renewer on in-memory stores and an in-memory Graph gateway."""

from __future__ import annotations

import pytest

from shared.accounts.model import Status
from shared.accounts.status import set_status
from shared.errors import TransientGraphError
from shared.messages import Reauthorize, Renew, Subscribe, Unsubscribe, parse_message
from shared.store.fanout import spread_delay
from shared.store.ports import SUBSCRIPTIONS, Row
from shared.subscriptions.gateway import NewSubscription
from shared.subscriptions.memory import InMemorySubscriptionGateway
from shared.subscriptions.renewer import plan_renewals, run_renewer
from shared.subscriptions.rows import NEEDS_SUBSCRIPTION, bucket_partition, slot_key
from shared.subscriptions.worker import SlotBusy, SubscriptionWorker
from shared.webhook.client_state import verify_client_state
from tests.unit.test_connect import World

HOUR = 3600


class Subs:
    def __init__(self) -> None:
        self.world = World()
        self.clock = self.world.clock
        self.services = self.world.services
        self.gateway = InMemorySubscriptionGateway(self.clock)
        self.worker = SubscriptionWorker(self.services, self.gateway)

    async def active_account(self) -> str:
        account, token = await self.world.sign_in()
        assert (await self.world.confirm(account, token)).status == 200
        return account

    async def account(self, account_id: str):
        return await self.world.repo.get(account_id)

    async def records(self, account_id: str) -> list[Row]:
        return [r async for r in self.services.tables.query(SUBSCRIPTIONS, account_id) if not r.row.startswith("res:")]

    def creates(self) -> int:
        return sum(1 for call, _ in self.gateway.calls if call == "create")


@pytest.fixture
def subs() -> Subs:
    return Subs()


async def test_subscribe_creates_one_subscription_as_graph_expects(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    stored = await subs.account(account)
    assert live.resource == f"users/{stored.identity.user}/events"                      # Create subscription
    assert live.notification_url == "http://127.0.0.1:7071/api/notifications"
    assert live.expires_at == subs.clock.now + 4230 * 60                               # Outlook: 4,230 min
    claims = verify_client_state(live.client_state, stored.identity.tenant,
                                 subs.services.settings.client_state_keys)
    assert claims is not None
    assert (claims.account, claims.generation) == (account, 1)
    (record,) = await subs.records(account)
    assert record.row == live.id
    bucket = [r async for r in subs.services.tables.query(SUBSCRIPTIONS, bucket_partition(live.expires_at))]
    assert [r.get("subscription") for r in bucket] == [live.id]
    assert await subs.services.tables.get(SUBSCRIPTIONS, NEEDS_SUBSCRIPTION, account) is None


async def test_subscribe_again_changes_nothing(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    await subs.worker.handle(Subscribe(account=account))
    assert subs.creates() == 1
    assert len(subs.gateway.live(account)) == 1


async def test_a_clamped_lifetime_is_stored_as_graph_returned_it_and_journaled(subs):
    subs.gateway.max_lifetime = 60 * 60
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (record,) = await subs.records(account)
    assert record.get("expires_at") == subs.clock.now + HOUR
    details = [e.detail or "" for e in await subs.services.journal.recent(account)]
    assert any("shortened" in d for d in details)


async def test_renew_extends_the_expiry_and_moves_its_bucket(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    old_bucket = bucket_partition(live.expires_at)
    subs.clock.advance(60 * HOUR)
    await subs.worker.handle(Renew(account=account, subscription=live.id))
    (renewed,) = subs.gateway.live(account)
    assert renewed.id == live.id
    assert renewed.expires_at == subs.clock.now + 4230 * 60
    assert [r async for r in subs.services.tables.query(SUBSCRIPTIONS, old_bucket)] == []
    assert len([r async for r in subs.services.tables.query(SUBSCRIPTIONS, bucket_partition(renewed.expires_at))]) == 1


async def test_renew_or_reauthorize_of_a_subscription_gone_at_graph_recreates_it(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (first,) = subs.gateway.live(account)
    subs.gateway.subscriptions.clear()  # removed at Graph (expired, or subscriptionRemoved)
    subs.clock.advance(60 * HOUR)  # within the renew margin
    await subs.worker.handle(Renew(account=account, subscription=first.id))
    (second,) = subs.gateway.live(account)
    assert second.id != first.id
    subs.gateway.subscriptions.clear()
    await subs.worker.handle(Reauthorize(account=account, subscription=second.id))
    (third,) = subs.gateway.live(account)
    assert third.id not in (first.id, second.id)
    assert [r.row for r in await subs.records(account)] == [third.id]


async def test_subscribe_recreates_a_subscription_removed_at_graph(subs):
    """subscriptionRemoved ("Reduce missing subscriptions and change notifications",
    https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events):
    the table still lists it, Graph no longer has it."""
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (first,) = subs.gateway.live(account)
    del subs.gateway.subscriptions[first.id]
    await subs.worker.handle(Subscribe(account=account))
    (second,) = subs.gateway.live(account)
    assert second.id != first.id
    assert [r.row for r in await subs.records(account)] == [second.id]


async def test_reauthorize_keeps_the_subscription(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    await subs.worker.handle(Reauthorize(account=account, subscription=live.id))
    assert ("reauthorize", live.id) in subs.gateway.calls
    assert subs.gateway.live(account) == [live]


async def test_after_a_reconnect_subscribe_reauthorizes_with_the_new_connection(subs):
    """Review finding 1: a subscription authorized by the old connection may be paused at Graph."""
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    again, token = await subs.world.sign_in()  # the same mailbox connects again
    assert again == account
    assert (await subs.world.confirm(account, token)).status == 200
    assert (await subs.account(account)).generation == 2
    await subs.worker.handle(Subscribe(account=account))
    assert ("reauthorize", live.id) in subs.gateway.calls
    (record,) = await subs.records(account)
    assert record.get("connection_generation") == 2
    calls = len(subs.gateway.calls)
    await subs.worker.handle(Subscribe(account=account))
    assert subs.gateway.calls[calls:] == []  # reauthorized once; the next subscribe finds it current


async def test_a_failed_create_releases_its_claim_so_the_retry_can_create(subs):
    """Review finding 2: one Graph failure must cost one delivery, not the rest of the message's."""
    account = await subs.active_account()
    create = subs.gateway.create
    failures = [TransientGraphError("Graph failed to answer", status=503)]

    async def flaky(account_id, request):
        if failures:
            raise failures.pop()
        return await create(account_id, request)

    subs.gateway.create = flaky
    with pytest.raises(TransientGraphError):
        await subs.worker.handle(Subscribe(account=account))
    await subs.worker.handle(Subscribe(account=account))  # the host's next delivery, at once
    assert len(subs.gateway.live(account)) == 1


async def test_renew_patches_once_per_renewal_window(subs):
    """Review finding 4: the renewer queues a renew on each run until one lands; only the first PATCHes."""
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    subs.clock.advance(60 * HOUR)
    for _ in range(4):
        await subs.worker.handle(Renew(account=account, subscription=live.id))
        subs.clock.advance(15 * 60)
    assert [c for c in subs.gateway.calls if c[0] == "renew"] == [("renew", live.id)]


@pytest.mark.parametrize(("status", "kept"), [
    (Status.DEGRADED, True), (Status.NEEDS_RECONNECT, True), (Status.UNSUPPORTED, False),
])
async def test_the_status_matrix_decides_the_subscription(subs, status, kept):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    await set_status(subs.services, account, status, "test")
    await subs.worker.handle(Subscribe(account=account))
    assert (len(subs.gateway.live(account)) == 1) is kept
    assert subs.creates() == 1  # needs_reconnect lets it expire: nothing is created or renewed


async def test_unsubscribe_deletes_at_graph_and_in_the_table(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    await subs.worker.handle(Unsubscribe(account=account))
    assert subs.gateway.live(account) == []
    assert [r async for r in subs.services.tables.query(SUBSCRIPTIONS, account)] == []


async def test_a_held_creation_claim_makes_a_second_worker_retry(subs):
    account = await subs.active_account()
    stored = await subs.account(account)
    resource = f"users/{stored.identity.user}/events"
    await subs.services.tables.insert(SUBSCRIPTIONS, Row(account, slot_key(resource), {
        "claim": "other-worker", "claimed_at": subs.clock.now, "generation": 0}))
    with pytest.raises(SlotBusy):
        await subs.worker.handle(Subscribe(account=account))
    assert subs.creates() == 0
    subs.clock.advance(121)  # the other worker died: its claim lapses
    await subs.worker.handle(Subscribe(account=account))
    assert len(subs.gateway.live(account)) == 1


async def test_a_stray_subscription_at_graph_is_deleted(subs):
    account = await subs.active_account()
    stored = await subs.account(account)
    # A create whose answer was lost: Graph has it, the table does not.
    stray = await subs.gateway.create(account, NewSubscription(
        f"users/{stored.identity.user}/events", "created,updated,deleted",
        "http://127.0.0.1:7071/api/notifications", "http://127.0.0.1:7071/api/lifecycle",
        subs.clock.now + HOUR, "x"))
    await subs.worker.handle(Subscribe(account=account))
    live = subs.gateway.live(account)
    assert len(live) == 1
    assert live[0].id != stray.id


async def test_disconnect_deletes_the_subscription_before_the_secret(subs):
    from shared.connect.connector import Connector

    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    world = subs.world
    connector = Connector(world.services, world.idp, world.vault, world.directory, subs.gateway)
    assert (await connector.disconnect(account, purge=False)).status == 200
    assert subs.gateway.live(account) == []


# --- the renewer --------------------------------------------------------------------------------------

class NoScan:
    """Fails the test if the renewer scans a table instead of reading its buckets."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        if name == "scan":
            raise AssertionError("the renewer must not scan a table")
        return getattr(self.inner, name)


async def test_renewer_renews_what_expires_within_the_margin_reading_buckets_only(subs):
    account = await subs.active_account()
    await subs.worker.handle(Subscribe(account=account))
    (live,) = subs.gateway.live(account)
    subs.services.tables = NoScan(subs.services.tables)
    assert (await plan_renewals(subs.services)).messages == ()  # 70.5 h left, margin 12 h
    subs.clock.advance(60 * HOUR)
    fan_out = await plan_renewals(subs.services)
    assert [m for m, _ in fan_out.messages] == [Renew(account=account, subscription=live.id)]
    subs.clock.advance(11 * HOUR)  # now expired: subscribe recreates it
    assert [m for m, _ in (await plan_renewals(subs.services)).messages] == [Subscribe(account=account)]


async def test_renewer_resubscribes_accounts_left_without_a_subscription(subs):
    account = await subs.active_account()
    await subs.services.tables.upsert(SUBSCRIPTIONS, Row(NEEDS_SUBSCRIPTION, account, {"since": subs.clock.now}))
    assert (await plan_renewals(subs.services)).messages == ()  # a subscribe is still on its way
    subs.clock.advance(601)
    fan_out = await run_renewer(subs.services)
    assert fan_out.subscribes == 1
    queued = [parse_message(m) for m in subs.services.queue.all_bodies("subscriptions")]
    assert Subscribe(account=account) in queued


def test_renewals_of_a_large_fleet_are_spread_over_the_hour():
    from shared.ids import new_account_id

    delays = [spread_delay(new_account_id(), 3600) for _ in range(100_000)]
    assert all(0 <= d < 3600 for d in delays)
    per_minute = [0] * 60
    for d in delays:
        per_minute[int(d // 60)] += 1
    assert max(per_minute) < 2 * 100_000 / 60  # no minute carries much more than its share
    assert spread_delay("abc", 3600) == spread_delay("abc", 3600)


async def test_messages_for_an_unknown_account_are_dropped(subs):
    from shared.ids import new_account_id

    await subs.worker.handle(Subscribe(account=new_account_id()))
    await subs.worker.handle(Renew(account=new_account_id(), subscription="s"))
    assert subs.gateway.calls == []
