"""The simulator's state file keeps events: SimState.save then SimState.load gives back the events written through
Graph (ids, change keys, times, single-value extended properties, transactionId), the calendars, and generated
mailboxes regenerated from their seed rather than read from the file. Create event
(https://learn.microsoft.com/en-us/graph/api/user-post-events), Create single-value extended property
(https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-post-singlevalueextendedproperties)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from devstack.m365.state import SimState
from tests.devstack.test_events import TAG, a_token, lunch, raw
from tests.devstack.world import World


def test_save_then_load_keeps_events_calendars_and_regenerates_big_mailboxes(world: World, tmp_path: Path):
    token = a_token(world, world.alice)
    made = raw(world, "POST", "/me/events", token, lunch(
        transactionId="tx-state", singleValueExtendedProperties=[{"id": TAG, "value": "sync-1"}])).json()
    raw(world, "POST", f"/me/calendars/{world.alice_projects}/events", token, lunch(subject="in projects"))
    world.control("POST", f"users/{world.bob}/events/generate", {"count": 2_000, "seed": 11})
    path = tmp_path / "state.json"
    with world.state.lock:
        world.state.save(path)
        before = {k: dataclasses.asdict(e) for k, e in world.state.events.events.items()}
        calendars = {k: dataclasses.asdict(c) for k, c in world.state.calendars.items()}
    saved = json.loads(path.read_text())
    assert len(saved["events"]) == 2  # generated events are not written, only their seed
    assert saved["generated_events"][0]["count"] == 2_000

    loaded = SimState.load(path)
    assert {k: dataclasses.asdict(e) for k, e in loaded.events.events.items()} == before
    assert {k: dataclasses.asdict(c) for k, c in loaded.calendars.items()} == calendars
    event = loaded.events.find(made["id"])
    assert event is not None
    assert event.extended == {TAG: "sync-1"}
    assert loaded.events.find(event.immutable_id) is event
    assert loaded.events.by_transaction(world.alice, "tx-state") is event
    assert loaded.events.count(world.alice_projects) == 1
    assert loaded.events.generated == saved["generated_events"]
