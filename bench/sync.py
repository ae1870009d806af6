"""Sync engine benchmarks, each against the naive way measured in the same run, through the simulator and
Azurite (in memory), the product's real clients (msgraph-sdk, msal, Key Vault client) throughout.

1. Graph requests to absorb a burst of 1,000 changes in one mailbox (800 updates, 200 creates of single
   events) with notifications delivered by the simulator to the product's webhook on the local runner:
   ours (the simulator's per-mailbox counters), the naive receiver that GETs each notified event (one
   request per notification the simulator delivered), and the floor of the delta approach (changes / page
   size, plus the page with the delta link).
2. A first sync of a 10,000-event mailbox into Azurite, fetch included, in a worker process of its own:
   events per second, ours against the naive way (msgraph-sdk's delta models, one upsert per event), each
   into a fresh partition. The simulator's share of our time (the Graph calls' durations the gateway
   journaled) and Azurite's (every storage call timed) are printed beside it.
3. Peak memory (max RSS) of that worker process at 10,000 and 100,000 events: ours against the naive
   collect-then-write way (every event of the round held as decoded JSON), each in a process of its own.
1b. The same with 750 updates, 200 deletes and 50 moves to another calendar (the deletes and moves told apart
   by JSON batches of GETs), against the same floor plus one batch per 20 removals asked about.
4. A change made at the simulator until it is in the store (ours: notification, coalescing delay, delta
   round), and until the events API returns it (the SaaS's view), and until the naive receiver has it
   (notification, GET, upsert), p50 and p99 over 100 changes made four a second, both listening to the same
   mailbox at once.

Run: `.venv/bin/python -m bench.sync` (or `bash bench/run.sh`). Options: `--events N` (10,000),
`--large N` (20,000), `--changes N` (100). Azurite's cost per transaction row grows with the partition's size
(a 99-row transaction: 70 ms into an empty partition, 585 ms beside 9,000 rows, measured here), which real
Table Storage does not do; first syncs over 20,000 events take hours on it, so 100,000 is an option, not
the default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.metrics import emit
from bench.tables import MeteredTables

ROOT = Path(__file__).resolve().parents[1]
ADELE = "a1b2c3d4-0000-4000-8000-0000000000a1"
MEGAN = "a1b2c3d4-0000-4000-8000-0000000000b2"
PAGE = 50


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- child processes: one first sync each, so that max RSS is that sync's alone ----------------------


async def child(mode: str, account: str, user: str, limit: int) -> dict[str, Any]:
    from shared.messages import Sync
    from shared.store.ports import MAILBOX
    from shared.wiring import close_services, get_auth, get_event_writer, get_services

    services = get_services()
    timed = MeteredTables(services.tables)
    services.tables = timed  # type: ignore[assignment]  # the same store, timed
    events = 0
    graph_ms = 0
    if mode == "ours":
        writer = get_event_writer()  # imports and clients first: a worker process is warm when work comes
        since = services.clock()
        before = await services.tables.get(MAILBOX, account, "lease")
        rounds = int(before.get("rounds", 0)) if before is not None else 0
        started = time.perf_counter()
        failures = 0
        while True:
            try:
                await writer.handle(Sync(account=account, reason="continue"))
            except Exception as exc:  # what the queue does: the message again, up to host.json's 5 deliveries
                failures += 1
                print(f"slice failed ({type(exc).__name__}); running it again", file=sys.stderr)
                if failures >= 5:
                    raise
                continue
            lease = await services.tables.get(MAILBOX, account, "lease")
            if lease is not None and int(lease.get("rounds", 0)) > rounds:
                break
        storage_s = timed.seconds
        events = sum([1 async for _ in services.tables.query(MAILBOX, account, prefix="ev:")])
        journal = await services.journal.recent(account, limit=100_000)
        graph_ms = sum(e.duration_ms or 0 for e in journal if e.operation == "graph" and (e.at or 0) >= since)
    else:
        get_auth()
        import msgraph.generated.users.item.calendar_view.delta.delta_request_builder  # noqa: F401 - warm
        started = time.perf_counter()
        events = await naive_first_sync(services, get_auth(), account, user, limit, keep=(mode == "naive-rss"))
        storage_s = timed.seconds
    seconds = time.perf_counter() - started
    await close_services()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"events": events, "seconds": seconds, "rss_mb": rss_mb, "graph_ms": graph_ms, "storage_s": storage_s}


async def naive_first_sync(services: Any, auth: Any, account: str, user: str, limit: int, keep: bool) -> int:
    """``keep``: collect every event of the round as decoded JSON, then stop (the memory of collect-then-write).
    Otherwise: msgraph-sdk's models, one upsert per event, for the first ``limit`` events."""
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

    from shared.graph.client import graph_client, pooled_http_client
    from shared.store.ports import MAILBOX, Row
    from shared.sync.rounds import sync_window

    window = sync_window(services)
    if keep:
        token = (await auth.broker.access_token(account)).token
        http = pooled_http_client(services.settings)
        url: str | None = (f"{services.settings.graph_base_url}/users/{user}/calendarView/delta()"
                           f"?startDateTime={window.start}&endDateTime={window.end}")
        held: list[dict[str, Any]] = []
        while url:
            response = await http.get(url, headers={"Authorization": f"Bearer {token}",
                                                    "Prefer": f"odata.maxpagesize={PAGE}"})
            page = json.loads(response.content)
            held.extend(page["value"])
            url = page.get("@odata.nextLink")
        return len(held)
    client = graph_client(services.settings, auth.broker.credential(account))
    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(start_date_time=window.start,
                                                                      end_date_time=window.end)
    config = RequestConfiguration[DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters](query_parameters=query)
    config.headers.add("Prefer", f"odata.maxpagesize={PAGE}")
    builder = client.users.by_user_id(user).calendar_view.delta
    page = await builder.get(request_configuration=config)
    written = 0
    while page is not None and written < limit:
        for event in page.value or []:
            start = event.start.date_time if event.start else None
            # A fresh partition of its own, as ours starts with: Azurite's cost per write grows with it.
            await services.tables.upsert(MAILBOX, Row(f"naive-{account}", f"naive:{event.id}",
                                                      {"subject": event.subject, "start": start}))
            written += 1
        link = page.odata_next_link
        page = await builder.with_url(link).get() if link else None
    return written


