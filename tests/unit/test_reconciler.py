"""The delta reconciler timer with in-memory parts: the due-time index, who is due, token keep-alive and
drift's arithmetic. The same paths run through the simulator and Azurite in
tests/integration/test_reconciler_simulator.py."""

from __future__ import annotations

import itertools
import json

import pytest

from shared.accounts.model import Status
from shared.accounts.status import add_degraded_reason, poison_reason, set_status
from shared.auth.credential import TokenBroker
from shared.connect import keepalive
from shared.connect.connector import FIRST_ROUND_GRACE_SECONDS
from shared.reconciler import ReconcilerFailed, run_reconciler
from shared.store.ports import ACCOUNTS, MAILBOX, SUBSCRIPTIONS, Row
from shared.sync.drift import count_drift, drift_total
from shared.sync.due import BUCKET_SECONDS, PREFIX, arm
from shared.sync.mailbox import LEASE, MailboxLease
from shared.sync.reconcile import LOOKBACK_BUCKETS, STATE, plan_due
from tests.unit.test_connect import World

HOUR = 3600


@pytest.fixture
async def world() -> World:
    return World()


async def connected(world: World) -> str:
    await plan_due(world.services)  # the app's first timer run: the index exists before anyone connects
    account, token = await world.sign_in()
    assert (await world.confirm(account, token)).status == 200
    world.services.queue.clear("sync")  # type: ignore[attr-defined]
    world.services.queue.clear("subscriptions")  # type: ignore[attr-defined]
    return account


def due_rows(world: World) -> list[Row]:
    return [r for r in world.services.tables.rows(MAILBOX) if r.partition.startswith(PREFIX)]  # type: ignore[attr-defined]


def queued(world: World) -> list[dict]:
    return [json.loads(b) for b in world.services.queue.all_bodies("sync")]  # type: ignore[attr-defined]


async def round_completed(world: World, account: str) -> None:
    """What the event writer records on the lease row at the end of a round."""
    now = world.clock()
    await world.services.tables.upsert(MAILBOX, Row(account, LEASE, {
        "lease_id": "", "running_until": 0.0, "dirty": False, "feed_next": 1, "last_round_started": now,
        "last_round_completed": now, "last_good_sync": now, "rounds": 1}))


async def test_a_confirmed_account_is_armed_and_due_if_its_first_round_never_completes(world):
    account = await connected(world)
    assert [r.row for r in due_rows(world)] == [account]
    plan = await plan_due(world.services)
    assert plan.due == ()  # its own first round is on its way
    world.clock.advance(FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)
    plan = await plan_due(world.services)
    assert plan.due == (account,)
    # Looked at again one interval later (if this round fails too), not at every run.
    (row,) = due_rows(world)
    assert row.get("due_at") == pytest.approx(world.clock() + world.services.settings.reconcile_interval_minutes * 60)
    assert (await plan_due(world.services)).due == ()


