"""The token broker on in-memory stores and the fake identity provider: which statuses get a token, and
that a dead grant only ever concerns the connection generation it belongs to."""

from __future__ import annotations

import pytest

from shared.accounts.model import Status
from shared.accounts.status import APP_ALARM, set_status
from shared.auth.credential import TokenBroker
from shared.errors import AccountAuthError, AppAuthError
from tests.fakes import FakeIdentityProvider
from tests.unit.test_connect import World


class DiesDuringReconnect(FakeIdentityProvider):
    """An identity provider whose refresh of the first connection fails only after the user has reconnected
    (the old grant was revoked while a refresh was in flight), and works for the new connection."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.refreshed: list[str] = []

    async def refresh(self, token_state: str, *, claims_challenge: str | None = None):
        self.refreshed.append(token_state)
        if len(self.refreshed) == 1:
            account, token = await self.world.sign_in()
            assert (await self.world.confirm(account, token)).status == 200
            raise AccountAuthError("invalid_grant", aad_code="AADSTS50173")
        return await self.world.idp.refresh(token_state)


@pytest.fixture
def world() -> World:
    return World()


async def connected(world: World) -> str:
    account, token = await world.sign_in()
    assert (await world.confirm(account, token)).status == 200
    return account


async def test_a_dead_grant_of_a_replaced_connection_does_not_flip_the_reconnected_account(world):
    """Review finding 5: the refresh began with generation 1; generation 2 was confirmed before it failed."""
    account = await connected(world)
    idp = DiesDuringReconnect(world)
    broker = TokenBroker(world.services, idp, world.vault)
    token = await broker.access_token(account)
    stored = await world.repo.get(account)
    assert (stored.status, stored.generation) == (Status.ACTIVE, 2)
    assert token.token
    assert len(idp.refreshed) == 2  # tried again with the new connection's token state
    assert idp.refreshed[0] != idp.refreshed[1]


async def test_a_dead_grant_of_the_live_connection_turns_needs_reconnect(world):
    account = await connected(world)

    class Dead(FakeIdentityProvider):
        async def refresh(self, token_state, *, claims_challenge=None):
            raise AccountAuthError("invalid_grant", aad_code="AADSTS700082")

    with pytest.raises(AccountAuthError):
        await TokenBroker(world.services, Dead(), world.vault).access_token(account)
    stored = await world.repo.get(account)
    assert (stored.status, stored.reason) == (Status.NEEDS_RECONNECT, "invalid_grant:AADSTS700082")


async def test_the_app_alarm_clears_when_the_application_credential_works_again(world):
    account = await connected(world)
    idp = world.idp

    class Rejected(FakeIdentityProvider):
        async def refresh(self, token_state, *, claims_challenge=None):
            raise AppAuthError("invalid_client", aad_code="AADSTS7000222")

    with pytest.raises(AppAuthError):
        await TokenBroker(world.services, Rejected(), world.vault).access_token(account)
    assert await world.repo.get_app_state(APP_ALARM) is not None
    assert (await world.repo.get(account)).status is Status.ACTIVE  # the app's fault, not the account's
    assert (await TokenBroker(world.services, idp, world.vault).access_token(account)).token
    assert await world.repo.get_app_state(APP_ALARM) is None


@pytest.mark.parametrize(("status", "full", "cleanup"), [
    (Status.ACTIVE, True, True),
    (Status.DEGRADED, True, True),
    (Status.UNSUPPORTED, False, True),      # its subscriptions must still be deleted (review finding 3)
    (Status.DISCONNECTED, False, True),
    (Status.NEEDS_RECONNECT, False, False),
])
async def test_which_statuses_get_a_token(world, status, full, cleanup):
    account = await connected(world)
    await set_status(world.services, account, status, "test")
    for purpose, allowed in (("full", full), ("cleanup", cleanup)):
        broker = TokenBroker(world.services, world.idp, world.vault)
        if allowed:
            assert (await broker.access_token(account, cleanup=purpose == "cleanup")).token
        else:
            with pytest.raises(AccountAuthError, match="account_not_active"):
                await broker.access_token(account, cleanup=purpose == "cleanup")
    assert (await world.repo.get(account)).status is status  # asking never changes the status
