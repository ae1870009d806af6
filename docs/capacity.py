"""Capacity model: writes docs/capacity.md from the workload inputs and published limits below.

Run from the repository root: `.venv/bin/python docs/capacity.py` (rewrites docs/capacity.md), or
`.venv/bin/python docs/capacity.py --check` (exit 1 when the page is not what the inputs give). The test
command runs the check (tests/unit/test_capacity.py).

Intervals come from the product's own defaults (shared/config.py) and host.json, so a changed default
changes the page. Per-operation request counts are stated inputs: where the code exists they are what it
does per operation; the sync engine and outbound writer are not built yet, so their counts are estimates
to replace with what their benchmarks measure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.config import SETTINGS_BY_NAME  # noqa: E402

PAGE = ROOT / "docs" / "capacity.md"
DAY = 86_400
FLEETS = (1_000, 100_000)


def default(name: str) -> float:
    value = SETTINGS_BY_NAME[name].default
    assert value is not None, name
    return float(value)


def timer_period_seconds(name: str) -> float:
    """The period of a six-field NCRONTAB default of the form '0 */N * * * *' (every N minutes)."""
    schedule = SETTINGS_BY_NAME[name].default or ""
    fields = schedule.split()
    if len(fields) != 6 or fields[0] != "0" or not fields[1].startswith("*/") or set(fields[2:]) != {"*"}:
        raise ValueError(f"{name}: expected '0 */N * * * *', got {schedule!r}")
    return int(fields[1][2:]) * 60.0


# infra/main.bicep's defaults (tests/unit/test_capacity.py keeps them equal).
MAX_INSTANCES = 100
INSTANCE_MEMORY_MB = 2048

HOST = json.loads((ROOT / "host.json").read_text())
QUEUE_HOST = HOST["extensions"]["queues"]
POLL_SECONDS = sum(int(part) * 60 ** i for i, part in enumerate(reversed(QUEUE_HOST["maxPollingInterval"].split(":"))))


@dataclass(frozen=True)
class Workload:
    """What one connected mailbox does in a day, and how the day is shaped."""

    outlook_changes: float = 20  # events created, changed or deleted in Outlook
    bookings_written: float = 5  # bookings the SaaS writes into Outlook
    reconnects: float = 1 / 90  # sign-ins again (about one per quarter)
    subscriptions: float = 1  # PER_CALENDAR_SUBSCRIPTIONS off: the default calendar only
    peak_factor: float = 4  # busiest hour of changes and bookings against the day's average hour
    instances_per_account: float = 1.5  # instances that refresh one account's access token per hour
    access_token_minutes: float = 60  # lifetime of an Entra ID access token, at the short end
    # After a deploy (access tokens live in process memory) or an outage longer than
    # RECONCILE_INTERVAL_MINUTES, one reconcile timer firing queues every account's round, and each round
    # reads its account's token state from Key Vault: a fan-out over about one timer period.
    fan_out_seconds: float = field(default_factory=lambda: timer_period_seconds("RECONCILE_SCHEDULE"))
    execution_seconds: float = 1.5  # one queue-triggered invocation, mostly waiting on Graph


@dataclass(frozen=True)
class Costs:
    """Requests per operation. `est` marks counts of code not built yet."""

    graph: float
    table: float
    messages: float
    vault_reads: float = 0
    vault_writes: float = 0
    est: bool = False


COSTS = {
    # Sync after a change: one delta page, sometimes a second (est.); lease claim and release, status row
    # read and write, journal, change feed.
    "outlook change": Costs(graph=2, table=6, messages=1, est=True),
    # Outbound write: create or update, sometimes a read back (est.); outbox row written and removed, booking
    # and status rows, journal.
    "booking written": Costs(graph=1.5, table=6, messages=1, est=True),
    # Reconcile round on an idle mailbox: one empty delta page; lease claim and release, round marker,
    # account read.
    "reconcile round": Costs(graph=1, table=4, messages=1, est=True),
    # Renewal (shared/subscriptions/worker.py): PATCH; slot read, subscription row, new bucket row, old one.
    "subscription renewal": Costs(graph=1, table=4, messages=1),
    # Access-token refresh (shared/auth/credential.py): the refresh state read from Key Vault.
    "token refresh": Costs(graph=0, table=0, messages=0, vault_reads=1),
    # Rotated refresh token written back, at most once per TOKEN_WRITE_AGE_HOURS.
    "token write": Costs(graph=0, table=0, messages=0, vault_writes=1),
    # Reconnect (docs/tokens.md): /me, /me/calendar, subscription create, full sync of about 10 pages (est.);
    # secret set, then get and set at confirm (writes: secret creations); the old secret's delete counts
    # with the reads against the vault's limit for all other transactions.
    "reconnect": Costs(graph=13, table=15, messages=2, vault_reads=2, vault_writes=2, est=True),
}


def per_day(w: Workload) -> dict[str, tuple[float, bool]]:
    """How often each operation happens per mailbox per day, and whether it follows the day's peak."""
    renew_every = default("SUBSCRIPTION_LIFETIME_MINUTES") - default("RENEW_MARGIN_MINUTES")
    return {
        "outlook change": (w.outlook_changes, True),
        "booking written": (w.bookings_written, True),
        "reconcile round": (1440 / default("RECONCILE_INTERVAL_MINUTES"), False),
        "subscription renewal": (w.subscriptions * 1440 / renew_every, False),
        "token refresh": (w.instances_per_account * 1440 / w.access_token_minutes, False),
        "token write": (24 / default("TOKEN_WRITE_AGE_HOURS"), False),
        "reconnect": (w.reconnects, False),
    }


