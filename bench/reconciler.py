"""Delta reconciler benchmarks, each against the naive way measured in the same run, through Azurite (in
memory), the simulator and the Key Vault dev server with the product's real clients.

1. The timer's table operations per run (all of it: the connection sweep, the keep-alive's daily pass,
   the due fan-out) for 1,000 idle accounts at the default settings (their rounds
   spread over the hour, as a fleet settles: each is due once an hour), averaged over an hour of runs;
   ours reads the due-time index, the naive timer scans the accounts table and reads every lease row. Beside
   it: a run's operations when nobody is due, and the Graph requests the timer made (the simulator's
   count: none, since it never calls Graph itself).
2. Graph requests per idle mailbox per day at the default settings (reconcile rounds, renewals,
   keep-alive refreshes), over simulated days: one connected, subscribed mailbox nobody touches, the
   reconciler timer every 5 minutes and the renewer every 15, every message they queue run by the
   product's handlers, the product's clock and the simulator's moved together; against a poller that runs
   a delta round every 5 minutes (288 a day). Token requests to Entra ID are reported beside it.

Run: `.venv/bin/python -m bench.reconciler` (or `bash bench/run.sh`). Options: `--accounts N` (1,000),
`--days N` (3: a subscription lives 4,230 minutes, so one day would hide its renewal).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from bench.metrics import emit
from bench.sync import MEGAN, Bench
from bench.tables import MeteredTables

STEP = 300  # RECONCILE_SCHEDULE's period at the default settings
RENEW_EVERY = 3  # RENEW_SCHEDULE: every 15 minutes


@dataclass
class Clock:
    """The product's clock for simulated days: the wall's plus an offset moved with the simulator's."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


# --- 1. the timer's cost per 1,000 idle accounts ----------------------------------------------------


