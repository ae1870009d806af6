"""`python -m devstack up`: the whole local stack on localhost until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from devstack.azurite import DEFAULT_PORTS, Azurite
from devstack.simulators import add_commands, start_simulators


def up(_: argparse.Namespace) -> int:
    azurite = Azurite(ports=DEFAULT_PORTS).start()
    print(f"Azurite   blob/queue/table on 127.0.0.1:{'/'.join(map(str, DEFAULT_PORTS))}", flush=True)
    try:
        simulators = start_simulators()
    except BaseException:
        azurite.stop()
        raise
    print("\n".join(simulators.describe()), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulators.stop()
        azurite.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole local stack").set_defaults(func=up)
    add_commands(commands)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