@dataclass(frozen=True)
class Demand:
    """Per mailbox: a day's total, and the rate per second in the busiest hour."""

    day: float
    peak_per_second: float


def demand(w: Workload, measure: str) -> Demand:
    day = peak = 0.0
    for operation, (count, peaky) in per_day(w).items():
        amount = count * getattr(COSTS[operation], measure)
        day += amount
        peak += amount / DAY * (w.peak_factor if peaky else 1)
    return Demand(day, peak)


def queue_operations(w: Workload) -> Demand:
    # Each message is sent, received and deleted: three storage requests.
    messages = demand(w, "messages")
    return Demand(3 * messages.day, 3 * messages.peak_per_second)


def sync_queue_messages(w: Workload) -> Demand:
    day = peak = 0.0
    for operation in ("outlook change", "reconcile round"):
        count, peaky = per_day(w)[operation]
        day += count
        peak += count / DAY * (w.peak_factor if peaky else 1)
    return Demand(day, peak)


@dataclass(frozen=True)
class Source:
    title: str
    url: str


GRAPH_LIMITS = Source("Microsoft Graph service-specific throttling limits",
                      "https://learn.microsoft.com/graph/throttling-limits")
OUTLOOK_NOTIFICATIONS = Source("Change notifications for Outlook resources in Microsoft Graph",
                               "https://learn.microsoft.com/graph/outlook-change-notifications-overview")
TABLE_TARGETS = Source("Scalability and performance targets for Table storage",
                       "https://learn.microsoft.com/azure/storage/tables/scalability-targets")
QUEUE_TARGETS = Source("Scalability and performance targets for Queue Storage",
                       "https://learn.microsoft.com/azure/storage/queues/scalability-targets")
ACCOUNT_TARGETS = Source("Scalability and performance targets for standard storage accounts",
                         "https://learn.microsoft.com/azure/storage/common/scalability-targets-standard-account")
VAULT_LIMITS = Source("Azure Key Vault service limits",
                      "https://learn.microsoft.com/azure/key-vault/general/service-limits")
VAULT_THROTTLING = Source("Azure Key Vault throttling guidance",
                          "https://learn.microsoft.com/azure/key-vault/general/overview-throttling")
FLEX = Source("Azure Functions Flex Consumption plan hosting",
              "https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan")
QUEUE_HOST_JSON = Source("Azure Queue storage trigger and bindings for Azure Functions overview (host.json "
                         "settings)",
                         "https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue")


@dataclass(frozen=True)
class Limit:
    name: str
    limit_per_second: float
    used_per_mailbox: float  # per second in the busiest hour (or burst), per mailbox
    what: str
    past_it: str
    source: Source

    def used(self, mailboxes: int) -> float:
        return self.used_per_mailbox * mailboxes / self.limit_per_second

    @property
    def binds_at(self) -> float:
        return self.limit_per_second / self.used_per_mailbox if self.used_per_mailbox else math.inf


