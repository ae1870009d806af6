"""Change and lifecycle notifications: built in Graph's shapes, queued in the state's outbox and POSTed by a
background task of the simulator's event loop, never inside the request that caused them.

Delivery follows "Receive change notifications through webhooks"
(https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks) on the simulated clock: 3 s
timeout, >2,900 ms counts as slow, the slow-endpoint rule (delay, then drop), retries for 4 hours, then ``missed``
("Reduce missing subscriptions and change notifications",
https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events). Also the validation handshake
(same webhooks page), which shares the HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl

from devstack.m365.state import EndpointStats, Outgoing, SimState, Subscription, b64url, new_id

log = logging.getLogger(__name__)

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
TICK_SECONDS = 0.05  # real time between background passes


def graph_time(seconds: float) -> str:
    """A DateTimeOffset as Graph writes it: UTC, seven fractional digits."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_graph_time(value: str) -> float:
    """Seconds since the epoch of a DateTimeOffset (up to seven fractional digits; no offset means UTC)."""
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def change_item(sub: Subscription, change_type: str, event_id: str, etag: str) -> dict[str, Any]:
    resource = f"Users/{sub.mailbox_id}/Events/{event_id}"
    return {
        "subscriptionId": sub.id, "subscriptionExpirationDateTime": graph_time(sub.expires_at),
        "changeType": change_type, "resource": resource,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                         "@odata.etag": f'W/"{etag}"', "id": event_id},
        "clientState": sub.client_state, "tenantId": sub.tenant_id,
    }


def lifecycle_item(sub: Subscription, event: str) -> dict[str, Any]:
    return {"subscriptionId": sub.id, "subscriptionExpirationDateTime": graph_time(sub.expires_at),
            "tenantId": sub.tenant_id, "clientState": sub.client_state, "lifecycleEvent": event,
            "resource": sub.resource}


