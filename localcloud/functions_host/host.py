"""The local Functions host: loads the app into a language worker and runs its triggers."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.core.exceptions import AzureError

from localcloud.functions_host import outputs, queues, timers
from localcloud.functions_host import protos as protos_loader
from localcloud.functions_host.app import (
    FUNCTION_KEY_SETTING,
    MASTER_KEY_SETTING,
    AppError,
    FunctionApp,
    FunctionSpec,
    load_app,
    parse_timespan,
)
from localcloud.functions_host.http_server import build_web_app
from localcloud.functions_host.invocation import InvocationResult
from localcloud.functions_host.logs import HostLog
from localcloud.functions_host.routes import Keys, Route, build_route
from localcloud.functions_host.rpc import WorkerChannel, WorkerError

DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0
DEFAULT_HTTP_PORT = 7071
MAX_WORKER_RESTARTS = 10


@dataclass
class HostOptions:
    app_root: Path
    host: str = "127.0.0.1"
    port: int | None = None  # None: local.settings.json Host.LocalHttpPort, else 7071
    extra_settings: dict[str, str] = field(default_factory=dict)
    ready_file: Path | None = None
    verbose: bool = False
    worker_start_timeout: float = 120.0


class FunctionsHost:
    def __init__(self, options: HostOptions, log: HostLog | None = None) -> None:
        self.options = options
        self.log = log or HostLog(verbose=options.verbose)
        self.app: FunctionApp = load_app(options.app_root, options.extra_settings)
        self.function_timeout = self._read_timeout()
        self.keys = Keys(
            function_key=self.app.settings.get(FUNCTION_KEY_SETTING, ""),
            master_key=self.app.settings.get(MASTER_KEY_SETTING, ""),
        )
        self.protos = protos_loader.load()
        self.functions: dict[str, FunctionSpec] = {}  # loaded in the worker
        self.errors: dict[str, str] = dict(self.app.errors)  # refused by host or worker
        self.routes: list[Route] = []
        self.port: int | None = None
        self._channel: WorkerChannel | None = None
        self._worker_ready = asyncio.Event()
        self._restart_lock = asyncio.Lock()
        self._restarts = 0
        self._running: dict[str, str] = {}  # invocation id -> function name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._stopping = False

    def _read_timeout(self) -> float | None:
        value = self.app.host_json.get("functionTimeout")
        if value is None:
            return DEFAULT_FUNCTION_TIMEOUT
        if str(value).strip() == "-1":
            return None
        return parse_timespan(str(value), DEFAULT_FUNCTION_TIMEOUT)

    # -- startup ---------------------------------------------------------------------------------
    async def start(self) -> None:
        for name, error in self.app.errors.items():
            self.log.write(f"Function '{name}' is in error: {error}")
        await self._start_worker(first=True)
        self._build_routes()
        await self._start_http()
        self._start_triggers()
        self._report_ready()

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.app.worker_env())
        env.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
        env["AzureWebJobsScriptRoot"] = str(self.app.root)
        return env

    async def _start_worker(self, first: bool) -> None:
        channel = WorkerChannel(
            self.app.root, self._worker_env(), self._on_worker_log, self.options.worker_start_timeout
        )
        self._channel = channel
        try:
            await channel.start()
        except BaseException:
            await channel.stop()
            raise
        self.log.write(f"Worker process started and initialized (pid {channel.pid}).")
        results = await asyncio.gather(
            *(channel.load(spec, self.options.worker_start_timeout) for spec in self.app.functions)
        )
        for spec, result in zip(self.app.functions, results, strict=True):
            if result.ok and first:
                self.functions[spec.name] = spec
            elif not result.ok:
                if first:
                    self.errors[spec.name] = result.error
                self.log.write(
                    f"Worker failed to load function: '{spec.name}' with functionId: '{spec.function_id}'.\n"
                    f"Result: Failure\nException: {result.error}"
                )
        self._worker_ready.set()
        self._supervise(channel)

    def _supervise(self, channel: WorkerChannel) -> None:
        task = asyncio.create_task(self._watch_worker(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_worker(self, channel: WorkerChannel) -> None:
        await channel.exited.wait()
        if self._stopping or channel is not self._channel:
            return
        self.log.write("Language worker process exited unexpectedly; restarting it.")
        await self.restart_worker(channel)

    async def restart_worker(self, old: WorkerChannel) -> None:
        """Replace a dead or stuck worker, as the real host does after a crash or a timeout."""
        async with self._restart_lock:
            if old is not self._channel or self._stopping:
                return  # someone else already replaced it
            self._worker_ready.clear()
            await old.stop(grace=2.0)
            self._restarts += 1
            if self._restarts > MAX_WORKER_RESTARTS:
                self.log.write("Worker restarted too often; giving up.")
                return
            try:
                await self._start_worker(first=False)
            except (WorkerError, OSError) as exc:
                self.log.write(f"Worker restart failed: {exc}")

    def _build_routes(self) -> None:
        prefix = self.app.extension("http").get("routePrefix", "api")
        routes = []
        for spec in list(self.functions.values()):
            if spec.trigger_type != "httpTrigger":
                continue
            try:
                routes.append(build_route(spec, str(prefix)))
            except AppError as exc:
                self.errors[spec.name] = str(exc)
                self.functions.pop(spec.name)
                self.log.write(f"Function '{spec.name}' is in error: {exc}")
        routes.sort(key=lambda r: r.precedence)
        self.routes = routes

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(build_web_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        port = self.options.port
        if port is None:
            port = self.app.local_http_port or DEFAULT_HTTP_PORT
        site = web.TCPSite(self._runner, self.options.host, port, shutdown_timeout=1.0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the server sockets
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        for route in self.routes:
            methods = ",".join(sorted(route.methods)) or "all"
            self.log.write(f"{route.spec.name}: [{methods}] http://{self.options.host}:{self.port}/{route.template}")

    def _start_triggers(self) -> None:
        for spec in list(self.functions.values()):
            try:
                if spec.trigger_type == "timerTrigger":
                    coro = timers.TimerRunner(self, spec).run()
                elif spec.trigger_type == "queueTrigger":
                    coro = queues.QueueListener(self, spec).run()
                else:
                    continue
            except AppError as exc:
                self.errors[spec.name] = str(exc)
                self.functions.pop(spec.name)
                self.log.write(f"Function '{spec.name}' is in error: {exc}")
                continue
            self.log.write(f"{spec.name}: {spec.trigger_type}")
            task = asyncio.create_task(coro, name=f"trigger:{spec.name}")
            self._tasks.add(task)
            task.add_done_callback(self._trigger_done)

    def _trigger_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._stopping:
            self.log.write(f"{task.get_name()} stopped: {task.exception()!r}")

    def status(self) -> dict[str, Any]:
        return {
            "state": "Running" if self._worker_ready.is_set() else "Initialized",
            "port": self.port,
            "functions": sorted(self.functions),
            "errors": dict(sorted(self.errors.items())),
            "workerPid": self._channel.pid if self._channel else None,
            "workerRestarts": self._restarts,
        }

    def _report_ready(self) -> None:
        loaded = ", ".join(sorted(self.functions)) or "none"
        self.log.write(f"Host started on http://{self.options.host}:{self.port} (functions: {loaded})")
        if self.options.ready_file is not None:
            tmp = self.options.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.status()))
            tmp.replace(self.options.ready_file)

    # -- invocation ------------------------------------------------------------------------------
    def _on_worker_log(self, rpc_log: Any) -> None:
        self.log.worker_log(rpc_log, self._running.get(rpc_log.invocation_id))

    async def invoke(
        self, spec: FunctionSpec, input_data: dict[str, Any], trigger_metadata: dict[str, Any], reason: str
    ) -> InvocationResult:
        """Run one invocation in the worker; never raises for function failures."""
        invocation_id = str(uuid.uuid4())
        try:
            await asyncio.wait_for(self._worker_ready.wait(), self.options.worker_start_timeout)
        except TimeoutError:
            self.log.write(f"Functions.{spec.name}: no language worker available; invocation not run.")
            return InvocationResult(invocation_id, False, error="no language worker available")
        channel = self._channel
        assert channel is not None
        p = channel.protos
        request = p.InvocationRequest(
            invocation_id=invocation_id,
            function_id=spec.function_id,
            input_data=[p.ParameterBinding(name=k, data=v) for k, v in input_data.items()],
            trigger_metadata=trigger_metadata,
        )
        self._running[invocation_id] = spec.name
        self.log.write(f"Executing 'Functions.{spec.name}' (Reason='{reason}', Id={invocation_id})")
        started = time.monotonic()
        try:
            response = await channel.invoke(request, self.function_timeout)
        except TimeoutError:
            timed_out = f"Timeout value of {self.function_timeout} s exceeded"
            result = InvocationResult(invocation_id, False, error=timed_out)
            self.log.write(
                f"Timeout value of {self.function_timeout} s exceeded by function 'Functions.{spec.name}' "
                f"(Id: '{invocation_id}'). Restarting the worker."
            )
            self._background(self.restart_worker(channel))
        except WorkerError as exc:
            result = InvocationResult(invocation_id, False, error=str(exc))
        else:
            ok = response.result.status == p.StatusResult.Success
            error = "" if ok else f"{response.result.exception.message}\n{response.result.exception.stack_trace}"
            result = InvocationResult(invocation_id, ok, response, error.strip())
            if ok:
                result = await self._send_outputs(spec, result)
        finally:
            self._running.pop(invocation_id, None)
        ms = int((time.monotonic() - started) * 1000)
        state = "Succeeded" if result.ok else "Failed"
        self.log.write(f"Executed 'Functions.{spec.name}' ({state}, Id={invocation_id}, Duration={ms}ms)")
        if not result.ok:
            self.log.write(f"Functions.{spec.name} ({invocation_id}) Error: {result.error}")
        return result

    async def _send_outputs(self, spec: FunctionSpec, result: InvocationResult) -> InvocationResult:
        """Output bindings are part of the invocation: if sending fails, the invocation fails."""
        try:
            await outputs.send_queue_outputs(self.app, spec, result.response)
        except (AzureError, AppError, ValueError) as exc:
            return InvocationResult(result.invocation_id, False, result.response, f"queue output binding failed: {exc}")
        return result

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def invoke_later(
        self, spec: FunctionSpec, input_data: dict[str, Any], metadata: dict[str, Any], reason: str
    ) -> None:
        self._background(self.invoke(spec, input_data, metadata, reason))

    # -- shutdown --------------------------------------------------------------------------------
    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # failures were already logged
        if self._runner is not None:
            await self._runner.cleanup()
        if self._channel is not None:
            await self._channel.stop()