def run_child(mode: str, account: str, user: str, limit: int = 0) -> dict[str, Any]:
    env = {**os.environ, "SLICE_MAX_PAGES": "100000", "SLICE_MAX_SECONDS": "100000"}
    done = subprocess.run([sys.executable, "-m", "bench.sync", "--child", mode, account, user, str(limit)],
                          cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, timeout=3600, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the stack -------------------------------------------------------------------------------------


class Bench:
    """Azurite, the simulator and the Key Vault dev server in this process, the product's settings in the
    environment (children inherit them), and the product's connect flow to connect mailboxes."""

    def __init__(self) -> None:
        import requests

        from devstack.azurite import Azurite, free_port
        from devstack.certs import ensure_certs
        from devstack.keyvault import KeyVaultServer, Vault
        from devstack.m365.control import demo_spec, seed
        from devstack.m365.server import Simulator
        from tests.integration.conftest import SAMPLE

        self.certs = ensure_certs()
        self.azurite = Azurite(in_memory=True).start()
        self.sim = Simulator(port=0, certs=self.certs).start()
        self.kv = KeyVaultServer(Vault(tenant_id="5e3f1d2c-0000-4000-8000-00000000de30"), port=0,
                                 certs=self.certs).start()
        self.port = free_port()
        base = f"http://127.0.0.1:{self.port}"
        os.environ.update({**SAMPLE, "AzureWebJobsStorage": self.azurite.connection_string, "PUBLIC_BASE_URL": base,
                           "AUTHORITY_HOST": self.sim.url,
                           "GRAPH_BASE_URL": self.sim.graph_url, "KEY_VAULT_URL": self.kv.url,
                           "LOCAL_CA_BUNDLE": str(self.certs.ca_pem)})
        spec = demo_spec(SAMPLE["CLIENT_ID"], SAMPLE["CLIENT_SECRET"])
        spec["apps"][0]["redirectUris"] = [f"{base}/api/oauth/callback"]
        seed(self.sim.state, spec)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(self.certs.ca_pem)
        self.control("PATCH", "switches", {"allow_http_loopback_urls": True})

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(method, f"{self.sim.url}/_sim/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json() if response.content else {}

    def create(self, user: str, subject: str, n: int) -> str:
        from datetime import UTC, datetime, timedelta

        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1 + n % 200,
                                                                                          hours=n % 10)
        wall = "%Y-%m-%dT%H:%M:%S"
        made = self.control("POST", f"users/{user}/events", {
            "subject": subject, "start": {"dateTime": start.strftime(wall), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(minutes=30)).strftime(wall), "timeZone": "UTC"}})
        return str(made["immutableId"])

    async def connect(self, upn: str, ref: str) -> str:
        from tests.integration.test_connect_real_clients import Stack

        account, confirmed = await Stack(self.sim, self.session).connect(user=upn, ref=ref)
        assert confirmed.status == 200, confirmed.text
        return str(account)

    def stop(self) -> None:
        self.sim.stop()
        self.kv.stop()
        self.azurite.stop()