def limits(w: Workload) -> list[Limit]:
    graph = demand(w, "graph").peak_per_second
    table = demand(w, "table").peak_per_second
    queues = queue_operations(w).peak_per_second
    vault_reads = max(demand(w, "vault_reads").peak_per_second, 1 / w.fan_out_seconds)
    vault_writes = demand(w, "vault_writes").peak_per_second
    per_instance = QUEUE_HOST["batchSize"] + QUEUE_HOST["newBatchThreshold"]
    instance_share = (demand(w, "messages").peak_per_second * w.execution_seconds / per_instance)
    return [
        Limit("Graph, per app across all tenants", 130_000 / 10, graph,
              "130,000 requests per 10 seconds", "split tenants across a second app registration (each app "
              "has its own limit); fewer requests per change", GRAPH_LIMITS),
        Limit("Key Vault reads, one vault", 4_000 / 10, vault_reads,
              "4,000 transactions per 10 seconds per vault (all but secret creation); the busier of the steady "
              "token refreshes and the reconcile fan-out after a deploy or an outage",
              "the envelope-encryption token backend (docs/tokens.md: one vault read per instance, not per "
              "account), or several vaults sharded by account id (a subscription allows five vaults' worth)",
              VAULT_LIMITS),
        Limit("Key Vault secret writes, one vault", 300 / 10, vault_writes,
              "300 secret creations per 10 seconds per vault",
              "the envelope-encryption backend (token writes become table writes)", VAULT_LIMITS),
        Limit("Storage account requests (tables and queues)", 20_000, table + queues,
              "20,000 requests per second per standard account",
              "several storage accounts for the product's tables and queues, sharded by account id; the "
              "host keeps its own", ACCOUNT_TARGETS),
        Limit("One queue (sync)", 2_000, 3 * sync_queue_messages(w).peak_per_second,
              "2,000 messages per second per queue (counted here as send, receive and delete)",
              "several sync queues sharded by account id, one queue-triggered function each", QUEUE_TARGETS),
        Limit(f"Function app instances (maximumInstanceCount {MAX_INSTANCES})", MAX_INSTANCES, instance_share,
              "the template's maximumInstanceCount (Flex Consumption allows up to 1,000; a region's "
              f"subscription memory quota, 512,000 MB by default, is {512_000 // INSTANCE_MEMORY_MB} instances of "
              f"{INSTANCE_MEMORY_MB:,} MB)",
              "raise maximumInstanceCount and, past 250 instances, ask for a larger regional quota", FLEX),
    ]


def fmt(number: float) -> str:
    if number >= 100:
        return f"{number:,.0f}"
    if number >= 1:
        return f"{number:,.1f}"
    return f"{number:.2g}"


def about(number: float) -> str:
    """Two significant figures: a limit's binding point is an estimate, not a count."""
    if number < 100:
        return fmt(number)
    return f"{float(f'{number:.2g}'):,.0f}"


def percent(share: float) -> str:
    return f"{share * 100:.2g} %" if share < 0.1 else f"{share * 100:.0f} %"


