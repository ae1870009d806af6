"""Sync messages for accounts that should not sync are dropped before any Graph call."""

from __future__ import annotations

import pytest

from shared.accounts.model import Status
from shared.accounts.status import set_status
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