class Notifier:
    def __init__(self, state: SimState, ssl_context: ssl.SSLContext) -> None:
        self.state = state
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._deliver_lock: asyncio.Lock | None = None

    # --- queueing (sync; callers may hold the state lock) ----------------------------------------

    def fire_change(self, mailbox_id: str, calendar_id: str | None, event_id: str, change_type: str,
                    etag: str | None = None, immutable_id: str | None = None) -> int:
        """Queue ``change_type`` on an event for every subscription watching it; returns how many items. A
        subscription created with Prefer: IdType="ImmutableId" hears ``immutable_id`` when there is one
        (Obtain immutable identifiers for Outlook resources, https://learn.microsoft.com/en-us/graph/outlook-immutable-id)."""
        queued = 0
        etag = etag or b64url(new_id().encode())[:22]
        with self.state.lock:
            default = next((c.id for c in self.state.calendars_of(mailbox_id) if c.is_default), None)
            for sub in list(self.state.subscriptions.values()):
                if sub.mailbox_id != mailbox_id or not self._watches(sub, calendar_id, default):
                    continue
                kinds = [change_type]
                if change_type == "created" and self.state.switches.create_also_updated:
                    # Receive change notifications through webhooks,
                    # https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks: one create can
                    # yield created and updated
                    kinds.append("updated")
                for kind in kinds:
                    if kind in sub.change_types:
                        seen = immutable_id if immutable_id and sub.id_type == "ImmutableId" else event_id
                        queued += self._enqueue(sub, change_item(sub, kind, seen, etag), lifecycle=False)
        return queued

    def _watches(self, sub: Subscription, calendar_id: str | None, default: str | None) -> bool:
        if sub.calendar_id is not None:
            return calendar_id == sub.calendar_id or (calendar_id is None and sub.calendar_id == default)
        return not self.state.switches.events_default_calendar_only or calendar_id in (None, default)

    def fire_lifecycle(self, sub: Subscription, event: str) -> bool:
        """Queue a lifecycle notification; False when the subscription has no lifecycleNotificationUrl."""
        if sub.lifecycle_url is None:
            return False
        with self.state.lock:
            self._enqueue(sub, lifecycle_item(sub, event), lifecycle=True)
        return True

    def _enqueue(self, sub: Subscription, item: dict[str, Any], lifecycle: bool) -> int:
        counts = self.state.notification_counts
        plans = self.state.notification_plans
        if not lifecycle:
            if sub.paused:
                # Reduce missing subscriptions and change notifications,
                # https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events: changes made while
                # paused are lost.
                counts["lost_while_paused"] += 1
                return 0
            if plans.get("drop", 0) > 0:
                plans["drop"] -= 1
                self._dropped(sub.id)
                return 0
        copies = 1
        if not lifecycle and (self.state.switches.duplicate_notifications or plans.get("duplicate", 0) > 0):
            if plans.get("duplicate", 0) > 0:
                plans["duplicate"] -= 1
            copies = 2
            counts["duplicated"] += 1
        url = sub.lifecycle_url if lifecycle else sub.notification_url
        assert url is not None
        due = self.state.clock.now() + self.state.notification_delay_seconds
        for _ in range(copies):
            self.state.outbox.append(Outgoing(url, dict(item), sub.id, lifecycle, due, due))
        return copies

    def _dropped(self, sub_id: str) -> None:
        """Count a dropped change notification and tell the subscription's lifecycle URL (``missed``)."""
        self.state.notification_counts["dropped"] += 1
        sub = self.state.subscriptions.get(sub_id)
        if sub is None or sub.lifecycle_url is None:
            return
        already = any(o.lifecycle and o.subscription_id == sub.id and o.item["lifecycleEvent"] == "missed"
                      for o in self.state.outbox)
        if not already:
            self.fire_lifecycle(sub, "missed")

    # --- the simulated clock's duties ------------------------------------------------------------

    def tick(self) -> None:
        """Remove expired subscriptions, fire reauthorizationRequired before token or subscription expiry,
        pause subscriptions whose reauthorization went unanswered (Reduce missing subscriptions and change
        notifications, https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events, Outlook change
        notifications overview (https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview))."""
        s = self.state.switches
        with self.state.lock:
            now = self.state.clock.now()
            for sub in list(self.state.subscriptions.values()):
                if sub.expires_at <= now:
                    del self.state.subscriptions[sub.id]  # not renewed: Graph deletes it, without a lifecycle event
                    self.state.notification_counts["subscriptions_expired"] += 1
                    continue
                if sub.lifecycle_url is None:
                    continue
                near = min(sub.authorized_until, sub.expires_at) - s.reauthorization_lead_seconds
                if sub.reauthorization_sent_at is None and now >= near:
                    sub.reauthorization_sent_at = now
                    self.fire_lifecycle(sub, "reauthorizationRequired")
                elif sub.reauthorization_sent_at is not None and not sub.paused and \
                        now >= sub.reauthorization_sent_at + s.pause_after_reauthorization_seconds:
                    sub.paused = True

    # --- delivery --------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                self.tick()
                await self.deliver_due()
            except Exception:  # keep delivering; a bug shows in the log, not as a dead task
                log.exception("notification delivery pass failed")
            await asyncio.sleep(TICK_SECONDS)

    async def flush(self, seconds: float) -> int:
        """Deliver everything due now, waiting at most ``seconds``; returns how many stay due."""
        deadline = time.monotonic() + seconds
        while True:
            self.tick()
            await self.deliver_due()
            with self.state.lock:
                now = self.state.clock.now()
                due = sum(1 for o in self.state.outbox if o.due_at <= now)
            if due == 0 or time.monotonic() > deadline:
                return due

    async def deliver_due(self) -> None:
        if self._deliver_lock is None:
            self._deliver_lock = asyncio.Lock()
        async with self._deliver_lock:
            outbox = self.state.outbox
            groups = self._take_due()
            if not groups:
                return
            results = await asyncio.gather(*(self._post(url, [o.item for o in batch]) for url, batch in groups))
            with self.state.lock:
                if self.state.outbox is not outbox:
                    return  # the state was reset meanwhile: these results belong to no one
                for (url, batch), (ok, slow) in zip(groups, results, strict=True):
                    self._account(url, batch, ok, slow)

    def _endpoint(self, url: str, now: float) -> EndpointStats:
        stats = self.state.endpoints.get(url)
        if stats is None or now - stats.window_start >= self.state.switches.slow_window_seconds:
            stats = self.state.endpoints[url] = EndpointStats(window_start=now)
        return stats

    def _endpoint_state(self, url: str, now: float) -> str:
        """"ok", "throttled" or "dropping" (Receive change notifications through webhooks,
        https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks: judged after 100 notifications
        per window)."""
        s = self.state.switches
        stats = self._endpoint(url, now)
        if stats.sent < s.slow_sample_size:
            return "ok"
        share = 100.0 * stats.slow / stats.sent
        return "dropping" if share >= s.slow_drop_percent else "throttled" if share >= s.slow_throttle_percent \
            else "ok"

    def _take_due(self) -> list[tuple[str, list[Outgoing]]]:
        s = self.state.switches
        with self.state.lock:
            now = self.state.clock.now()
            ready: list[Outgoing] = []
            for o in [o for o in self.state.outbox if o.due_at <= now]:
                endpoint = self._endpoint_state(o.url, now)
                if endpoint == "dropping" and not o.lifecycle:
                    self.state.outbox.remove(o)
                    self._dropped(o.subscription_id)
                elif endpoint == "throttled" and not o.delayed:
                    o.delayed = True  # every subscription on this URL waits 10 minutes
                    o.due_at = now + s.throttled_delay_seconds
                    self.state.notification_counts["delayed"] += 1
                else:
                    self.state.outbox.remove(o)
                    ready.append(o)
            groups: dict[tuple[str, bool, str], list[Outgoing]] = {}
            for o in ready:
                key = (o.url, o.lifecycle, "" if s.batch_across_subscriptions else o.subscription_id)
                groups.setdefault(key, []).append(o)
            size = max(1, s.notifications_per_batch)
            return [(key[0], batch[i:i + size]) for key, batch in groups.items() for i in range(0, len(batch), size)]

    async def _post(self, url: str, items: list[dict[str, Any]]) -> tuple[bool, bool]:
        """(answered 2xx, slow): slower than ``slow_response_ms``, or no answer within the timeout."""
        started = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=self.state.switches.delivery_timeout_seconds)
            async with self.session().post(url, json={"value": items}, timeout=timeout) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except TimeoutError:
            return False, True
        except (aiohttp.ClientError, OSError, ValueError):
            ok = False
        return ok, (time.monotonic() - started) * 1000 > self.state.switches.slow_response_ms

    def _account(self, url: str, batch: list[Outgoing], ok: bool, slow: bool) -> None:
        s = self.state.switches
        counts = self.state.notification_counts
        now = self.state.clock.now()
        stats = self._endpoint(url, now)
        for o in batch:
            stats.sent += 1
            if slow:
                stats.slow += 1
                counts["slow"] += 1
            if ok:
                counts["lifecycle_sent" if o.lifecycle else "sent"] += 1
                continue
            counts["failed"] += 1
            retry_at = now + (s.throttled_delay_seconds if self._endpoint_state(url, now) != "ok"
                              else s.retry_interval_seconds)
            if retry_at > o.first_due_at + s.retry_for_seconds:
                if o.lifecycle:
                    counts["lifecycle_dropped"] += 1
                else:
                    self._dropped(o.subscription_id)
            else:
                o.attempts += 1
                o.due_at = retry_at
                self.state.outbox.append(o)

    # --- validation handshake (the webhooks page above) ------------------------------------------

    async def validate(self, url: str) -> bool:
        """POST ``{url}?validationToken=…`` with an empty body; True only for 200, text/plain and the decoded
        token within ``validation_timeout_seconds``."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {new_id()}"
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        timeout = aiohttp.ClientTimeout(total=self.state.switches.validation_timeout_seconds)
        try:
            async with self.session().post(yarl.URL(target, encoded=True), data=b"", timeout=timeout,
                                           headers={"Content-Type": "text/plain; charset=utf-8"}) as response:
                body = await response.text()
                return response.status == 200 and response.content_type == "text/plain" and body == token
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return False

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


def pending(state: SimState) -> Iterable[dict[str, Any]]:
    now = state.clock.now()
    for o in state.outbox:
        yield {"url": o.url, "subscriptionId": o.subscription_id, "lifecycle": o.lifecycle,
               "dueIn": round(o.due_at - now, 3), "attempts": o.attempts, "item": o.item}