async def test_an_account_is_due_once_its_last_good_round_is_an_interval_old(world):
    account = await connected(world)
    await round_completed(world, account)
    interval = world.services.settings.reconcile_interval_minutes * 60
    dues = []
    for _ in range(int(3 * interval // BUCKET_SECONDS)):  # three hours of five-minute timer runs
        world.clock.advance(BUCKET_SECONDS)
        plan = await plan_due(world.services)
        if plan.due:
            dues.append(world.clock())
            await round_completed(world, account)
    assert len(dues) == 3
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert all(interval - BUCKET_SECONDS <= g <= interval + BUCKET_SECONDS for g in gaps), gaps
    assert len(due_rows(world)) == 1  # moved, never multiplied


async def test_a_run_reads_only_the_buckets_since_the_last_one(world):
    await connected(world)
    await plan_due(world.services)
    world.clock.advance(BUCKET_SECONDS)
    plan = await plan_due(world.services)
    assert plan.buckets == LOOKBACK_BUCKETS + 2


async def test_a_running_round_is_looked_at_again_when_its_lease_ends(world):
    account = await connected(world)
    world.clock.advance(FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)
    holder = await MailboxLease(world.services, account).acquire()
    assert holder is not None
    plan = await plan_due(world.services)
    assert plan.due == ()
    (row,) = due_rows(world)
    assert row.get("due_at") == pytest.approx(world.clock() + world.services.settings.lease_seconds)


async def test_dirty_with_an_expired_lease_is_due_within_minutes(world):
    account = await connected(world)
    await round_completed(world, account)
    holder = await MailboxLease(world.services, account).acquire()
    assert holder is not None
    assert await MailboxLease(world.services, account).flag_dirty()  # its wake-up is then lost
    # The holder dies; its lease runs out long before the reconcile interval.
    world.clock.advance(world.services.settings.lease_seconds + BUCKET_SECONDS)
    plan = await plan_due(world.services)
    assert account in plan.due


async def test_accounts_that_do_not_sync_lose_their_row_and_a_reconnect_arms_it_again(world):
    account = await connected(world)
    await set_status(world.services, account, Status.NEEDS_RECONNECT, "invalid_grant")
    world.clock.advance(FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)
    plan = await plan_due(world.services)
    assert (plan.due, plan.dropped, due_rows(world)) == ((), 1, [])
    _, token = await world.sign_in()
    assert (await world.confirm(account, token)).status == 200
    assert [r.row for r in due_rows(world)] == [account]


async def test_a_poisoned_sync_pauses_the_timer_too_but_keeps_the_row(world):
    account = await connected(world)
    await add_degraded_reason(world.services, account, poison_reason("sync"))
    world.clock.advance(FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)
    assert (await plan_due(world.services)).due == ()
    assert [r.row for r in due_rows(world)] == [account]


async def test_a_first_run_arms_every_live_account_once(world):
    account = await connected(world)
    for row in due_rows(world):  # connected before the index existed
        await world.services.tables.delete(MAILBOX, row.partition, row.row)
    await world.repo.clear_app_state(STATE)
    started = world.clock()
    assert (await plan_due(world.services)).backfilled == 1
    interval = world.services.settings.reconcile_interval_minutes * 60
    dues: list[float] = []
    for _ in range(int(2 * interval // BUCKET_SECONDS)):
        world.clock.advance(BUCKET_SECONDS)
        plan = await plan_due(world.services)
        assert plan.backfilled == 0
        assert plan.due in ((), (account,))
        if plan.due:
            dues.append(world.clock())
            await round_completed(world, account)  # the round it asked for
    # First looked at within an interval (the backfill spreads a fleet over one), then once an interval.
    assert dues
    assert dues[0] - started <= interval + BUCKET_SECONDS
    assert all(b - a >= interval - BUCKET_SECONDS for a, b in itertools.pairwise(dues))


async def test_unknown_accounts_rows_are_dropped(world):
    await arm(world.services.tables, "acct_gone", world.clock())
    plan = await plan_due(world.services)
    assert (plan.dropped, due_rows(world)) == (1, [])


async def test_the_timer_fans_out_spread_messages_and_still_sweeps_when_one_part_fails(world, monkeypatch):
    account = await connected(world)
    broker = TokenBroker(world.services, world.idp, world.vault)
    world.clock.advance(FIRST_ROUND_GRACE_SECONDS + BUCKET_SECONDS)

    async def broken(*args, **kwargs):
        raise RuntimeError("keep-alive broke")

    monkeypatch.setattr("shared.reconciler.keep_tokens_alive", broken)
    with pytest.raises(ReconcilerFailed, match="keepalive"):
        await run_reconciler(world.services, world.vault, broker)
    assert queued(world) == [{"v": 1, "kind": "sync", "account": account, "reason": "timer", "full": False}]


async def test_keepalive_refreshes_idle_tokens_once_a_day_and_records_days_left(world):
    account = await connected(world)
    broker = TokenBroker(world.services, world.idp, world.vault)
    before = len(world.idp.issued)
    world.clock.advance(10 * 86400)
    first = await keepalive.keep_tokens_alive(world.services, broker)
    assert (first.accounts, first.refreshed, first.min_days_left) == (1, 0, 80)
    assert (await world.repo.get(account)).token_days_left == 80
    assert not (await keepalive.keep_tokens_alive(world.services, broker)).ran  # once a day
    world.clock.advance(world.services.settings.token_keepalive_days * 86400)
    second = await keepalive.keep_tokens_alive(world.services, broker)
    assert (second.refreshed, second.failed, second.min_days_left) == (1, 0, 90)
    assert len(world.idp.issued) == before + 1
    saved = await world.repo.get(account)
    assert (saved.last_token_refresh, saved.token_days_left) == (world.clock(), 90)


async def test_keepalive_failure_is_counted_and_retried_the_next_day(world, monkeypatch):
    account = await connected(world)
    broker = TokenBroker(world.services, world.idp, world.vault)
    world.clock.advance((world.services.settings.token_keepalive_days + 1) * 86400)

    async def unreachable(*args, **kwargs):
        raise ConnectionError("login.microsoftonline.com unreachable")

    monkeypatch.setattr(world.idp, "refresh", unreachable)
    result = await keepalive.keep_tokens_alive(world.services, broker)
    assert (result.refreshed, result.failed) == (0, 1)
    assert (await world.repo.get(account)).status == Status.ACTIVE  # a network failure is no dead grant
    monkeypatch.undo()
    world.clock.advance(86400)
    assert (await keepalive.keep_tokens_alive(world.services, broker)).refreshed == 1


async def test_keepalive_stops_at_its_per_run_limit_and_finishes_next_run(world, monkeypatch):
    await connected(world)
    row = next(r for r in world.services.tables.rows(ACCOUNTS) if r.row == "" and r.get("status"))
    await world.services.tables.upsert(ACCOUNTS, Row("acct_other", "", dict(row.data)))
    broker = TokenBroker(world.services, world.idp, world.vault)
    world.clock.advance((world.services.settings.token_keepalive_days + 1) * 86400)
    monkeypatch.setattr(keepalive, "MAX_REFRESHES_PER_RUN", 1)
    first = await keepalive.keep_tokens_alive(world.services, broker)
    assert first.refreshed + first.failed == 1
    assert (await keepalive.keep_tokens_alive(world.services, broker)).ran  # not stamped: more were left


async def test_drift_counts_only_timer_finds_under_a_live_subscription_without_a_recent_notification(world):
    services, now = world.services, world.clock()
    window = services.settings.drift_window_minutes * 60
    assert await count_drift(services, "acct_a", round_started=now, found=2, last_notification_round=None) == 0
    await services.tables.upsert(SUBSCRIPTIONS, Row("acct_a", "sub-1", {"expires_at": now + HOUR}))
    assert await count_drift(services, "acct_a", round_started=now, found=2,
                             last_notification_round=now - window / 2) == 0
    assert await count_drift(services, "acct_a", round_started=now, found=0, last_notification_round=None) == 0
    assert await count_drift(services, "acct_a", round_started=now, found=2,
                             last_notification_round=now - 2 * window) == 2
    assert await count_drift(services, "acct_a", round_started=now, found=3, last_notification_round=None) == 3
    total = await drift_total(services)
    assert (total.changes, total.rounds) == (5, 2)


async def test_the_account_api_shows_the_tokens_days_left_and_the_drift(world):
    account = await connected(world)
    body = json.loads((await world.connector.get_account(account)).body)
    assert body["token_days_left"] is None  # the reconciler has not looked yet
    assert body["sync"] == {"last_good_sync": None, "drift_changes": 0, "drift_rounds": 0}
    world.clock.advance(3 * 86400)
    await keepalive.keep_tokens_alive(world.services, TokenBroker(world.services, world.idp, world.vault))
    await world.services.tables.upsert(MAILBOX, Row(account, LEASE, {
        "last_good_sync": world.clock(), "drift_changes": 4, "drift_rounds": 2}))
    body = json.loads((await world.connector.get_account(account)).body)
    assert body["token_days_left"] == 87
    assert body["sync"]["drift_changes"] == 4
    assert body["sync"]["last_good_sync"].endswith("Z")
