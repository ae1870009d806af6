"""Large mailboxes for scale tests: ``count`` events generated from a ``seed`` in one call, the same events for
the same seed. The state file keeps the seed, not the events, so a restart regenerates them. The first ``series`` of
them are weekly series (patternedRecurrence resource type,
https://learn.microsoft.com/en-us/graph/api/resources/patternedrecurrence) of 2 to 20 occurrences."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from devstack.m365.eventstore import ICAL_PREFIX, IMMUTABLE_PREFIX, REST_PREFIX, Event, id_from_bytes
from devstack.m365.state import SimState
from devstack.m365.timezones import resolve

SUBJECTS = ("Standup", "Design review", "1:1", "Planning", "Customer call", "Lunch", "Retro", "Focus time")
ZONES = ("UTC", "W. Europe Standard Time", "Pacific Standard Time", "Eastern Standard Time", "Tokyo Standard Time")
DAY = 86400


def generate_events(state: SimState, spec: dict[str, Any]) -> int:
    """``{"user", "calendar", "count", "seed", "start"?, "series"?}``: add the events; returns how many were made.

    :raises KeyError: the user or calendar is unknown.
    """
    user = state.users[spec["user"]]
    calendar = state.calendars[spec["calendar"]]
    rng = random.Random(spec["seed"])
    first = float(spec.get("start", state.clock.now()))
    organizer = {"emailAddress": {"name": user.display_name, "address": user.upn}}
    store = state.events
    count = int(spec["count"])
    series = int(spec.get("series", 0))
    for i in range(count):
        start = first + rng.randrange(0, 365 * 96) * 900  # a quarter-hour in the coming year
        zone = ZONES[i % len(ZONES)]
        recurrence = weekly(start, zone, rng.randint(2, 20)) if i < series else None
        store.add(Event(
            key=f"gen-{spec['seed']}-{i}", mailbox_id=user.id, calendar_id=calendar.id,
            rest_id=id_from_bytes(REST_PREFIX + rng.randbytes(43)),
            immutable_id=id_from_bytes(IMMUTABLE_PREFIX + rng.randbytes(40)),
            change_key=id_from_bytes(rng.randbytes(15)), created=first, modified=first,
            ical_uid=ICAL_PREFIX + rng.randbytes(28).hex().upper(), start=start, end=start + 1800 * rng.randint(1, 4),
            start_zone=zone, end_zone=zone, organizer=organizer,
            props={"subject": f"{SUBJECTS[i % len(SUBJECTS)]} #{i}",
                   "body": {"contentType": "html", "content": ""}, "bodyPreview": "", "recurrence": recurrence},
            generated=True))
    store.generated.append(dict(spec))
    return count


def weekly(start: float, zone: str, occurrences: int) -> dict[str, Any]:
    """Weekly on the start's weekday in its zone, from its date, ``occurrences`` times."""
    named = resolve(zone)
    assert named is not None
    local = datetime.fromtimestamp(start, UTC).astimezone(named.tz)
    return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [local.strftime("%A").lower()],
                        "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": local.date().isoformat(), "numberOfOccurrences": occurrences}}
