"""Read-side benchmarks, against the naive way measured in the same run, through Azurite (in memory), the
simulator and the Key Vault dev server with the product's real clients.

1. Availability over a month's range (`availability_month_p99_ms`): ours answers from the synced store (the
   time-bucket rows of the month's weeks: shared/sync/availability.py), the naive way asks Graph one
   `getSchedule` per query ("calendar: getSchedule",
   https://learn.microsoft.com/en-us/graph/api/calendar-getschedule), with the product's own token and
   HTTP client, for the same ranges. A mailbox of single events and recurring series over the window.

(The change-to-readable latency, `change_to_readable_p50_ms` and `_p99_ms`, is measured with the other
latencies in bench/sync.py, through the runner and the simulator's notifications.)

Run: `.venv/bin/python -m bench.readside` (or `bash bench/run.sh`). Options: `--queries N` (200),
`--events N` (600).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.metrics import emit
from bench.sync import ADELE, Bench, percentile


async def availability_month(bench: Bench, queries: int, events: int) -> None:
    from azure.storage.queue.aio import QueueClient

    from shared.messages import Sync, parse_message
    from shared.store.factory import QUEUE_API_VERSION
    from shared.sync.availability import availability
    from shared.wiring import get_auth, get_event_writer, get_services

    for n in range(events):
        bench.create(ADELE, f"Busy {n}", n)
    start = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0)
    for n in range(5):  # daily series: hundreds of occurrences in the window
        bench.control("POST", f"users/{ADELE}/events", {
            "subject": f"Series {n}", "start": {"dateTime": (start + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%S"),
                                                "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(hours=n, minutes=20)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "noEnd", "startDate": start.strftime("%Y-%m-%d")}}})
    account = await bench.connect("adele@contoso.test", "bench-readside")
    services = get_services()
    writer = get_event_writer()
    await writer.handle(Sync(account=account, reason="connect", full=True))
    while True:  # the first sync's slices
        bodies = await services.queue.peek("sync", 32)
        mine = [b for b in bodies if account in b]
        if not mine:
            break
        for body in mine:
            await writer.handle(parse_message(body))
        async with QueueClient.from_connection_string(services.settings.storage.connection_string, "sync",
                                                      api_version=QUEUE_API_VERSION) as queue:
            await queue.clear_messages()

    rng = random.Random(11)
    ranges = []
    for _ in range(queries):
        first = start + timedelta(days=rng.randint(0, 300))
        ranges.append((first, first + timedelta(days=30)))
    ours: list[float] = []
    busy = 0
    for first, last in ranges:
        began = time.perf_counter()
        answer = await availability(services, account, {"start": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                        "end": last.strftime("%Y-%m-%dT%H:%M:%SZ")})
        ours.append((time.perf_counter() - began) * 1000)
        busy += len(json.loads(answer.body)["busy"])

    token = await get_auth().broker.access_token(account)
    url = f"{services.settings.graph_base_url}/users/{ADELE}/calendar/getSchedule"
    naive: list[float] = []
    for first, last in ranges:
        body = {"schedules": ["adele@contoso.test"], "availabilityViewInterval": 30,
                "startTime": {"dateTime": first.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "endTime": {"dateTime": last.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}}
        began = time.perf_counter()
        response = await asyncio.to_thread(bench.session.post, url, json=body, timeout=60,
                                           headers={"Authorization": f"Bearer {token.token}"})
        response.raise_for_status()
        naive.append((time.perf_counter() - began) * 1000)
    print(f"availability over a month, {queries} queries ({busy / queries:.0f} busy intervals each on average): "
          f"ours p50 {statistics.median(ours):.1f} ms p99 {percentile(ours, 99):.1f} ms; one getSchedule each "
          f"p50 {statistics.median(naive):.1f} ms p99 {percentile(naive, 99):.1f} ms")
    emit("availability_month_p99_ms", percentile(ours, 99), percentile(naive, 99), "ms", cost=True,
         p50=round(statistics.median(ours), 1), baseline_p50=round(statistics.median(naive), 1))


async def run(args: argparse.Namespace) -> None:
    bench = Bench()
    try:
        await availability_month(bench, args.queries, args.events)
    finally:
        from shared.wiring import close_services

        await close_services()
        bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--events", type=int, default=600)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
