"""docs/capacity.md is what docs/capacity.py generates from its inputs: the script runs here, in the test
command, and regenerating the page changes nothing."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shared.config import SETTINGS_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "capacity.py"
PAGE = ROOT / "docs" / "capacity.md"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_capacity", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


capacity = load()


def test_the_script_run_as_documented_finds_the_page_up_to_date():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_regenerating_the_page_changes_nothing(tmp_path, monkeypatch):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE.read_text())
    monkeypatch.setattr(capacity, "PAGE", page)
    assert capacity.main([]) == 0
    assert page.read_text() == PAGE.read_text()


def test_a_stale_page_fails_the_check(tmp_path, monkeypatch, capsys):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE.read_text().replace("20.0", "21.0", 1))
    monkeypatch.setattr(capacity, "PAGE", page)
    assert capacity.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["outlook_changes", "bookings_written", "peak_factor", "fan_out_seconds"])
def test_every_workload_input_reaches_the_page(field):
    base = capacity.Workload()
    changed = dataclasses.replace(base, **{field: getattr(base, field) * 2})
    assert capacity.render(changed) != capacity.render(base)


def test_a_changed_product_default_changes_the_page(monkeypatch):
    spec = SETTINGS_BY_NAME["RECONCILE_INTERVAL_MINUTES"]
    before = capacity.render()
    monkeypatch.setitem(capacity.SETTINGS_BY_NAME, spec.name, dataclasses.replace(spec, default="30"))
    after = capacity.render()
    assert after != before
    # Twice the rounds: the reconcile row of the per-operation table doubles.
    assert "| reconcile round *est.* | 48.0 |" in after
    assert "| reconcile round *est.* | 24.0 |" in before


def test_the_key_vault_fan_out_follows_the_reconcile_timer(monkeypatch):
    spec = SETTINGS_BY_NAME["RECONCILE_SCHEDULE"]
    assert capacity.Workload().fan_out_seconds == 300
    monkeypatch.setitem(capacity.SETTINGS_BY_NAME, spec.name, dataclasses.replace(spec, default="0 */10 * * * *"))
    assert capacity.Workload().fan_out_seconds == 600
    monkeypatch.setitem(capacity.SETTINGS_BY_NAME, spec.name, dataclasses.replace(spec, default="0 0 * * * *"))
    with pytest.raises(ValueError, match="RECONCILE_SCHEDULE"):
        capacity.Workload()


def test_limits_are_listed_in_the_order_they_bind_and_each_binds_where_use_reaches_100_percent():
    limits = capacity.limits(capacity.Workload())
    for limit in limits:
        assert limit.used(round(limit.binds_at)) == pytest.approx(1, rel=1e-3)
    order = sorted(limits, key=lambda limit: limit.binds_at)
    page = PAGE.read_text()
    positions = [page.index(f"| {limit.name}: ") for limit in order]
    assert positions == sorted(positions)
    assert f"**First to bind: {order[0].name}**" in page


def test_per_day_totals_are_the_sum_of_operations_times_their_costs():
    workload = capacity.Workload()
    ops = capacity.per_day(workload)
    graph = sum(count * capacity.COSTS[op].graph for op, (count, _) in ops.items())
    assert capacity.demand(workload, "graph").day == pytest.approx(graph)
    lifetime = float(SETTINGS_BY_NAME["SUBSCRIPTION_LIFETIME_MINUTES"].default or 0)
    margin = float(SETTINGS_BY_NAME["RENEW_MARGIN_MINUTES"].default or 0)
    assert ops["subscription renewal"][0] == pytest.approx(1440 / (lifetime - margin))


def test_the_instance_figures_are_the_templates_defaults():
    from pycep import BicepParser

    parameters = BicepParser().parse(text=(ROOT / "infra" / "main.bicep").read_text())["parameters"]
    assert parameters["maximumInstanceCount"]["default"] == capacity.MAX_INSTANCES
    assert parameters["instanceMemoryMB"]["default"] == capacity.INSTANCE_MEMORY_MB


def test_every_source_is_a_microsoft_learn_page():
    sources = [v for v in vars(capacity).values() if isinstance(v, capacity.Source)]
    assert len(sources) >= 8
    for source in sources:
        assert source.url.startswith("https://learn.microsoft.com/"), source
        assert f"- {source.title}: {source.url}" in PAGE.read_text()