async def timer_cost(bench: Bench, accounts: int) -> None:
    from shared.accounts.model import Account, Identity, Status
    from shared.connect import keepalive
    from shared.context import Services
    from shared.ids import new_account_id
    from shared.ops.journal import Journal
    from shared.reconciler import run_reconciler
    from shared.store.memory import InMemoryWorkQueue
    from shared.store.ports import ACCOUNTS, MAILBOX, Row
    from shared.sync.mailbox import LEASE
    from shared.wiring import get_auth, get_services

    base = get_services()
    auth = get_auth()
    clock = Clock()
    tables = MeteredTables(base.tables)
    services = Services(base.settings, tables, InMemoryWorkQueue(clock), Journal(tables, clock), clock)  # type: ignore[arg-type]
    interval = base.settings.reconcile_interval_minutes * 60
    rng = random.Random(7)
    now = clock()
    ids = [new_account_id() for _ in range(accounts)]
    for account in ids:
        await base.tables.upsert(ACCOUNTS, Account(account, Identity("t", account, account, account), Status.ACTIVE,
                                                   1, consented_at=now).to_row())
        await base.tables.upsert(MAILBOX, Row(account, LEASE, {"lease_id": "", "running_until": 0.0, "dirty": False,
                                                             "last_good_sync": now - rng.uniform(0, interval)}))

    async def complete_rounds(due: tuple[str, ...]) -> None:
        # What the event writer records at the end of each round the timer asked for (not the timer's cost).
        for account in due:
            await base.tables.merge(MAILBOX, Row(account, LEASE, {"last_good_sync": clock()}))

    # An hour to settle (the first run arms every account, spread over the interval), then an hour measured.
    async def timer() -> tuple[str, ...]:
        run = await run_reconciler(services, auth.vault, auth.broker)
        assert run.plan is not None
        return run.plan.due

    for _ in range(interval // STEP):
        clock.offset += STEP
        await complete_rounds(await timer())
    requests_before = len(bench.sim.state.requests)
    tables.ops, runs, due_total = 0, interval // STEP, 0
    for _ in range(runs):
        clock.offset += STEP
        due = await timer()
        due_total += len(due)
        await complete_rounds(due)
    ours = tables.ops / runs * 1000 / accounts
    tables.ops = 0
    await timer()  # again within the same five minutes: nobody is due
    none_due = tables.ops
    await base.tables.delete(ACCOUNTS, "_app", keepalive.STATE)
    tables.ops = 0
    await keepalive.keep_tokens_alive(services, auth.broker)  # the daily pass, tokens' days left unchanged
    keepalive_ops = tables.ops
    graph_requests = len(bench.sim.state.requests) - requests_before

    tables.ops = 0
    for _ in range(runs):
        clock.offset += STEP
        await naive_timer(services, interval)
    naive = tables.ops / runs * 1000 / accounts
    print(f"reconciler timer, {accounts} idle accounts, {runs} runs: ours {ours:.0f} table ops a run "
          f"({due_total} due in the hour, {graph_requests} Graph requests; {none_due} when none is due; "
          f"the keep-alive's daily pass {keepalive_ops}), naive scan {naive:.0f}")
    emit("reconciler_table_ops_per_1000_idle_accounts", ours, naive, "table ops per run", cost=True,
         graph_requests_not_due=graph_requests, due_per_hour=due_total, ops_when_none_due=none_due,
         keepalive_pass_ops_daily=keepalive_ops)
    for account in ids:  # gone before the next part (whose timer would find them due: their rows are dropped)
        await base.tables.delete(ACCOUNTS, account, "")


async def naive_timer(services: Any, interval: float) -> list[str]:
    """The timer without an index: every account row, then every lease row."""
    from shared.accounts.repository import AccountRepository
    from shared.store.ports import MAILBOX
    from shared.sync.mailbox import LEASE, LeaseState

    due: list[str] = []
    now = services.clock()
    async for account in AccountRepository(services.tables).every_account():
        if not account.rules.runs_inbound_sync:
            continue
        lease = LeaseState.from_row(await services.tables.get(MAILBOX, account.account, LEASE))
        if lease.last_good_sync is None or lease.last_good_sync + interval <= now:
            due.append(account.account)
    return due


# --- 2. Graph requests per idle mailbox per day ------------------------------------------------------


class Day:
    """The product's parts on a clock of their own (built as shared/wiring.py builds them), with an
    in-memory queue whose messages the loop runs itself."""

    def __init__(self, bench: Bench, hook_url: str) -> None:
        from shared.auth.credential import TokenBroker
        from shared.auth.keyvault import KeyVaultTokenVault
        from shared.auth.msal_provider import MsalIdentityProvider
        from shared.context import Services
        from shared.graph.gateway import GraphGateway
        from shared.graph.governor import MailboxGovernor
        from shared.ops.journal import Journal
        from shared.store.memory import InMemoryWorkQueue
        from shared.subscriptions.msgraph import MsGraphSubscriptions
        from shared.sync.probe import GraphEventProbe
        from shared.sync.source import GraphDeltaSource
        from shared.sync.writer import EventWriter
        from shared.wiring import get_services

        base = get_services()
        self.bench = bench
        self.clock = Clock()
        self.queue = InMemoryWorkQueue(self.clock)
        settings = replace(base.settings, public_base_url=hook_url)
        self.services = Services(settings, base.tables, self.queue, Journal(base.tables, self.clock), self.clock)
        self.vault = KeyVaultTokenVault(settings, self.clock)
        self.broker = TokenBroker(self.services, MsalIdentityProvider(settings, self.clock), self.vault)
        gateway = GraphGateway(self.services, self.broker, MailboxGovernor())
        self.subscriptions = MsGraphSubscriptions(gateway)
        self.writer = EventWriter(self.services, GraphDeltaSource(gateway, settings.delta_page_size),
                                  GraphEventProbe(gateway))

    def advance(self, seconds: float) -> None:
        self.clock.offset += seconds
        self.bench.control("POST", "clock/advance", {"seconds": seconds})

    async def run_queued(self) -> None:
        from shared.messages import parse_message
        from shared.subscriptions.worker import SubscriptionWorker

        worker = SubscriptionWorker(self.services, self.subscriptions)
        for _ in range(20):  # a message may queue another (a slice's continue)
            bodies = [("sync", b) for b in self.queue.take_visible("sync")]
            bodies += [("subscriptions", b) for b in self.queue.take_visible("subscriptions")]
            if not bodies:
                return
            for queue, body in bodies:
                message = parse_message(body)
                await (self.writer.handle(message) if queue == "sync" else worker.handle(message))

    def requests_since(self, index: int) -> tuple[Counter[str], int]:
        """(Graph requests by route, token requests) the simulator logged after ``index``."""
        graph_path = urlsplit(self.bench.sim.graph_url).path
        logged = self.bench.sim.state.requests[index:]
        graph = Counter(r.route for r in logged if r.path.startswith(graph_path))
        tokens = sum(1 for r in logged if r.path.endswith("/oauth2/v2.0/token"))
        return graph, tokens

    async def close(self) -> None:
        await self.vault.close()


async def idle_mailbox_day(bench: Bench, days: int) -> None:
    from shared.messages import Subscribe, Sync
    from shared.reconciler import run_reconciler
    from shared.subscriptions.renewer import run_renewer
    from shared.sync.reconcile import plan_due
    from tests.devstack.webhook import Webhook

    hook = Webhook().start()  # answers the simulator's validation of the notification URL
    bench.control("PATCH", "switches", {"allow_http_loopback_urls": True})
    day = Day(bench, hook.url("").rstrip("/"))
    try:
        await plan_due(day.services)  # the app's first timer run
        account = await bench.connect("megan@contoso.test", "bench-idle")
        await day.services.queue.send(Subscribe(account=account))
        await day.services.queue.send(Sync(account=account, reason="connect", full=True))
        await day.run_queued()
        steps = days * 86400 // STEP

        start = len(bench.sim.state.requests)
        for step in range(steps):
            day.advance(STEP)
            await run_reconciler(day.services, day.vault, day.broker)
            if step % RENEW_EVERY == 0:
                await run_renewer(day.services)
            await day.run_queued()
        graph, tokens = day.requests_since(start)

        start = len(bench.sim.state.requests)
        for _ in range(steps):  # the naive poller: a delta round every 5 minutes
            day.advance(STEP)
            await day.writer.handle(Sync(account=account, reason="manual"))
            await day.run_queued()
        naive_graph, naive_tokens = day.requests_since(start)
    finally:
        await day.close()
        hook.stop()
    ours, naive = graph.total() / days, naive_graph.total() / days
    print(f"idle mailbox ({MEGAN}), {days} simulated days: ours {ours:.1f} Graph requests a day "
          f"({tokens / days:.1f} token requests), the 5-minute poller {naive:.1f} ({naive_tokens / days:.1f})")
    for route, n in graph.most_common():
        print(f"  ours: {n / days:6.2f} a day  {route}")
    emit("graph_requests_per_idle_mailbox_day", ours, naive, "requests", cost=True, goal=30,
         token_requests=round(tokens / days, 1), token_requests_baseline=round(naive_tokens / days, 1))


async def run(args: argparse.Namespace) -> None:
    bench = Bench()
    try:
        await timer_cost(bench, args.accounts)
        await idle_mailbox_day(bench, args.days)
    finally:
        from shared.wiring import close_services

        await close_services()
        bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
