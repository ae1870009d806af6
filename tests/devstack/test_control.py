"""The simulator's control API over HTTP: seed, switches, clock, reset (docs/devstack.md)."""

from __future__ import annotations

from tests.devstack.world import World


def test_seed_over_http_then_reset(world: World):
    """POST /_sim/seed creates a tenant reachable by its domain; POST /_sim/reset empties everything."""
    created = world.control("POST", "seed", {"tenants": [{"name": "Tailspin", "domain": "tailspin.test", "users": [
        {"upn": "dan@tailspin.test", "displayName": "Dan Drake", "calendars": [{"name": "Calendar",
                                                                                "isDefault": True}]}]}]})
    assert len(created["users"]) == 1
    assert len(created["calendars"]) == 1
    discovery = world.session.get(f"{world.sim.url}/tailspin.test/v2.0/.well-known/openid-configuration", timeout=10)
    assert discovery.json()["issuer"].endswith(f"/{created['tenants'][0]}/v2.0")
    world.control("POST", "reset")
    assert world.control("GET", "counters") == {"routes": {}, "mailboxes": {}, "mailboxRoutes": {}, "throttled": {},
                                                "notifications": {}, "invitations": {}, "peakConcurrency": {},
                                                "batches": {}, "endpoints": {}}
    after = world.session.get(f"{world.sim.url}/tailspin.test/v2.0/.well-known/openid-configuration", timeout=10)
    assert after.status_code == 400


def test_switches_and_clock(world: World):
    """PATCH /_sim/switches changes token lifetimes; the clock only moves forward; unknown switches are 400."""
    switches = world.control("PATCH", "switches", {"access_token_seconds": 60})
    assert switches["access_token_seconds"] == 60
    _, tokens = world.sign_in(world.alice)
    assert tokens["expires_in"] == 60
    before = world.control("GET", "clock")["now"]
    assert world.control("POST", "clock/advance", {"seconds": 120})["now"] >= before + 120
    response = world.session.patch(f"{world.sim.url}/_sim/switches", json={"nope": 1}, timeout=10)
    assert response.status_code == 400


def test_seed_rejects_a_bad_spec(world: World):
    """A seed missing a required field is a 400 naming the field."""
    response = world.session.post(f"{world.sim.url}/_sim/seed", json={"tenants": [{"name": "no domain"}]},
                                  timeout=10)
    assert response.status_code == 400
    assert "domain" in response.json()["error"]
