"""A measurement, not a gate (marked slow): the median time to serve a list page of 50 events from a
100,000-event generated mailbox through Graph (List events, https://learn.microsoft.com/en-us/graph/api/user-list-events),
printed; docs/devstack.md records the 20 ms target and the median measured. The bound asserted is generous so
that a busy machine does not fail it. Run with `.venv/bin/python -m pytest -m slow tests/devstack/test_scale.py -s`."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from tests.devstack.test_events import a_token
from tests.devstack.world import World


@pytest.mark.slow
def test_median_page_of_50_from_100000_events(world: World):
    made = world.control("POST", f"users/{world.bob}/events/generate", {"count": 100_000, "seed": 3})
    assert made["created"] == 100_000
    token = a_token(world, world.bob)
    timings = []
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        for round_ in range(5):
            for skip in range(round_ * 97, 99_951, 1_000):
                started = time.perf_counter()
                page = http.get(f"{world.sim.graph_url}/me/events", params={"$top": "50", "$skip": str(skip)})
                timings.append(time.perf_counter() - started)
                assert page.status_code == 200
                assert len(page.json()["value"]) == 50
    median = statistics.median(timings)
    print(f"\npage of 50 from 100,000 events: median {median * 1000:.1f} ms over {len(timings)} pages "
          f"(p90 {statistics.quantiles(timings, n=10)[-1] * 1000:.1f} ms)")
    assert median < 0.2
