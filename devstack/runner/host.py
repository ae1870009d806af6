"""The runner: one FunctionApp served as the Functions host would, until stopped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from azure.storage.blob.aio import BlobServiceClient

from devstack.runner.config import RunnerConfig
from devstack.runner.http import HttpHost, describe
from devstack.runner.index import FunctionSpec, index_functions, load_app
from devstack.runner.ncrontab import CronSchedule
from devstack.runner.queues import QueueListener
from devstack.runner.settings import STORAGE, HostJson, app_setting, load_local_settings, resolve, set_app_setting
from devstack.runner.timers import TimerListener

log = logging.getLogger("devstack.runner")

ROOT = Path(__file__).resolve().parents[2]


class Runner:
    """Serve ``app_path`` (``module:attribute``) from ``app_dir``.

    ``storage`` is the connection string of the Azurite in use: it overrides AzureWebJobsStorage
    after the local settings are loaded, as the run command and the tests need.
    """

    def __init__(self, app_path: str = "function_app:app", *, app_dir: Path = ROOT,
                 config: RunnerConfig | None = None, storage: str | None = None) -> None:
        self.app_path = app_path
        self.app_dir = app_dir
        self.config = config or RunnerConfig.from_env()
        self.storage = storage
        self.specs: list[FunctionSpec] = []
        self._stopping = asyncio.Event()
        self._web: web.AppRunner | None = None
        self._queues: list[QueueListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._blob_service: BlobServiceClient | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> Runner:
        settings_file = load_local_settings(self.app_dir)
        if self.storage is not None:
            set_app_setting(STORAGE, self.storage)
        self.specs = [spec for spec in index_functions(load_app(self.app_path, self.app_dir))
                      if not is_disabled(spec.name)]
        host_json = HostJson.load(self.app_dir, self.config)
        timeout = host_json.function_timeout
        # Build every listener before starting any, so a bad binding fails the start as a whole.
        http = HttpHost(self.specs, self.config, host_json.route_prefix, timeout)
        timers = [self._timer(spec, timeout) for spec in self.specs if spec.trigger_type == "timerTrigger"]
        self._queues = [self._queue(spec, host_json, timeout) for spec in self.specs
                        if spec.trigger_type == "queueTrigger"]

        self._web = web.AppRunner(http.app, handle_signals=False, access_log=None,
                                  shutdown_timeout=self.config.shutdown_grace)
        await self._web.setup()
        await web.TCPSite(self._web, self.config.host, self.config.port).start()
        self.port = self._web.addresses[0][1]
        listeners: list[QueueListener | TimerListener] = [*self._queues, *timers]
        for listener in listeners:
            task = asyncio.create_task(listener.run(self._stopping), name=f"listener:{listener.spec.name}")
            task.add_done_callback(_report_crash)
            self._tasks.append(task)
        log.info("runner: %s from %s, settings from %s", self.app_path, self.app_dir, settings_file or "environment")
        for line in describe(http.routes, self.base_url):
            log.info("  %s", line)
        return self

    def _connection(self, spec: FunctionSpec) -> str:
        name = spec.trigger.get("connection") or STORAGE
        value = app_setting(name)
        if not value:
            raise ValueError(f"function {spec.name}: connection setting {name} is not set")
        return value

    def _queue(self, spec: FunctionSpec, host_json: HostJson, timeout: float | None) -> QueueListener:
        return QueueListener(spec, resolve(spec.trigger["queueName"]), self._connection(spec), host_json.queues,
                             time_limit=timeout)

    def _timer(self, spec: FunctionSpec, timeout: float | None) -> TimerListener:
        if self._blob_service is None:
            # The host keeps timer status and locks in AzureWebJobsStorage, whatever else the app uses.
            storage = app_setting(STORAGE)
            if not storage:
                raise ValueError("AzureWebJobsStorage is not set: timers need it for locks and status")
            self._blob_service = BlobServiceClient.from_connection_string(storage)
        return TimerListener(spec, CronSchedule.parse(resolve(spec.trigger["schedule"])), self._blob_service,
                             self.config.host_id, lock_seconds=self.config.timer_lock_seconds,
                             lock_retry=self.config.timer_lock_retry, time_limit=timeout)

    async def stop(self) -> None:
        """Stop taking work, let running invocations finish (up to the grace), then close."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._web is not None:
            await self._web.cleanup()  # stops accepting, waits for requests in flight
        _, pending = await asyncio.wait(self._tasks, timeout=self.config.shutdown_grace) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*(q.drain(self.config.shutdown_grace) for q in self._queues))
        await asyncio.gather(*pending, return_exceptions=True)
        if self._blob_service is not None:
            await self._blob_service.close()

    async def __aenter__(self) -> Runner:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


def is_disabled(function_name: str) -> bool:
    """``AzureWebJobs.<name>.Disabled`` set to true keeps a function from running, as the host does
    ("How to disable functions in Azure Functions",
    https://learn.microsoft.com/en-us/azure/azure-functions/disable-function)."""
    return (app_setting(f"AzureWebJobs.{function_name}.Disabled") or "").lower() in ("true", "1")


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("runner: %s stopped on an error; its trigger no longer runs", task.get_name(),
                  exc_info=task.exception())

