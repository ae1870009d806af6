"""The runner's pure parts: settings like Core Tools, host.json, config, routes, backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.runner.config import RunnerConfig
from devstack.runner.host import ROOT
from devstack.runner.http import compile_route
from devstack.runner.index import UnsupportedFunction, index_functions, load_app
from devstack.runner.ncrontab import CronSchedule
from devstack.runner.queues import Backoff
from devstack.runner.settings import HostJson, load_local_settings, parse_timespan, resolve
from devstack.runner.timers import NEVER, ScheduleStatus, check_past_due, default_use_monitor
from tests.devstack.conftest import APPS


def write_settings(folder: Path, name: str, values: dict[str, str]) -> None:
    (folder / name).write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def test_local_settings_json_wins_over_the_sample_and_never_overrides_the_environment(tmp_path):
    write_settings(tmp_path, "local.settings.sample.json", {"A": "sample", "B": "sample"})
    write_settings(tmp_path, "local.settings.json", {"A": "local", "C": "local"})
    env = {"C": "already set"}
    assert load_local_settings(tmp_path, env) == tmp_path / "local.settings.json"
    assert env == {"A": "local", "C": "already set"}


def test_sample_is_used_without_local_settings(tmp_path):
    write_settings(tmp_path, "local.settings.sample.json", {"A": "sample"})
    env: dict[str, str] = {}
    load_local_settings(tmp_path, env)
    assert env == {"A": "sample"}


def test_setting_references_are_resolved():
    env = {"RECONCILE_SCHEDULE": "0 */5 * * * *", "Q": "sync"}
    assert resolve("%RECONCILE_SCHEDULE%", env) == "0 */5 * * * *"
    assert resolve("%Q%-items", env) == "sync-items"
    assert resolve("plain", env) == "plain"
    with pytest.raises(KeyError, match="MISSING"):
        resolve("%MISSING%", env)


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:00:30", 30), ("00:10:00", 600), ("00:00:00.200", 0.2), ("1.02:00:00", 93600),
])
def test_timespans(text, seconds):
    assert parse_timespan(text) == pytest.approx(seconds)


def test_host_json_values_and_devstack_overrides(tmp_path):
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "functionTimeout": "00:05:00", "extensions": {
        "queues": {"batchSize": 64, "maxDequeueCount": 5, "visibilityTimeout": "00:00:30",
                   "maxPollingInterval": "00:00:02", "messageEncoding": "none"}}}))
    plain = HostJson.load(tmp_path, RunnerConfig())
    assert plain.route_prefix == "api"
    assert plain.function_timeout == 300
    assert plain.queues.batch_size == 32                 # Storage returns at most 32 messages a call
    assert plain.queues.new_batch_threshold == 16        # host default: batchSize / 2
    assert plain.queues.visibility_timeout == 30
    assert plain.queues.max_polling_interval == 2
    assert plain.queues.message_encoding == "none"
    assert plain.queues.invisibility == 600               # the host's fixed 10 minutes
    short = HostJson.load(tmp_path, RunnerConfig(queue_visibility_timeout=0.5, queue_invisibility=4,
                                                 queue_message_encoding="base64"))
    assert (short.queues.visibility_timeout, short.queues.invisibility, short.queues.message_encoding) == \
        (0.5, 4, "base64")


def test_project_host_json_is_read():
    queues = HostJson.load(ROOT, RunnerConfig()).queues
    assert (queues.batch_size, queues.max_dequeue_count, queues.visibility_timeout) == (16, 5, 30)


def test_config_from_env():
    config = RunnerConfig.from_env({"DEVSTACK_PORT": "7199", "DEVSTACK_SKIP_AUTH": "1",
                                    "DEVSTACK_QUEUE_INVISIBILITY": "2.5", "DEVSTACK_FUNCTION_KEY": "k"})
    assert (config.port, config.skip_auth, config.queue_invisibility, config.function_key) == (7199, True, 2.5, "k")
    assert RunnerConfig.from_env({}) == RunnerConfig()


@pytest.mark.parametrize(("template", "path", "params"), [
    ("items/{id:int}", "/api/items/42", {"id": "42"}),
    ("items/{id:int}", "/api/items/x", None),
    ("items/{id:guid}", "/api/items/6f9619ff-8b86-d011-b42d-00cf4fc964ff",
     {"id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff"}),
    ("a/{x?}", "/api/a", {}),
    ("a/{x?}", "/api/a/7", {"x": "7"}),
    ("b/{n=5}", "/api/b", {"n": "5"}),
    ("files/{*rest}", "/api/files/x/y", {"rest": "x/y"}),
    ("{name}.{ext}", "/api/f.txt", {"name": "f", "ext": "txt"}),
    ("Accounts/{account}", "/api/accounts/abc", {"account": "abc"}),
])
def test_route_templates(template, path, params):
    pattern, defaults, _ = compile_route(template, "api")
    found = pattern.fullmatch(path)
    if params is None:
        assert found is None
    else:
        assert found is not None
        assert {**defaults, **{k: v for k, v in found.groupdict().items() if v is not None}} == params


def test_unknown_route_constraint_is_refused():
    with pytest.raises(UnsupportedFunction):
        compile_route("x/{id:regex(^a$)}", "api")


def test_backoff_doubles_while_idle_and_resets_on_a_message():
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay(found_message=False) for _ in range(10)]
    assert delays[0] == 0.1
    assert delays[1] > 0.1
    assert delays[-1] == 2.0
    assert all(d <= 2.0 for d in delays)
    assert backoff.next_delay(found_message=True) == 0.1


def test_index_refuses_bindings_it_cannot_honour():
    with pytest.raises(UnsupportedFunction, match="queue"):
        index_functions(load_app("bad_app:app", APPS))


def test_index_is_read_once_per_app():
    app = load_app("http_app:app", APPS)
    first = index_functions(app)
    assert index_functions(app) is first  # a second get_functions() would raise
    assert {spec.name for spec in first} >= {"hello", "items", "boom", "sync_function"}


@pytest.mark.parametrize(("schedule", "monitored"), [
    ("0 */5 * * * *", True), ("0 * * * * *", True), ("*/30 * * * * *", False), ("* * * * * *", False),
])
def test_use_monitor_default_follows_the_host(schedule, monitored):
    now = datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC)
    assert default_use_monitor(CronSchedule.parse(schedule), now) is monitored


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


HOURLY = CronSchedule.parse("0 0 * * * *")
NOW = utc("2026-11-25 12:30:00")


def test_first_start_records_the_next_occurrence():
    status, past_due, store = check_past_due(HOURLY, None, NOW)
    assert (status.last, status.next, status.last_updated, past_due, store) == \
        (NEVER, utc("2026-11-25 13:00:00"), NOW, False, True)


def test_missed_occurrence_is_past_due():
    stored = ScheduleStatus(utc("2026-11-25 10:00:00"), utc("2026-11-25 11:00:00"), utc("2026-11-25 10:00:00"))
    assert check_past_due(HOURLY, stored, NOW) == (stored, True, False)


def test_next_occurrence_still_ahead_is_not_past_due():
    stored = ScheduleStatus(utc("2026-11-25 12:00:00"), utc("2026-11-25 13:00:00"), utc("2026-11-25 12:00:00"))
    assert check_past_due(HOURLY, stored, NOW) == (stored, False, False)


def test_changed_schedule_is_not_past_due():
    # Recorded under a daily schedule, now hourly: the hourly next from Last (11:00) is past, so the
    # host recomputes from now instead of firing at once.
    stored = ScheduleStatus(utc("2026-11-25 10:00:00"), utc("2026-11-26 10:00:00"), utc("2026-11-25 10:00:00"))
    assert check_past_due(HOURLY, stored, NOW) == \
        (ScheduleStatus(NEVER, utc("2026-11-25 13:00:00"), NOW), False, True)


def test_never_fired_timer_uses_last_updated():
    stored = ScheduleStatus(NEVER, utc("2026-11-25 11:00:00"), utc("2026-11-25 10:15:00"))
    assert check_past_due(HOURLY, stored, NOW) == (stored, True, False)


def test_a_function_is_disabled_by_its_app_setting_as_the_host_does(monkeypatch):
    from devstack.runner.host import is_disabled

    assert not is_disabled("subscription_worker")
    monkeypatch.setenv("AzureWebJobs.subscription_worker.Disabled", "true")
    assert is_disabled("subscription_worker")
    assert not is_disabled("subscription_renewer")