async def first_sync(bench: Bench, events: int, large: int) -> None:
    from shared.store.ports import MAILBOX, TableOp
    from shared.wiring import close_services, get_services
    from tests.integration.conftest import clear_product_queues

    bench.control("POST", f"users/{MEGAN}/events/generate", {"count": events, "seed": 7})
    account = await bench.connect("megan@contoso.test", "bench-megan")
    await clear_product_queues(bench.azurite.connection_string)
    naive = run_child("naive-rate", account, MEGAN, limit=events)
    ours = run_child("ours", account, MEGAN)
    naive_rss = run_child("naive-rss", account, MEGAN)
    ours_rate, naive_rate = ours["events"] / ours["seconds"], naive["events"] / naive["seconds"]
    share = ours["graph_ms"] / 1000 / ours["seconds"]
    storage, naive_storage = ours["storage_s"] / ours["seconds"], naive["storage_s"] / naive["seconds"]
    print(f"\n2. First sync of {ours['events']:,} events (pages of {PAGE}), fetch and store included")
    print(f"   ours:  {ours_rate:8,.0f} events/s ({ours['seconds']:.1f} s; the simulator's share of it, "
          f"Graph calls as the gateway timed them: {share:.0%}; Azurite's, storage calls timed: {storage:.0%})")
    print(f"   naive: {naive_rate:8,.0f} events/s ({naive['seconds']:.1f} s; msgraph-sdk models, one upsert per "
          f"event; Azurite's share {naive_storage:.0%})")
    # What each side spends outside storage (Azurite's cost per row grows with the partition; Table Storage's
    # does not): a derived figure, printed beside the measured one, never instead of it.
    ours_own = ours["events"] / max(ours["seconds"] - ours["storage_s"], 1e-9)
    naive_own = naive["events"] / max(naive["seconds"] - naive["storage_s"], 1e-9)
    print(f"   outside storage: ours {ours_own:,.0f} events/s, naive {naive_own:,.0f} events/s "
          f"({ours_own / naive_own:.1f}x)")
    emit("initial_sync_events_per_s", ours_rate, naive_rate, "events/s", cost=False,
         simulator_share=round(share, 2), storage_share=round(storage, 2),
         baseline_storage_share=round(naive_storage, 2), ours_outside_storage=round(ours_own),
         baseline_outside_storage=round(naive_own))
    print(f"\n3. Peak memory (max RSS) of the worker process during a first sync of {ours['events']:,} events: "
          f"ours {ours['rss_mb']:.0f} MB, naive collect-then-write {naive_rss['rss_mb']:.0f} MB")
    emit(f"initial_sync_peak_rss_mb_{_size(events)}", ours["rss_mb"], naive_rss["rss_mb"], "MB", cost=True)

    bench.control("POST", f"users/{MEGAN}/events/generate", {"count": large - events, "seed": 8})
    services = get_services()
    # A new first round over the grown mailbox: its cursor goes; the lease row (and its feed sequence) stays.
    await services.tables.bulk_write(MAILBOX, [TableOp.delete(account, "cursor:AAMkMeganDefault")])
    await close_services()
    ours_large = run_child("ours", account, MEGAN)
    naive_large = run_child("naive-rss", account, MEGAN)
    print(f"   and of {ours_large['events']:,} events: ours {ours_large['rss_mb']:.0f} MB, naive "
          f"{naive_large['rss_mb']:.0f} MB; ours at {large:,} / ours at {events:,}: "
          f"{ours_large['rss_mb'] / ours['rss_mb']:.2f}x")
    emit(f"initial_sync_peak_rss_mb_{_size(large)}", ours_large["rss_mb"], naive_large["rss_mb"], "MB", cost=True,
         **{f"growth_vs_{_size(events)}": round(ours_large["rss_mb"] / ours["rss_mb"], 2)})