def render(w: Workload | None = None) -> str:
    w = w or Workload()
    ops = per_day(w)
    lines = [
        "# Capacity: where one deployment stops scaling",
        "",
        "Generated by `docs/capacity.py` from the inputs below; change an input there and run",
        "`.venv/bin/python docs/capacity.py` (the test command checks that this page is up to date).",
        "Counts marked *est.* are for code not built yet (the sync engine, outbound writes): replace them",
        "with what their benchmarks measure.",
        "",
        "## Inputs, per mailbox",
        "",
        "| input | value |",
        "|---|---|",
        f"| changes made in Outlook per day | {fmt(w.outlook_changes)} |",
        f"| bookings written per day | {fmt(w.bookings_written)} |",
        f"| reconnects per day | {fmt(w.reconnects)} |",
        f"| subscriptions | {fmt(w.subscriptions)} |",
        f"| busiest hour of changes and bookings, against the average hour | {fmt(w.peak_factor)} x |",
        f"| instances refreshing one account's access token per hour | {fmt(w.instances_per_account)} |",
        f"| access token lifetime | {fmt(w.access_token_minutes)} min |",
        f"| after a deploy or an outage, every account's round reads its token within (one "
        f"`RECONCILE_SCHEDULE` period) | {fmt(w.fan_out_seconds)} s |",
        f"| one queue-triggered invocation | {fmt(w.execution_seconds)} s |",
        f"| `RECONCILE_INTERVAL_MINUTES` (shared/config.py) | {fmt(default('RECONCILE_INTERVAL_MINUTES'))} |",
        f"| `SUBSCRIPTION_LIFETIME_MINUTES` - `RENEW_MARGIN_MINUTES` | "
        f"{fmt(default('SUBSCRIPTION_LIFETIME_MINUTES') - default('RENEW_MARGIN_MINUTES'))} min |",
        f"| `TOKEN_WRITE_AGE_HOURS` | {fmt(default('TOKEN_WRITE_AGE_HOURS'))} |",
        f"| host.json queue `batchSize` + `newBatchThreshold` | "
        f"{QUEUE_HOST['batchSize']} + {QUEUE_HOST['newBatchThreshold']} |",
        "",
        "## Requests per operation",
        "",
        "| operation | per mailbox per day | Graph | table | queue messages | Key Vault reads and deletes | "
        "Key Vault secret writes |",
        "|---|---|---|---|---|---|---|",
    ]
    for operation, costs in COSTS.items():
        count, _ = ops[operation]
        mark = " *est.*" if costs.est else ""
        lines.append(f"| {operation}{mark} | {fmt(count)} | {fmt(costs.graph)} | {fmt(costs.table)} | "
                     f"{fmt(costs.messages)} | {fmt(costs.vault_reads)} | {fmt(costs.vault_writes)} |")
    lines += [
        "",
        "## Per day",
        "",
        "| | per mailbox | " + " | ".join(f"{n:,} mailboxes" for n in FLEETS) + " |",
        "|---|---|" + "---|" * len(FLEETS),
    ]
    rows = [
        ("Graph requests", demand(w, "graph").day),
        ("subscription renewals", ops["subscription renewal"][0]),
        ("queue messages", demand(w, "messages").day),
        ("queue requests (send, receive, delete)", queue_operations(w).day),
        ("table operations", demand(w, "table").day),
        ("Key Vault transactions", demand(w, "vault_reads").day + demand(w, "vault_writes").day),
    ]
    for label, value in rows:
        lines.append(f"| {label} | {fmt(value)} | " + " | ".join(fmt(value * n) for n in FLEETS) + " |")
    lines += [
        "",
        "Host queue polling comes on top: each instance polls each of the three queues at least every",
        f"{fmt(POLL_SECONDS)} s when idle (host.json `maxPollingInterval`), about "
        f"{fmt(3 * DAY / POLL_SECONDS)} requests per instance per day.",
        "",
        "## Limits, in the order they bind",
        "",
        "Use is the busiest hour's rate per second against the limit. The Graph limits per app and mailbox",
        "(10,000 requests per 10 minutes, 4 concurrent requests) and the 1,000 subscriptions per mailbox do",
        "not grow with the fleet; they are below the table.",
        "",
        "| limit | " + " | ".join(f"use at {n:,}" for n in FLEETS) + " | binds at (mailboxes) | past it |",
        "|---|" + "---|" * len(FLEETS) + "---|---|",
    ]
    ordered = sorted(limits(w), key=lambda limit: limit.binds_at)
    for limit in ordered:
        lines.append(f"| {limit.name}: {limit.what} | " + " | ".join(percent(limit.used(n)) for n in FLEETS)
                     + f" | {about(limit.binds_at)} | {limit.past_it} |")
    first = ordered[0]
    per_change = COSTS["outlook change"].graph
    lines += [
        "",
        f"**First to bind: {first.name}**, at about {about(first.binds_at)} mailboxes; at 1,000 mailboxes",
        "every limit is far off. The next to bind: "
        f"{ordered[1].name}, at about {about(ordered[1].binds_at)}.",
        "",
        "Per mailbox, independent of the fleet:",
        f"- Graph allows 10,000 requests per 10 minutes per app and mailbox: at {fmt(per_change)} requests per",
        f"  change that is {fmt(10_000 / per_change)} changes in 10 minutes in one mailbox, far above any person's",
        "  calendar; a full resync of a large mailbox is the closest, and Graph's Retry-After then pauses that",
        "  mailbox only (docs/architecture.md, \"Retries\").",
        "- 4 concurrent requests per app and mailbox: one sync lease per mailbox keeps its syncs one at a time.",
        f"- 1,000 subscriptions per mailbox across all apps: this app holds {fmt(w.subscriptions)} (more with",
        "  `PER_CALENDAR_SUBSCRIPTIONS`).",
        "- One table partition takes up to 2,000 entities per second; the product's partitions are per account,",
        "  except the renewer's hourly expiry buckets, which receive one row per subscription created or renewed",
        "  in that hour: at 100,000 mailboxes about "
        f"{fmt(ops['subscription renewal'][0] * 100_000 / 24 / 3600)} rows per second.",
        "",
        "## Sources",
        "",
    ]
    for source in (GRAPH_LIMITS, OUTLOOK_NOTIFICATIONS, TABLE_TARGETS, QUEUE_TARGETS, ACCOUNT_TARGETS,
                   VAULT_LIMITS, VAULT_THROTTLING, FLEX, QUEUE_HOST_JSON):
        lines.append(f"- {source.title}: {source.url}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/capacity.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PAGE.read_text() if PAGE.exists() else ""
        if current != text:
            print("docs/capacity.md is out of date: run .venv/bin/python docs/capacity.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
