"""Sync messages for accounts that should not sync are dropped before any Graph call."""

from __future__ import annotations

import pytest

from shared.accounts.model import Status
from shared.accounts.repository import AccountRepository
from shared.accounts.status import (
    add_degraded_reason,
    clear_degraded_reason,
    degraded_reasons,
    poison_reason,
    set_status,
)
from shared.ids import new_account_id
from shared.messages import Sync
from shared.sync.gate import admit
from tests.unit.test_connect import World


@pytest.fixture
def world() -> World:
    return World()


async def test_an_unknown_account_is_dropped_and_journaled(world):
    assert await admit(world.services, Sync(account=new_account_id())) is None
    (entry,) = await world.services.journal.recent(None)
    assert entry.detail == "dropped: unknown account"


@pytest.mark.parametrize(("status", "admitted"), [
    (Status.ACTIVE, True), (Status.DEGRADED, True), (Status.NEEDS_RECONNECT, False),
    (Status.UNSUPPORTED, False), (Status.DISCONNECTED, False),
])
async def test_the_status_matrix_decides(world, status, admitted):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await set_status(world.services, account, status, "test")
    result = await admit(world.services, Sync(account=account, reason="notification"))
    assert (result is not None) is admitted


async def test_a_pending_account_is_not_synced(world):
    account, _ = await world.sign_in()  # never confirmed
    assert await admit(world.services, Sync(account=account, reason="notification")) is None


async def test_a_poisoned_sync_message_pauses_inbound_sync_and_other_reasons_do_not(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await add_degraded_reason(world.services, account, "breaker")
    await add_degraded_reason(world.services, account, poison_reason("outbound"))
    assert await admit(world.services, Sync(account=account, reason="notification")) is not None
    await add_degraded_reason(world.services, account, poison_reason("sync"))
    assert await admit(world.services, Sync(account=account, reason="timer")) is None


async def test_degraded_reasons_are_a_set_each_cleared_on_its_own(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    services = world.services
    first = await add_degraded_reason(services, account, "breaker")
    assert first is not None
    assert first.status is Status.DEGRADED
    both = await add_degraded_reason(services, account, poison_reason("sync"))
    assert both is not None
    assert degraded_reasons(both) == {"breaker", "poison:sync"}
    left = await clear_degraded_reason(services, account, "breaker")
    assert left is not None
    assert left.status is Status.DEGRADED
    assert degraded_reasons(left) == {"poison:sync"}
    back = await clear_degraded_reason(services, account, poison_reason("sync"))
    assert back is not None
    assert back.status is Status.ACTIVE
    assert back.reason is None
    details = [e.detail for e in await services.journal.recent(account) if e.operation == "status"]
    assert "degraded -> active" in details
    assert "active -> degraded (breaker)" in details
    assert "degraded -> degraded (breaker,poison:sync)" in details


async def test_a_degraded_reason_never_overrides_needs_reconnect(world):
    account, token = await world.sign_in()
    await world.confirm(account, token)
    await set_status(world.services, account, Status.NEEDS_RECONNECT, "invalid_grant")
    assert await add_degraded_reason(world.services, account, poison_reason("sync")) is None
    stored = await AccountRepository(world.services.tables).get(account)
    assert stored is not None
    assert stored.status is Status.NEEDS_RECONNECT