def _size(events: int) -> str:
    return f"{events // 1000}k" if events % 1000 == 0 else str(events)


async def burst_and_latency(bench: Bench, changes: int) -> None:
    from devstack.runner.config import RunnerConfig
    from devstack.runner.host import Runner
    from shared.store.ports import MAILBOX
    from shared.wiring import get_services

    ids = [bench.create(ADELE, f"Existing {n}", n) for n in range(800)]
    runner = await Runner("function_app:app", config=RunnerConfig(port=bench.port, host_id="bench-sync"),
                          storage=bench.azurite.connection_string).start()
    try:
        account = await bench.connect("adele@contoso.test", "bench-adele")
        tables = get_services().tables

        async def feed_count() -> int:
            return sum([1 async for _ in tables.query(MAILBOX, account, prefix="feed:")])

        await until_quiet(bench, tables, account, lambda n: n >= 800, feed_count)
        bench.control("POST", "counters/reset")

        def changes_at_the_simulator() -> list[str]:
            for event_id in ids:
                bench.control("PATCH", f"users/{ADELE}/events/{event_id}", {"subject": "Updated"})
            return [bench.create(ADELE, f"New {n}", n) for n in range(200)]

        # In a thread: the runner shares this event loop and must answer the simulator's notifications meanwhile
        # (a webhook slower than Graph's threshold gets its notifications delayed).
        created = await asyncio.to_thread(changes_at_the_simulator)
        started = time.perf_counter()
        await until_quiet(bench, tables, account, lambda n: n >= 1800, feed_count)
        absorbed = time.perf_counter() - started
        counters = bench.control("GET", "counters")
        endpoints = counters["endpoints"].get(ADELE, {})
        ours = sum(sum(by_status.values()) for route, by_status in endpoints.items() if "calendarView/delta" in route)
        notified = counters["notifications"]["sent"]
        print(f"   the simulator's notification counters: {dict(counters['notifications'])}")
        floor = math.ceil(1000 / PAGE) + 1
        print(f"\n1. Graph requests to absorb 1,000 changes (800 updates, 200 creates) in one mailbox, "
              f"notifications through the webhook and the runner ({absorbed:.1f} s until quiet)")
        print(f"   ours {ours} delta requests; naive {notified} GETs (one per notification delivered); "
              f"floor {floor}; ours / floor {ours / floor:.2f}, naive / ours {notified / max(ours, 1):.0f}x")
        emit("graph_requests_per_1000_changes", ours, notified, "requests", cost=True, floor=floor)
        await latency(bench, tables, account, ids + created, changes)
        await mixed_burst(bench, tables, account, ids + created, feed_count)
    finally:
        await runner.stop()


