"""Timer triggers: NCRONTAB schedules under a singleton lock, with the host's schedule monitor.

From the WebJobs extensions (Azure/azure-webjobs-sdk-extensions, Timers/Listener/TimerListener.cs
and Timers/Scheduling/StorageScheduleMonitorV2.cs):
- The listener is a singleton (``[Singleton(Mode = SingletonMode.Listener)]``): only the instance
  holding a blob lease in container ``azure-webjobs-hosts`` runs the timer, so two runners on one
  Azurite never fire the same occurrence. Here the lock blob is
  ``locks/<hostId>/Host.Functions.<name>.Listener``; the others retry until it is free.
- ``useMonitor`` defaults to on, except for schedules that fire more than once a minute. With it
  the status ``{"Last", "Next", "LastUpdated"}`` lives in the blob
  ``timers/<hostId>/Host.Functions.<name>/status``. On start, a stored ``Next`` already in the past
  means an occurrence was missed while no runner was up: the function runs at once with
  ``past_due=True`` (see ``check_past_due`` for a changed schedule). Otherwise ``runOnStartup``
  runs it once at start.
- The function receives the status as it was before the invocation (its ``Next`` is the occurrence
  being fired); afterwards ``Last`` becomes the occurrence and ``Next`` the one after it. A failure
  is logged and the schedule goes on.
- Schedules run in UTC (the host uses the machine's local time zone or WEBSITE_TIME_ZONE; Azure's
  default is UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions.timer import TimerRequest
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from devstack.runner.aio import sleep_unless
from devstack.runner.index import FunctionSpec
from devstack.runner.invoke import invoke
from devstack.runner.ncrontab import CronSchedule

log = logging.getLogger("devstack.runner")

HOSTS_CONTAINER = "azure-webjobs-hosts"
NEVER = datetime(1, 1, 1, tzinfo=UTC)  # the host's ScheduleMonitor.DefaultDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScheduleStatus:
    last: datetime
    next: datetime
    last_updated: datetime

    def to_dict(self) -> dict[str, str]:
        return {"Last": self.last.isoformat(), "Next": self.next.isoformat(),
                "LastUpdated": self.last_updated.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ScheduleStatus:
        def when(key: str) -> datetime:
            value = datetime.fromisoformat(data[key])
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return cls(when("Last"), when("Next"), when("LastUpdated"))


def next_occurrence(schedule: CronSchedule, after: datetime) -> datetime:
    found = schedule.next_after(after)
    if found is None:
        raise ValueError(f"schedule {schedule.expression!r} never fires")
    return found


def check_past_due(schedule: CronSchedule, stored: ScheduleStatus | None,
                   now: datetime) -> tuple[ScheduleStatus, bool, bool]:
    """The status to start from, whether an occurrence was missed, and whether to store the status.

    ScheduleMonitor.CheckPastDueAsync: with no stored status, record one for the next occurrence (so
    a first occurrence missed later is still seen). If the stored ``Next`` is not what the schedule
    gives from ``Last`` (or ``LastUpdated``), the schedule changed: take the new schedule's next
    occurrence, from now if that one is already past, so a schedule change is never "past due".
    """
    if stored is None:
        return ScheduleStatus(last=NEVER, next=next_occurrence(schedule, now), last_updated=now), False, True
    status, changed = stored, False
    base = stored.last if stored.last != NEVER else stored.last_updated if stored.last_updated != NEVER else now
    expected = next_occurrence(schedule, base)
    if stored.next != expected:
        if now > expected:
            expected, base = next_occurrence(schedule, now), now
        status, changed = ScheduleStatus(last=NEVER, next=expected, last_updated=base), True
    return status, now > status.next, changed


def default_use_monitor(schedule: CronSchedule, now: datetime) -> bool:
    """useMonitor when the function does not say: on, unless the schedule fires more than once in
    the next minute (TimerTriggerAttribute's constructor in the WebJobs extensions)."""
    soon = [o for o in schedule.next_occurrences(now, 2) if o < now + timedelta(minutes=1)]
    return len(soon) <= 1


class TimerListener:
    def __init__(self, spec: FunctionSpec, schedule: CronSchedule, service: BlobServiceClient, host_id: str, *,
                 lock_seconds: int, lock_retry: float, time_limit: float | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.spec = spec
        self.schedule = schedule
        self.container = service.get_container_client(HOSTS_CONTAINER)
        self.lock_blob = self.container.get_blob_client(f"locks/{host_id}/Host.Functions.{spec.name}.Listener")
        self.status_blob = self.container.get_blob_client(f"timers/{host_id}/Host.Functions.{spec.name}/status")
        declared = spec.trigger.get("useMonitor")
        self.use_monitor = default_use_monitor(schedule, clock()) if declared is None else bool(declared)
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        self.lock_seconds = lock_seconds
        self.lock_retry = lock_retry
        self.time_limit = time_limit
        self.clock = clock
        self._lock_blob_ready = False

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                lease = await self._acquire()
            except AzureError as exc:  # storage down: the host keeps trying too
                log.warning("timer %s: cannot reach the lock blob: %s", self.spec.name, exc)
                lease = None
            if lease is None:
                await sleep_unless(stopping, self.lock_retry)
                continue
            log.info("timer %s: this runner holds the singleton lock", self.spec.name)
            await self._listen_holding(lease, stopping)

    async def _listen_holding(self, lease: BlobLeaseClient, stopping: asyncio.Event) -> None:
        # Listening ends when the runner stops or the lock is lost.
        listen_stop = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lock(lease, listen_stop))
        watcher = asyncio.create_task(stopping.wait())
        watcher.add_done_callback(lambda _: listen_stop.set())
        try:
            await self._listen(listen_stop)
        finally:
            keeper.cancel()
            watcher.cancel()
            with contextlib.suppress(AzureError):
                await lease.release()

    async def _acquire(self) -> BlobLeaseClient | None:
        if not self._lock_blob_ready:
            with contextlib.suppress(ResourceExistsError):
                await self.container.create_container()
            with contextlib.suppress(ResourceExistsError):
                await self.lock_blob.upload_blob(b"", overwrite=False)
            self._lock_blob_ready = True
        lease = BlobLeaseClient(self.lock_blob)
        try:
            await lease.acquire(lease_duration=self.lock_seconds)
        except HttpResponseError as exc:
            if exc.status_code == 409:  # LeaseAlreadyPresent: another runner has it
                return None
            raise
        return lease

    async def _keep_lock(self, lease: BlobLeaseClient, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lock_seconds / 3)
            try:
                await lease.renew()
            except AzureError as exc:
                log.warning("timer %s: lost the singleton lock: %s", self.spec.name, exc)
                lost.set()
                return

    async def _listen(self, stop: asyncio.Event) -> None:
        now = self.clock()
        if self.use_monitor:
            status, past_due, changed = check_past_due(self.schedule, await self._read_status(), now)
            if changed:
                await self._write_status(status)
        else:
            status = ScheduleStatus(last=NEVER, next=next_occurrence(self.schedule, now), last_updated=NEVER)
            past_due = False
        if past_due:
            log.info("timer %s: past due (missed %s)", self.spec.name, status.next.isoformat())
            status = await self._fire(status, now, past_due=True, unscheduled=True)
        elif self.run_on_startup:
            status = await self._fire(status, now, past_due=False, unscheduled=True)
        while not stop.is_set():
            delay = (status.next - self.clock()).total_seconds()
            if delay > 0:
                await sleep_unless(stop, delay)
                continue
            status = await self._fire(status, self.clock(), past_due=False, unscheduled=False)

    async def _fire(self, status: ScheduleStatus, invoked_at: datetime, *, past_due: bool,
                    unscheduled: bool) -> ScheduleStatus:
        request = TimerRequest(past_due=past_due, schedule_status=status.to_dict() if self.use_monitor else None,
                               schedule={"AdjustForDST": True})
        with contextlib.suppress(Exception):  # invoke() logged it; a failure never stops the schedule
            await invoke(self.spec, request, time_limit=self.time_limit,
                         reason="Timer fired at " + invoked_at.isoformat())
        # A timer that fires a hair early counts as the occurrence it was for (TimerListener's
        # adjustedInvocationTime), so Next never repeats.
        if not unscheduled and status.next > invoked_at:
            invoked_at = status.next
        updated = ScheduleStatus(last=invoked_at, next=next_occurrence(self.schedule, invoked_at),
                                 last_updated=invoked_at)
        if self.use_monitor:
            await self._write_status(updated)
        return updated

    async def _read_status(self) -> ScheduleStatus | None:
        try:
            data = await (await self.status_blob.download_blob()).readall()
        except ResourceNotFoundError:
            return None
        return ScheduleStatus.from_dict(json.loads(data))

    async def _write_status(self, status: ScheduleStatus) -> None:
        try:
            await self.status_blob.upload_blob(json.dumps(status.to_dict()), overwrite=True)
        except AzureError as exc:  # best effort, as the host's StorageScheduleMonitor
            log.error("timer %s: failed to update the timer status: %s", self.spec.name, exc)

