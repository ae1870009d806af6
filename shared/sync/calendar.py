"""The calendar model's rules that need more than one event (pure code: no I/O, no SDK).

Delta sends an occurrence of a series thin: its id, type, series master and times, nothing else
(microsoft-graph-docs#7632; "event: delta", https://learn.microsoft.com/en-us/graph/api/event-delta). What
it says otherwise is its series master's: an occurrence that is not an exception is the master at another
time (an exception, which can differ, comes whole). So a thin occurrence is filled from the master as
Graph answers it now: its subject, location, show-as, zone, attendees and the rest, its own times, and
the master's version tags (a tombstone yields to the master's ``lastModifiedDateTime``).
"""

from __future__ import annotations

from dataclasses import replace

from shared.sync.projection import StoredEvent
from shared.sync.zones import all_day_date, local_wall_time


def fill_from_master(occurrence: StoredEvent, master: StoredEvent) -> StoredEvent:
    zone = master.zone or "UTC"
    end_zone = master.end_zone or zone
    all_day = bool(master.is_all_day)
    return replace(
        master, calendar=occurrence.calendar, id=occurrence.id, type="occurrence",
        series_master_id=occurrence.series_master_id, start=occurrence.start, end=occurrence.end,
        # Not an exception: it starts when the series says it does.
        original_start=occurrence.original_start or occurrence.start,
        recurrence=None, recurrence_flag=None, is_cancelled=False,
        local_start=None if all_day else local_wall_time(occurrence.start, zone),
        local_end=None if all_day else local_wall_time(occurrence.end, end_zone),
        start_date=all_day_date(occurrence.start, zone) if all_day else None,
        end_date=all_day_date(occurrence.end, end_zone) if all_day else None)
