"""Graph's free/busy action: ``POST /me/calendar/getSchedule`` and
``POST /users/{id|userPrincipalName}/calendar/getSchedule``.

Sources: calendar: getSchedule (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule): ``schedules``
(SMTP addresses), ``startTime`` and ``endTime`` (dateTimeTimeZone), ``availabilityViewInterval`` (minutes, default
30, 5 to 1440); times in UTC unless ``Prefer: outlook.timezone``; Calendars.Read or Calendars.ReadWrite, delegated
or application. scheduleInformation resource type
(https://learn.microsoft.com/en-us/graph/api/resources/scheduleinformation): ``availabilityView`` one digit a
slot, 0 free, 1 tentative, 2 busy, 3 out of office, 4 working elsewhere; ``error`` a freeBusyError
(https://learn.microsoft.com/en-us/graph/api/resources/freebusyerror: ``message``, ``responseCode``). scheduleItem
resource type (https://learn.microsoft.com/en-us/graph/api/resources/scheduleitem): one per event on the user's
default calendar. workingHours resource type (https://learn.microsoft.com/en-us/graph/api/resources/workinghours).
Get free/busy schedule of Outlook calendar users and resources
(https://learn.microsoft.com/en-us/graph/outlook-get-free-busy-schedule): subject, location and isPrivate only for
events of sensitivity normal or personal on a calendar shared with the signed-in user or whose settings let it see
them; at most 20 entities; less than 62 days; an address it cannot identify answers an error for that schedule.

The events are the ones calendarView lists for the window (series expanded, cancelled occurrences left out).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devstack.m365.calendarview import in_window
from devstack.m365.eventdata import DEFAULTS, Preferences, bad_request, read_time, time_json
from devstack.m365.events import preferences_applied
from devstack.m365.eventstore import Event
from devstack.m365.graph import Caller, Graph, GraphAuth, GraphError, access_denied, async_route, odata_json, read_body
from devstack.m365.series import Occurrence
from devstack.m365.state import Calendar, SimState, User
from devstack.m365.timezones import resolve

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCHEDULE_PERMISSIONS = frozenset({"Calendars.Read", "Calendars.ReadWrite"})  # delegated scopes and app roles alike
DEFAULT_INTERVAL, MIN_INTERVAL, MAX_INTERVAL = 30, 5, 1440
# availabilityView digits; a slot several items share shows the busiest (assumed: oof over busy over tentative over
# workingElsewhere over free); an unknown status adds nothing (assumed)
DIGITS = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}
RANK = {"free": 0, "unknown": 0, "workingElsewhere": 1, "tentative": 2, "busy": 3, "oof": 4}
DETAIL_SENSITIVITIES = frozenset({"normal", "personal"})
FREE_BUSY_ONLY = frozenset({"none", "freeBusyRead"})  # calendarPermission roles that show no subject or location
WORK_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


class Schedules:
    def __init__(self, state: SimState, auth: GraphAuth, graph: Graph) -> None:
        self.state = state
        self.auth = auth
        self.graph = graph

    def routes(self) -> list[web.RouteDef]:
        # The reference page spells the action getSchedule; the concept page and the beta example POST getschedule.
        handler: Handler = async_route(self.state, self.auth, self.get_schedule)
        return [web.post(f"{prefix}/calendar/{name}", handler)
                for prefix in ("/v1.0/me", "/v1.0/users/{user}") for name in ("getSchedule", "getschedule")]

    async def get_schedule(self, request: web.Request, caller: Caller) -> web.Response:
        # Parameter names are matched case-insensitively (the concept page's example writes "Schedules").
        body = {k.lower(): v for k, v in (await read_body(request)).items()}
        prefs = Preferences.of(request.headers)
        with self.state.lock:
            self.graph.mailbox_owner(request, caller)
            if not (caller.roles if caller.app_only else caller.scopes) & SCHEDULE_PERMISSIONS:
                raise access_denied()
            addresses = self._schedules(body.get("schedules"))
            start, end = (read_time(body.get(name.lower()), name)[0].timestamp() for name in ("startTime", "endTime"))
            self._check_window(start, end)
            interval = _interval(body.get("availabilityviewinterval"), end - start)
            values = [self._information(address, caller, start, end, interval, prefs) for address in addresses]
        response = odata_json(request, "Collection(microsoft.graph.scheduleInformation)", {"value": values})
        preferences_applied(response, prefs)
        return response

    def _schedules(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise bad_request("schedules must be a collection of SMTP addresses.", "BadRequest")  # wording assumed
        if not value:  # EWS's name for an empty mailbox array (assumed; wording assumed)
            raise bad_request("The MailboxData array is empty.", "ErrorMailboxDataArrayEmpty")
        limit = self.state.switches.schedule_max_schedules
        if len(value) > limit:  # code and wording of a field report (microsoft-graph-docs#7047)
            raise bad_request(f"There are too many target users in the EmailAddress array. The allowed size = "
                              f"{limit}; the actual size = {len(value)}.", "ErrorMailboxDataArrayTooBig")
        return value

    def _check_window(self, start: float, end: float) -> None:
        if end <= start:  # code and wording of a field report (msgraph-sdk-dotnet#2349); when it answers, assumed
            raise bad_request("The time duration specified for FreeBusyViewOptions.TimeWindow is invalid.",
                              "ErrorInvalidTimeInterval")
        days, limit = math.ceil((end - start) / 86400), self.state.switches.schedule_max_days
        if days > limit:  # code and wording of a field report (microsoft-graph-docs#19703)
            raise bad_request(f"The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. "
                              f"The allowed limit = {limit} days; the actual limit = {days} days.",
                              "ErrorTimeIntervalTooBig")

    def _information(self, address: str, caller: Caller, start: float, end: float, interval: int,
                     prefs: Preferences) -> dict[str, Any]:
        user = self._resolve(address, caller.tenant_id)
        if user is None:
            # The shape, message and responseCode of a field report (microsoft-graph-docs#11225): the docs say only
            # that the error is indicated.
            return {"scheduleId": address, "error": {
                "message": f"Unable to resolve e-mail address {address} to an Active Directory object.",
                "responseCode": "5009"}}
        calendar = next((c for c in self.state.calendars_of(user.id) if c.is_default), None)
        found = self._items(calendar, start, end) if calendar is not None else []
        detailed = calendar is not None and details_visible(caller, user, calendar)
        switches = self.state.switches
        zone_name = prefs.timezone or "UTC"
        zone = resolve(zone_name) or resolve("UTC")
        assert zone is not None
        items = []
        for item, props in found:
            source = item.master if isinstance(item, Occurrence) else item
            floating = bool(props["isAllDay"]) and switches.all_day_floating
            shown: dict[str, Any] = {"status": _status(props)}
            if detailed and props["sensitivity"] in DETAIL_SENSITIVITIES:
                # isPrivate comes only with these sensitivities, so it is false wherever it is shown
                shown = {"isPrivate": False, **shown, "subject": props["subject"],
                         "location": (props["location"] or {}).get("displayName", "")}
                if switches.schedule_item_flags:
                    shown.update({"isMeeting": bool(props["attendees"]) or not source.is_organizer,
                                  "isRecurring": isinstance(item, Occurrence),
                                  "isException": isinstance(item, Occurrence) and item.exception is not None,
                                  "isReminderSet": bool(props["isReminderOn"])})
            shown["start"] = time_json(item.start, source.start_zone, zone, zone_name, floating)
            shown["end"] = time_json(item.end, source.end_zone, zone, zone_name, floating)
            items.append(shown)
        return {"scheduleId": address, "availabilityView": availability_view(found, start, end, interval),
                "scheduleItems": items,
                "workingHours": {"daysOfWeek": WORK_DAYS, "startTime": "08:00:00.0000000",
                                 "endTime": "17:00:00.0000000",
                                 "timeZone": {"name": switches.working_hours_time_zone}}}

    def _resolve(self, address: str, tenant_id: str) -> User | None:
        """The user an SMTP address names in the caller's tenant (a deleted user or a mailbox without REST access
        cannot be identified either: assumed)."""
        for user in self.state.users.values():
            if user.upn.lower() == address.strip().lower() and user.tenant_id == tenant_id:
                return user if not user.deleted and user.mailbox == "enabled" else None
        return None

    def _items(self, calendar: Calendar, start: float, end: float) -> list[tuple[Event | Occurrence, dict[str, Any]]]:
        """calendarView's events of the window with their properties; an attendee's copy of a cancelled meeting is
        left out (assumed), and so are free events when switch schedule_free_items is off."""
        found = []
        for item in in_window(self.state.events, calendar.id, start, end):
            source = item.master if isinstance(item, Occurrence) else item
            props = {**DEFAULTS, **source.props}
            if isinstance(item, Occurrence):
                props.update((item.exception or {}).get("props", {}))
            if source.is_cancelled or (_status(props) == "free" and not self.state.switches.schedule_free_items):
                continue
            found.append((item, props))
        return sorted(found, key=lambda pair: (pair[0].start, pair[0].end))


def details_visible(caller: Caller, owner: User, calendar: Calendar) -> bool:
    """Whether the caller may see subjects and locations (Get free/busy schedule, "Event data returned"): the calendar
    is shared with the signed-in user, or its organization-wide entry lets everyone see more than free/busy. The
    owner sees their own and an app what the organization-wide entry allows (both assumed)."""
    if caller.user is not None and caller.user.id == owner.id:
        return True
    roles = {p.role for p in calendar.permissions if not p.address}  # "My Organization"
    if caller.user is not None:
        roles |= {p.role for p in calendar.permissions if p.address.lower() == caller.user.upn.lower()}
    return bool(roles - FREE_BUSY_ONLY)


def availability_view(found: list[tuple[Event | Occurrence, dict[str, Any]]], start: float, end: float,
                      interval: int) -> str:
    """One digit a slot of ``interval`` minutes from ``start``; a last, shorter slot counts as one (assumed)."""
    width = interval * 60
    view = []
    for slot in range(math.ceil((end - start) / width)):
        low, high = start + slot * width, min(start + (slot + 1) * width, end)
        statuses = [_status(props) for item, props in found if item.start < high and item.end > low]
        busiest = max(statuses, key=RANK.__getitem__, default="free")
        view.append(DIGITS.get(busiest, "0"))
    return "".join(view)


def _status(props: dict[str, Any]) -> str:
    """freeBusyStatus: the event's showAs (event resource type: the same values)."""
    value = props["showAs"]
    return value if value in RANK else "unknown"


def _interval(value: Any, window_seconds: float) -> int:
    """availabilityViewInterval: an Int32 (the concept page's and the beta example's "15" and "60" strings too), 5
    to 1440 and no longer than the window (code and wording of field reports: microsoft-graph-docs#6450,
    PlaceOS/office365#29); a missing or null one is 30 (Graph answered null with a 500: microsoft-graph-docs#4494)."""
    if value is None:
        return DEFAULT_INTERVAL
    digits = isinstance(value, str) and value.strip().isdigit()
    minutes = int(value) if digits or (isinstance(value, int) and not isinstance(value, bool)) else 0
    if not MIN_INTERVAL <= minutes <= MAX_INTERVAL or minutes * 60 > window_seconds:
        raise GraphError(400, "ErrorInvalidMergedFreeBusyInterval", "The specified merged free/busy interval is not "
                         "valid. Specify an interval that is less than the free/busy time window and between "
                         f"{MIN_INTERVAL} and {MAX_INTERVAL} minutes.")
    return minutes
