"""calendarView delta rounds: what a round holds, how it pages, its state tokens and what a later round reports,
read from the mailbox's change log (eventstore.py) so that a later round never rescans the calendar.

Sources: event: delta (https://learn.microsoft.com/en-us/graph/api/event-delta): the window is given once and
encoded in the tokens; ``@removed`` with reason ``deleted`` both for events deleted in the window and for events
outside it that were added, updated or deleted; Get incremental changes to events in a calendar view
(https://learn.microsoft.com/en-us/graph/delta-query-events): pages of ``Prefer: odata.maxpagesize``, a round
pages by ``@odata.nextLink`` (``$skiptoken``) and ends with ``@odata.deltaLink`` (``$deltatoken``), a later round
returns only what changed; Use delta query to track changes in Microsoft Graph data
(https://learn.microsoft.com/en-us/graph/delta-query-overview): follow a nextLink even when ``value`` is empty,
the same item may appear more than once in a round, Outlook tokens have no fixed lifetime and are evicted from a
cache (an expired one is answered with a 4xx ``syncStateNotFound``-like error).

Tokens are server-side (opaque random strings naming a record here) and are not saved in the state file: after a
restart every earlier token answers 410, as an evicted one does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, NamedTuple

from devstack.m365.eventdata import Preferences, event_json
from devstack.m365.eventstore import Event, LogEntry
from devstack.m365.graph import GraphError
from devstack.m365.series import (
    Occurrence,
    ids_of,
    occurrence_id,
    occurrence_json,
    occurrences_in,
    original_key,
    originals_in,
    overlaps,
    series_of,
    shape_at,
    shape_of,
)
from devstack.m365.state import SimState

EVENT_TYPE = "#microsoft.graph.event"


class Ref(NamedTuple):
    """One item of a round, rendered when its page is served: an event (``original`` None), an occurrence of the
    master ``key``, or a removal of the ids given."""

    kind: str  # "event", "occurrence", "removed" or "break" (an empty page)
    key: str = ""
    original: float = 0.0
    rest_id: str = ""
    immutable_id: str = ""


BREAK = Ref("break")


@dataclass
class Round:
    """One round of delta calls: its items in units (a series' items stay together on a page, switch
    delta_series_on_one_page), fixed when the round starts."""

    mailbox_id: str
    calendar_id: str
    window: tuple[float, float]
    base_seq: int  # the deltaLink that ends the round reports changes after this
    units: list[list[Ref]]
    loops_left: int = 0  # delta_loop_page: how many more times the looping page links to itself


@dataclass
class Token:
    mailbox_id: str
    calendar_id: str
    window: tuple[float, float]
    created: float
    seq: int = 0  # a deltaLink's token: changes after this sequence
    round: Round | None = None  # a nextLink's token: the round and where its page starts
    position: int = 0
    page: int = 1


@dataclass
class Page:
    values: list[dict[str, Any]]
    next_token: str | None = None
    delta_token: str | None = None
    page_size: int = 0


def sync_state_not_found(state: SimState) -> GraphError:
    # Code and message of field reports (microsoftgraph/microsoft-graph-docs#2350: 410 Gone, "SyncStateNotFound");
    # the errors page spells it syncStateNotFound (switch delta_expired_code)
    return GraphError(410, state.switches.delta_expired_code, "The sync state generation is not found; "
                      f"generation={secrets.randbelow(10 ** 9)}")


class Deltas:
    """Serves delta pages over the state; callers hold the lock."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def issue(self, token: Token) -> str:
        """A new token in the mailbox's cache, the oldest evicted once it holds delta_token_cache_size."""
        value = secrets.token_urlsafe(18)
        cache = self.state.delta_tokens.setdefault(token.mailbox_id, {})
        cache[value] = token
        while len(cache) > max(1, self.state.switches.delta_token_cache_size):
            del cache[next(iter(cache))]
        return value

    def evict(self, mailbox_id: str) -> int:
        """Forget every token of the mailbox (control API): their next use answers 410."""
        return len(self.state.delta_tokens.pop(mailbox_id, {}))

    def page(self, mailbox_id: str, calendar_id: str, window: tuple[float, float] | None, token: str | None,
             prefs: Preferences, origin: str) -> Page:
        """The next page: of a new round over ``window`` (no token), of the round a skip token continues, or of a
        later round from a delta token.

        :raises GraphError: 410 for a token unknown here (evicted, expired, or of another calendar)."""
        s = self.state.switches
        if token is None:
            assert window is not None
            held = Token(mailbox_id, calendar_id, window, self.state.clock.now(),
                         round=self._round(mailbox_id, calendar_id, window, None))
        else:
            held = self._held(token, mailbox_id, calendar_id)
            if held.round is None:
                held = Token(mailbox_id, calendar_id, held.window, self.state.clock.now(),
                             round=self._round(mailbox_id, calendar_id, held.window, held.seq))
        work = held.round
        assert work is not None
        size = s.delta_page_size_override or prefs.max_page_size or s.delta_page_size
        refs, position = self._take(work.units, held.position, size)
        values = [v for v in (self._render(r, work, prefs, origin) for r in refs) if v is not None]
        empty_page = position > held.position and not refs  # an empty page still links to the next one
        if position >= len(work.units) and not empty_page:
            if s.delta_duplicate_item and work.units and work.units[0] != [BREAK]:
                first = self._render(work.units[0][0], work, prefs, origin)
                if first is not None:
                    values.append(first)  # the same item twice in one round (delta query overview)
            delta = Token(mailbox_id, calendar_id, work.window, self.state.clock.now(), seq=work.base_seq)
            return Page(values, delta_token=self.issue(delta), page_size=size)
        if held.page == s.delta_loop_page and token is not None and work.loops_left > 0:
            work.loops_left -= 1
            return Page(values, next_token=token, page_size=size)  # the next link names this same page again
        following = Token(mailbox_id, calendar_id, work.window, self.state.clock.now(), round=work,
                          position=position, page=held.page + 1)
        return Page(values, next_token=self.issue(following), page_size=size)

    def _held(self, token: str, mailbox_id: str, calendar_id: str) -> Token:
        cache = self.state.delta_tokens.get(mailbox_id, {})
        held = cache.get(token)
        lifetime = self.state.switches.delta_token_lifetime_seconds
        if held is not None and lifetime and self.state.clock.now() - held.created > lifetime:
            del cache[token]
            held = None
        if held is None or held.calendar_id != calendar_id:
            raise sync_state_not_found(self.state)
        return held

    @staticmethod
    def _take(units: list[list[Ref]], position: int, size: int) -> tuple[list[Ref], int]:
        """Whole units from ``position`` until the page holds ``size`` items (a unit may overflow it: the page
        size is a hint); a break ends the page, and is an empty page when it comes first."""
        taken: list[Ref] = []
        while position < len(units) and len(taken) < size:
            unit = units[position]
            if unit == [BREAK]:
                if not taken:
                    position += 1
                break
            taken += unit
            position += 1
        return taken, position

    # --- what a round holds --------------------------------------------------------------------------------

    def _round(self, mailbox_id: str, calendar_id: str, window: tuple[float, float], since: int | None) -> Round:
        store = self.state.events
        s = self.state.switches
        if since is None:
            units = [u for u in (self._first(store.events[k], window) for k in store.in_calendar(calendar_id)) if u]
        else:
            latest: dict[str, LogEntry] = {}
            for entry in store.changes_since(mailbox_id, since):
                if entry.calendar_id == calendar_id:
                    latest.pop(entry.key, None)
                    latest[entry.key] = entry  # the order of their last change
            units = [u for u in (self._later(e, window, since) for e in latest.values()) if u]
        if not s.delta_series_on_one_page:
            units = [[ref] for unit in units for ref in unit]
        units += [[BREAK]] * s.delta_empty_pages
        return Round(mailbox_id, calendar_id, window, store.seq.get(mailbox_id, 0), units, s.delta_loop_times)

    def _first(self, event: Event, window: tuple[float, float]) -> list[Ref]:
        if not event.props.get("recurrence"):
            return [Ref("event", event.key)] if overlaps(event.start, event.end, *window) else []
        unit = [Ref("occurrence", event.key, o.original) for o in occurrences_in(event, *window)]
        if unit and self.state.switches.delta_series_master:
            unit.insert(0, Ref("event", event.key))
        return unit

    def _later(self, entry: LogEntry, window: tuple[float, float], since: int) -> list[Ref]:
        event = self.state.events.events.get(entry.key)
        if event is None or event.calendar_id != entry.calendar_id:
            return self._removed_from_calendar(entry, window)
        earlier = shape_at(event, since)
        if not event.props.get("recurrence"):
            if overlaps(event.start, event.end, *window):
                unit = [Ref("event", event.key)]
            else:  # event: delta: an event outside the range that changed is reported as removed
                unit = [Ref("removed", rest_id=event.rest_id, immutable_id=event.immutable_id)]
            if earlier is not None and earlier["series"] is not None:  # a series made a single event
                unit += removed_occurrences(earlier["series"], event.rest_id, event.immutable_id, window)
            return unit
        unit = self._first(event, window)
        current = {original_key(r.original) for r in unit if r.kind == "occurrence"}
        shape = shape_of(event)
        known = set(originals_in({**shape, "exceptions": {}}, *window))
        if earlier is not None and earlier["series"] is not None:
            known |= set(originals_in(earlier["series"], *window))
        elif earlier is not None and not self.state.switches.delta_series_master:
            # a single event made a series: the single instance the client holds is gone
            unit.insert(0, Ref("removed", rest_id=event.rest_id, immutable_id=event.immutable_id))
        for original in sorted(known):
            key = original_key(original)
            if key in current:
                continue
            if key in event.cancelled and self.state.switches.delta_cancelled_occurrence == "vanish":
                continue
            unit.append(Ref("removed", rest_id=occurrence_id(event.rest_id, original),
                            immutable_id=occurrence_id(event.immutable_id, original)))
        if not unit:  # a series with nothing in the window changed: reported as removed, like a single event
            unit = [Ref("removed", rest_id=event.rest_id, immutable_id=event.immutable_id)]
        return unit

    def _removed_from_calendar(self, entry: LogEntry, window: tuple[float, float]) -> list[Ref]:
        master = Ref("removed", rest_id=entry.rest_id, immutable_id=entry.immutable_id)
        if entry.series is None or self.state.switches.delta_series_delete == "master":
            return [master]
        return [master, *removed_occurrences(entry.series, entry.rest_id, entry.immutable_id, window)]

    # --- rendering -----------------------------------------------------------------------------------------

    def _render(self, ref: Ref, work: Round, prefs: Preferences, origin: str) -> dict[str, Any] | None:
        s = self.state.switches
        if ref.kind == "removed":
            return removed(ref.immutable_id if prefs.immutable else ref.rest_id)
        event = self.state.events.events.get(ref.key)
        if event is None or event.calendar_id != work.calendar_id:
            return None  # gone since the round started: the next round reports it
        if ref.kind == "event":
            # event: delta's example shows transactionId null where the app set none
            return {"@odata.type": EVENT_TYPE, "transactionId": None, **event_json(event, prefs, s, origin)}
        occurrence = Occurrence(event, ref.original)
        if occurrence.key in event.cancelled:
            return None
        if event.seq > work.base_seq and occurrence.key not in event.exceptions \
                and not series_of(shape_of(event)).is_occurrence(ref.original):
            return None  # the series was reshaped since the round started: the next round reports it
        body = occurrence_json(occurrence, prefs, s, origin, thin=s.delta_thin_occurrences)
        return {"@odata.type": EVENT_TYPE, **body}


def removed_occurrences(shape: dict[str, Any], rest_id: str, immutable_id: str, window: tuple[float, float]
                        ) -> list[Ref]:
    """Removals of a series shape's occurrences in the window, the master's ids given in both forms."""
    return [Ref("removed", rest_id=r, immutable_id=i) for r, i in zip(
        ids_of(shape, rest_id, *window), ids_of(shape, immutable_id, *window), strict=True)]


def removed(item_id: str) -> dict[str, Any]:
    return {"@odata.type": EVENT_TYPE, "id": item_id, "@removed": {"reason": "deleted"}}
