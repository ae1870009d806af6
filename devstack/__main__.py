"""`python -m devstack up`: the whole local stack on localhost until Ctrl-C.

`up` starts each service of ``STACK`` in order, prints where it listens, waits for SIGINT or
SIGTERM and stops them in reverse order. A service is one ``async def start_x(ctx) -> Started``
function: adding a server to the stack is writing that function and listing it in ``STACK``.
`runner` serves the function app alone, against the storage its settings name.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from devstack.azurite import DEFAULT_PORTS, Azurite
from devstack.demo_saas import DEFAULT_PORT as DEMO_PORT
from devstack.demo_saas import DemoSaas
from devstack.runner.config import RunnerConfig
from devstack.runner.host import Runner
from devstack.runner.settings import set_app_setting
from devstack.simulators import add_commands, start_simulators


@dataclass
class Started:
    """A running service: what to tell the user, and how to stop it."""

    name: str
    lines: list[str]
    stop: Callable[[], Awaitable[None]]


@dataclass
class StackContext:
    """What services share: the command line, and what earlier services made available."""

    args: argparse.Namespace
    storage: str | None = None   # Azurite's connection string, once it runs
    extra: dict[str, str] = field(default_factory=dict)


Starter = Callable[[StackContext], Awaitable[Started]]


async def start_azurite(ctx: StackContext) -> Started:
    ports = None if ctx.args.azurite_ports == "auto" else _ports(ctx.args.azurite_ports)
    azurite = await asyncio.to_thread(Azurite(ports=ports).start)
    ctx.storage = azurite.connection_string
    blob, queue, table = azurite.ports or DEFAULT_PORTS
    return Started("Azurite", [f"blob/queue/table on 127.0.0.1:{blob}/{queue}/{table}"],
                   lambda: asyncio.to_thread(azurite.stop))


async def start_microsoft_365(ctx: StackContext) -> Started:
    """The Microsoft 365 simulator (sign-in and Graph, demo tenant) and the Key Vault dev server."""
    simulators = await asyncio.to_thread(start_simulators)
    # The app trusts the CA the stand-ins serve, wherever DEVSTACK_CA_DIR put it.
    set_app_setting("LOCAL_CA_BUNDLE", str(simulators.simulator.certs.ca_pem))
    return Started("Microsoft", simulators.describe(), lambda: asyncio.to_thread(simulators.stop))


# Pushes: the app's signed callbacks to the demo page's POST /callbacks. OFF until the product sends them
# (until then it refuses a non-empty SAAS_CALLBACK_URL at start); DEVSTACK_PUSHES=1 or 0 overrides this.
PUSHES_BY_DEFAULT = True


def pushes_enabled(env: Mapping[str, str] | None = None) -> bool:
    raw = (os.environ if env is None else env).get("DEVSTACK_PUSHES", "").strip().lower()
    return PUSHES_BY_DEFAULT if raw == "" else raw in ("1", "true", "yes", "on")


def demo_port() -> int:
    return int(os.environ.get("DEVSTACK_DEMO_PORT", DEMO_PORT))


async def start_pushes(ctx: StackContext) -> Started:
    """Before the runner: point the app's SAAS_CALLBACK_URL at the demo page and give both a secret made now.

    App settings are the process environment, which wins over local.settings(.sample).json."""
    if not pushes_enabled():
        return Started("Pushes", ["off (DEVSTACK_PUSHES=1 sends them to the demo page)"], _nothing)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    url = f"http://127.0.0.1:{demo_port()}/callbacks"
    set_app_setting("SAAS_CALLBACK_URL", url)
    set_app_setting("SAAS_CALLBACK_SECRET", secret)
    ctx.extra["callback_secret"] = secret
    return Started("Pushes", [f"signed callbacks to {url} (a SAAS_CALLBACK_SECRET made at start)"], _nothing)


async def _nothing() -> None:
    return None


async def start_runner(ctx: StackContext) -> Started:
    config = RunnerConfig.from_env()
    if ctx.args.port is not None:
        config = RunnerConfig(**{**config.__dict__, "port": ctx.args.port})
    runner = await Runner(ctx.args.app, config=config, storage=ctx.storage).start()
    ctx.extra.update(functions_url=runner.base_url, function_key=config.function_key)
    auth = "keys not checked (DEVSTACK_SKIP_AUTH)" if config.skip_auth else \
        f"function key {config.function_key!r}, master key {config.master_key!r}"
    async def stop() -> None:
        await runner.stop()
        if "shared.wiring" in sys.modules:  # the product app: close its clients' sessions
            await sys.modules["shared.wiring"].close_services()

    return Started("Functions", [f"{ctx.args.app} on {runner.base_url}/api/ ({auth})",
                                 f"health: {runner.base_url}/api/health"], stop)


async def start_demo_saas(ctx: StackContext) -> Started:
    """The demo SaaS page that connects calendars through the app (needs the runner's URL)."""
    port = demo_port()
    demo = DemoSaas(ctx.extra["functions_url"], ctx.extra["function_key"], f"http://127.0.0.1:{port}",
                    ctx.extra.get("callback_secret"))
    runner = web.AppRunner(demo.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Started("Demo SaaS", [f"{demo.public_url}  (open it to connect a calendar)"], runner.cleanup)


# The whole stack, in start order. The function runner comes after what the app calls and after the push
# settings it reads at start; the demo SaaS page, which calls the app, comes last.
STACK: list[Starter] = [start_azurite, start_microsoft_365, start_pushes, start_runner, start_demo_saas]


async def run_stack(ctx: StackContext, starters: list[Starter]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Started] = []
    try:
        for starter in starters:
            service = await starter(ctx)
            started.append(service)
            for line in service.lines:
                print(f"{service.name:<10} {line}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()
        print("Stopped.", flush=True)
    return 0


def _ports(text: str) -> tuple[int, int, int]:
    blob, queue, table = (int(p) for p in text.split(","))
    return blob, queue, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("up", "run the whole local stack"), ("runner", "run only the function app")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
        command.add_argument("--port", type=int, default=None, help="HTTP port (default DEVSTACK_PORT or 7071)")
        if name == "up":
            command.add_argument("--azurite-ports", default=",".join(map(str, DEFAULT_PORTS)),
                                 help="blob,queue,table ports, or 'auto' for free ones (default %(default)s)")
    add_commands(commands)  # m365 and keyvault: each stand-in alone
    args = parser.parse_args(argv)
    if args.command not in ("up", "runner"):
        return int(args.func(args))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every poll's headers at INFO
    starters: list[Starter] = STACK if args.command == "up" else [start_runner]
    return asyncio.run(run_stack(StackContext(args), starters))


if __name__ == "__main__":
    sys.exit(main())