async def mixed_burst(bench: Bench, tables: Any, account: str, ids: list[str], feed_count: Any) -> None:
    """1,000 changes again, now 750 updates, 200 deletes and 50 moves to another calendar: the deletes and moves
    are told apart by JSON batches of GETs, counted as one request per batch besides the delta pages (the GETs
    inside a batch count against Graph's throttling one by one, and are printed)."""
    other = next(c.id for c in bench.sim.state.calendars_of(ADELE) if not c.is_default)
    before = await feed_count()
    bench.control("POST", "counters/reset")

    def changes_at_the_simulator() -> None:
        for event_id in ids[:750]:
            bench.control("PATCH", f"users/{ADELE}/events/{event_id}", {"subject": "Mixed"})
        for event_id in ids[750:950]:
            bench.control("DELETE", f"users/{ADELE}/events/{event_id}")
        for event_id in ids[950:1000]:
            bench.control("POST", f"users/{ADELE}/events/{event_id}/move", {"calendar": other})

    await asyncio.to_thread(changes_at_the_simulator)
    started = time.perf_counter()
    await until_quiet(bench, tables, account, lambda n: n >= before + 1000, feed_count)
    absorbed = time.perf_counter() - started
    counters = bench.control("GET", "counters")
    endpoints = counters["endpoints"].get(ADELE, {})
    delta = sum(sum(by_status.values()) for route, by_status in endpoints.items() if "calendarView/delta" in route)
    batches = sum(n for route, n in counters["routes"].items() if route.endswith("/$batch"))
    batched = sum(sum(by_status.values()) for route, by_status in endpoints.items()
                  if route.startswith("GET") and "/events/" in route and "/instances" not in route)
    instances = sum(sum(by_status.values()) for route, by_status in endpoints.items() if "/instances" in route)
    ours = delta + batches + instances
    notified = counters["notifications"]["sent"]
    # One delta page per PAGE changes and the delta link's; one batch per 20 removals asked about anywhere, and
    # per 20 moves asked about in this calendar.
    floor = math.ceil(1000 / PAGE) + 1 + math.ceil(250 / 20) + math.ceil(50 / 20)
    print(f"\n1b. Graph requests to absorb 1,000 mixed changes (750 updates, 200 deletes, 50 moves) "
          f"({absorbed:.1f} s until quiet)")
    print(f"   ours {ours} ({delta} delta pages, {batches} JSON batches holding {batched} GETs, {instances} "
          f"instances lists); naive {notified} GETs (one per notification delivered); floor {floor}")
    emit("graph_requests_per_1000_changes_mixed", ours, notified, "requests", cost=True, floor=floor)


async def until_quiet(bench: Bench, tables: Any, account: str, enough: Any, count: Any) -> None:
    """Until ``enough(count())`` and no sync message is queued (visible or not) for a few seconds."""
    from azure.storage.queue.aio import QueueClient

    from shared.store.factory import QUEUE_API_VERSION

    quiet_since: float | None = None
    async with QueueClient.from_connection_string(bench.azurite.connection_string, "sync",
                                                  api_version=QUEUE_API_VERSION) as queue:
        while True:
            properties = await queue.get_queue_properties()
            if enough(await count()) and properties.approximate_message_count == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.2)


