"""Webhook benchmarks, each printed side by side with the naive way, measured in one run.

1. Acknowledgement latency of 100-notification batches through the local runner and Azurite, p50 and
   p99 over BATCHES batches, against Graph's 2,900 ms slow threshold ("Receive change notifications through webhooks",
   https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks): the product's
   receiver (one message per account) and a naive receiver (one message per notification), served by
   the same runner and alternated batch by batch so machine noise hits both alike.
2. Queue messages per batch: ours vs naive.
3. A fresh process answering its first validation request: the webhook path as built vs the same app
   with every SDK imported eagerly (msgraph-sdk with its first model parse, msal, Key Vault, identity).

Run: `.venv/bin/python -m bench.webhook [--batches 1000]` (or `bash bench/run.sh`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.metrics import emit

ROOT = Path(__file__).resolve().parents[1]
SLOW_MS = 2900
ACCOUNTS_PER_BATCH = 10


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


NAIVE_APP = '''
import json
import azure.functions as func
from shared.config import get_settings
from shared.messages import Sync
from shared.wiring import get_work_queue
from shared.webhook.client_state import verify_client_state

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="naive", methods=["POST"])
async def naive(req: func.HttpRequest) -> func.HttpResponse:
    """The naive receiver: verify each item, one queue message per notification, sent one by one."""
    keys = get_settings().client_state_keys
    for item in json.loads(req.get_body())["value"]:
        state = verify_client_state(item.get("clientState"), item.get("tenantId"), keys)
        if state is not None:
            await get_work_queue().send(Sync(account=state.account, reason="notification"))
    return func.HttpResponse(status_code=202)
'''


def naive_app_dir() -> Path:
    apps = Path(tempfile.mkdtemp(prefix="bench-apps-"))
    (apps / "naive_app.py").write_text(NAIVE_APP)
    (apps / "host.json").write_text((ROOT / "host.json").read_text())
    return apps


def start_runner(app: str, port: int, storage: str, apps: Path) -> subprocess.Popen[bytes]:
    """A runner in its own process, as the Functions host is: the benchmark client does not share its loop."""
    env = {**os.environ, "AzureWebJobsStorage": storage, "PYTHONPATH": str(apps), "DEVSTACK_HOST_ID": f"bench-{port}"}
    return subprocess.Popen([sys.executable, "-m", "devstack", "runner", "--app", app, "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_healthy(http: httpx.AsyncClient, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await http.get(f"{base}/api/health")).status_code in (200, 404):
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no runner at {base}")


async def latency(batches: int) -> None:
    from devstack.azurite import Azurite, free_port
    from shared.config import Settings
    from shared.ids import new_account_id
    from tests.unit.test_webhook import notification

    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    key = Settings.from_env(sample).client_state_keys[0]
    # In memory: Azurite's periodic saves to disk would add pauses that Azure Storage does not have.
    azurite = Azurite(in_memory=True).start()
    apps = naive_app_dir()
    ours_port, naive_port = free_port(), free_port()
    runners = [start_runner("function_app:app", ours_port, azurite.connection_string, apps),
               start_runner("naive_app:app", naive_port, azurite.connection_string, apps)]
    try:
        ours: list[float] = []
        naive: list[float] = []
        async with httpx.AsyncClient(timeout=30) as http:
            ours_url, naive_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{naive_port}"
            await wait_healthy(http, ours_url)
            await wait_healthy(http, naive_url)
            targets = [(ours, f"{ours_url}/api/notifications"), (naive, f"{naive_url}/api/naive")]
            for i in range(batches + 10):
                accounts = [new_account_id() for _ in range(ACCOUNTS_PER_BATCH)]
                body = json.dumps({"value": [notification(accounts[j % ACCOUNTS_PER_BATCH], key=key)
                                             for j in range(100)]})
                for samples, url in (targets if i % 2 == 0 else targets[::-1]):
                    started = time.perf_counter()
                    response = await http.post(url, content=body, headers={"content-type": "application/json"})
                    if i >= 10:  # the first batches warm both up (imports, connections)
                        samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 202, response.text
        print(f"\n1. Acknowledgement latency, {batches} batches of 100 notifications ({ACCOUNTS_PER_BATCH} accounts "
              f"each), local runner (own process) + Azurite (in memory), Graph's slow threshold {SLOW_MS} ms")
        print(f"   {'':22}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'over 2900 ms':>14}")
        for name, samples in (("ours (1 msg/account)", ours), ("naive (1 msg/item)", naive)):
            print(f"   {name:22}{statistics.median(samples):10.1f}{percentile(samples, 99):10.1f}"
                  f"{max(samples):10.1f}{sum(s > SLOW_MS for s in samples):14d}")
        print(f"   ratio naive/ours: p50 {statistics.median(naive) / statistics.median(ours):.1f}x, "
              f"p99 {percentile(naive, 99) / percentile(ours, 99):.1f}x")
        print(f"\n2. Queue messages per batch: ours {ACCOUNTS_PER_BATCH}, naive 100 "
              f"({100 // ACCOUNTS_PER_BATCH}x fewer; the sync worker's coalescing then costs one extra round at most)")
        emit("webhook_ack_p50_ms", statistics.median(ours), statistics.median(naive), "ms", cost=True)
        emit("webhook_ack_p99_ms", percentile(ours, 99), percentile(naive, 99), "ms", cost=True)
        emit("webhook_messages_per_batch", ACCOUNTS_PER_BATCH, 100, "messages", cost=True)
    finally:
        for runner in runners:
            runner.send_signal(signal.SIGINT)
        for runner in runners:
            try:
                runner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runner.kill()
        azurite.stop()


COLD = '''
import time, sys
started = time.perf_counter()
{eager}
import asyncio, azure.functions as func, function_app
request = func.HttpRequest(method="POST", url="http://localhost/api/notifications?validationToken=abc",
                           params={{"validationToken": "abc"}}, headers={{}}, body=b"")
response = asyncio.run(function_app.notifications(request))
assert response.get_body() == b"abc"
print((time.perf_counter() - started) * 1000)
'''

EAGER = '''
import msal, azure.identity.aio, azure.keyvault.secrets.aio, azure.data.tables.aio, azure.storage.queue.aio
from msgraph.generated.models.event import Event
from kiota_serialization_json.json_parse_node import JsonParseNode
import json
Event.create_from_discriminator_value(JsonParseNode(json.loads('{"id": "1", "subject": "x"}')))
'''


def cold_start(runs: int) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
    as_built: list[float] = []
    eager: list[float] = []
    for _ in range(runs):
        for samples, prelude in ((as_built, ""), (eager, EAGER)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", COLD.format(eager=prelude)], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=120)
            samples.append((time.perf_counter() - started) * 1000)
    print(f"\n3. A fresh process answering its first validation request (process start to response, {runs} runs each)")
    print(f"   as built:             median {statistics.median(as_built):7.0f} ms  (min {min(as_built):.0f})")
    print(f"   every SDK eagerly:    median {statistics.median(eager):7.0f} ms  (min {min(eager):.0f})")
    print(f"   ratio eager/as built: {statistics.median(eager) / statistics.median(as_built):.1f}x; "
          "Graph allows 10,000 ms for the handshake")
    emit("cold_first_webhook_ms", statistics.median(as_built), statistics.median(eager), "ms", cost=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(latency(args.batches))
    cold_start(args.cold_runs)


if __name__ == "__main__":
    main()