async def latency(bench: Bench, tables: Any, account: str, ids: list[str], changes: int) -> None:
    """Ours and a naive receiver (its own subscription and webhook: GET the notified event, upsert it) on the
    same changes, four a second."""
    from shared.graph.client import graph_client
    from shared.store.ports import MAILBOX, Row
    from shared.sync.events_api import list_events
    from shared.sync.mailbox import event_key
    from shared.wiring import get_auth, get_services
    from tests.devstack.webhook import Webhook

    calendar = "AAMkAdeleDefault"
    hook = Webhook().start()
    try:
        from datetime import UTC, datetime, timedelta

        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.subscription import Subscription

        client = graph_client(get_services().settings, get_auth().broker.credential(account))
        immutable: RequestConfiguration[Any] = RequestConfiguration()
        immutable.headers.add("Prefer", 'IdType="ImmutableId"')  # the ids the changes are made and known by
        await client.subscriptions.post(Subscription(
            change_type="updated", notification_url=hook.url("naive"), resource=f"users/{ADELE}/events",
            expiration_date_time=datetime.now(UTC) + timedelta(hours=2), client_state="naive"),
            request_configuration=immutable)
        made: dict[str, tuple[float, str]] = {}
        ours: dict[str, float] = {}
        naive: dict[str, float] = {}
        seen = 0

        async def naive_receiver() -> None:
            nonlocal seen
            while len(naive) < changes:
                for post in hook.posts[seen:]:
                    seen += 1
                    if post.path != "/naive":
                        continue
                    for item in post.items:
                        event_id = item["resourceData"]["id"]
                        event = await client.users.by_user_id(ADELE).events.by_event_id(event_id).get(
                            request_configuration=immutable)
                        await tables.upsert(MAILBOX, Row(account, f"naive:{event_id}",
                                                         {"subject": event.subject if event else None}))
                        if event_id in made and event and event.subject == made[event_id][1]:
                            naive.setdefault(event_id, time.perf_counter() - made[event_id][0])
                await asyncio.sleep(0.01)

        async def ours_watcher() -> None:
            while len(ours) < changes:
                for event_id, (at, subject) in list(made.items()):
                    if event_id in ours:
                        continue
                    row = await tables.get(MAILBOX, account, event_key(calendar, event_id))
                    if row is not None and row.get("subject") == subject:
                        ours[event_id] = time.perf_counter() - at
                await asyncio.sleep(0.02)

        readable: dict[str, float] = {}
        ranges: dict[str, dict[str, str]] = {}
        for event_id in ids[:changes]:  # each event's day, for the events API
            row = await tables.get(MAILBOX, account, event_key(calendar, event_id))
            day = str(row.get("start") if row else "")[:10]
            ranges[event_id] = {"start": f"{day}T00:00:00Z", "end": f"{day}T23:59:59Z", "limit": "500"}

        async def readable_watcher() -> None:
            # What the SaaS sees: the events API (time-bucket rows, then the event's row) returning the change.
            while len(readable) < changes:
                for event_id, (at, subject) in list(made.items()):
                    if event_id in readable:
                        continue
                    answer = await list_events(get_services(), account, ranges[event_id])
                    if any(e["id"] == event_id and e["subject"] == subject for e in json.loads(answer.body)["events"]):
                        readable[event_id] = time.perf_counter() - at
                await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(naive_receiver()), asyncio.create_task(ours_watcher()),
                 asyncio.create_task(readable_watcher())]
        for n, event_id in enumerate(ids[:changes]):
            subject = f"Latency probe {n}"
            made[event_id] = (time.perf_counter(), subject)
            await asyncio.to_thread(bench.control, "PATCH", f"users/{ADELE}/events/{event_id}", {"subject": subject})
            await asyncio.sleep(0.25)
        _, pending = await asyncio.wait(tasks, timeout=300)
        for task in pending:
            task.cancel()
    finally:
        hook.stop()
    ours_ms = [v * 1000 for v in ours.values()]
    naive_ms = [v * 1000 for v in naive.values()]
    print(f"\n4. A change at the simulator until it is stored, {changes} changes, four a second "
          f"(arrived within 5 minutes: ours {len(ours_ms)}, naive {len(naive_ms)})")
    if not ours_ms or not naive_ms:
        print("   not measured: a side received none of the changes")
        return
    print(f"   ours  p50 {statistics.median(ours_ms):7.0f} ms  p99 {percentile(ours_ms, 99):7.0f} ms "
          f"(includes COALESCE_DELAY_SECONDS={os.environ.get('COALESCE_DELAY_SECONDS')} s, on purpose)")
    print(f"   naive p50 {statistics.median(naive_ms):7.0f} ms  p99 {percentile(naive_ms, 99):7.0f} ms")
    emit("change_to_store_p50_ms", statistics.median(ours_ms), statistics.median(naive_ms), "ms", cost=True)
    emit("change_to_store_p99_ms", percentile(ours_ms, 99), percentile(naive_ms, 99), "ms", cost=True)
    readable_ms = [v * 1000 for v in readable.values()]
    if readable_ms:
        print(f"   ours, until the events API returns it: p50 {statistics.median(readable_ms):7.0f} ms  "
              f"p99 {percentile(readable_ms, 99):7.0f} ms ({len(readable_ms)} arrived)")
        emit("change_to_readable_p50_ms", statistics.median(readable_ms), statistics.median(naive_ms), "ms",
             cost=True)
        emit("change_to_readable_p99_ms", percentile(readable_ms, 99), percentile(naive_ms, 99), "ms", cost=True)


async def run(args: argparse.Namespace) -> None:
    bench = Bench()
    try:
        if "first" in args.parts:
            await first_sync(bench, args.events, args.large)
        if "burst" in args.parts:
            await burst_and_latency(bench, args.changes)
    finally:
        from shared.wiring import close_services

        await close_services()
        bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--parts", default="first,burst", help="comma-separated: first (2, 3), burst (1, 4)")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "ACCOUNT", "USER", "LIMIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    if args.child:
        mode, account, user, limit = args.child
        print(json.dumps(asyncio.run(child(mode, account, user, int(limit)))))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
