"""Host end of the FunctionRpc protocol: a gRPC server and the language-worker subprocess it drives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from localcloud.functions_host import protos as protos_loader
from localcloud.functions_host.app import FunctionSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST_VERSION = "4.0.0-localcloud"
#: App setting (or environment variable) naming the Python that runs the worker, as for Azure's host and
#: Core Tools (`languageWorkers:python:defaultExecutablePath`). Default: the host's own interpreter.
WORKER_PYTHON_SETTING = "languageWorkers__python__defaultExecutablePath"

_DIRECTIONS = ("in", "out", "inout")
_DATA_TYPES = ("string", "binary", "stream")


class WorkerError(Exception):
    """The worker failed, exited or answered with a failure status."""


@dataclass(frozen=True)
class LoadResult:
    name: str
    ok: bool
    error: str = ""


LogSink = Callable[[Any], None]


class _Servicer:
    def __init__(self, channel: WorkerChannel) -> None:
        self._channel = channel

    async def EventStream(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await self._channel.serve(context)


class WorkerChannel:
    """One language-worker process and its EventStream."""

    def __init__(self, app_root: Path, env: dict[str, str], on_log: LogSink, start_timeout: float = 60.0) -> None:
        self.protos = protos_loader.load()
        self._app_root = app_root
        self._env = env
        self._on_log = on_log
        self._start_timeout = start_timeout
        self._server: grpc.aio.Server | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._connected: asyncio.Future[None] | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._closed = False
        self._watcher: asyncio.Task[None] | None = None
        self._stream_closed = asyncio.Event()
        self.worker_id = str(uuid.uuid4())
        self.exited: asyncio.Event = asyncio.Event()

    # -- stream ----------------------------------------------------------------------------------
    async def serve(self, context: grpc.aio.ServicerContext) -> None:
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("content") != "start_stream":
            return
        assert self._connected is not None
        if first.start_stream.worker_id != self.worker_id or self._connected.done():
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "unknown worker or stream already open")
        self._connected.set_result(None)
        writer = asyncio.create_task(self._write_loop(context))
        try:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break
                self._on_message(msg)
        finally:
            writer.cancel()
            self._fail_pending(WorkerError("worker event stream closed"))
            self._stream_closed.set()

    async def _write_loop(self, context: grpc.aio.ServicerContext) -> None:
        while True:
            msg = await self._outgoing.get()
            await context.write(msg)

    def _on_message(self, msg: Any) -> None:
        kind = msg.WhichOneof("content")
        if kind == "rpc_log":
            self._on_log(msg.rpc_log)
            return
        key = _response_key(kind, msg)
        if key is None:
            return
        future = self._pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(getattr(msg, kind))

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    async def _request(self, key: str, timeout: float | None = None, **content: Any) -> Any:
        if self._closed or self.exited.is_set():
            raise WorkerError("worker is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        await self._outgoing.put(self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **content))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(key, None)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the gRPC server and the worker; return once WorkerInit and metadata succeeded."""
        p = self.protos
        self._connected = asyncio.get_running_loop().create_future()
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        )
        self._server.add_generic_rpc_handlers((_generic_handler(p, _Servicer(self)),))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        env = dict(self._env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        python = env.get(WORKER_PYTHON_SETTING) or sys.executable
        self._process = await asyncio.create_subprocess_exec(
            python, "-m", "localcloud.functions_host.worker",
            "--host", "127.0.0.1", "--port", str(port),
            "--worker-id", self.worker_id, "--request-id", str(uuid.uuid4()),
            cwd=str(self._app_root), env=env,
        )  # fmt: skip
        self._watcher = asyncio.create_task(self._watch_process())
        exited = asyncio.create_task(self.exited.wait())
        try:
            await asyncio.wait(
                [self._connected, exited], timeout=self._start_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if not self._connected.done():
            raise WorkerError(
                "worker exited before connecting" if self.exited.is_set() else "worker did not connect in time"
            )
        init = await self._request(
            "init",
            self._start_timeout,
            worker_init_request=p.WorkerInitRequest(
                host_version=HOST_VERSION,
                function_app_directory=str(self._app_root),
                worker_directory=str(self._app_root),
            ),
        )
        _check(init.result, "WorkerInitRequest")
        meta = await self._request(
            "metadata",
            self._start_timeout,
            functions_metadata_request=p.FunctionsMetadataRequest(function_app_directory=str(self._app_root)),
        )
        _check(meta.result, "FunctionsMetadataRequest")

    async def _watch_process(self) -> None:
        assert self._process is not None
        await self._process.wait()
        self.exited.set()
        self._fail_pending(WorkerError(f"worker process exited with code {self._process.returncode}"))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def load(self, spec: FunctionSpec, timeout: float) -> LoadResult:
        p = self.protos
        bindings = {
            b["name"]: p.BindingInfo(
                type=b["type"],
                direction=p.BindingInfo.Direction.Value(_pick(b["direction"], _DIRECTIONS, "in")),
                data_type=p.BindingInfo.DataType.Value(_pick(b.get("dataType"), _DATA_TYPES, "undefined")),
            )
            for b in spec.bindings
        }
        metadata = p.RpcFunctionMetadata(
            name=spec.name,
            directory=str(spec.directory),
            script_file=str(spec.script_file),
            entry_point=spec.entry_point,
            bindings=bindings,
            language="python",
            raw_bindings=[json.dumps(b) for b in spec.bindings],
            function_id=spec.function_id,
        )
        response = await self._request(
            f"load:{spec.function_id}",
            timeout,
            function_load_request=p.FunctionLoadRequest(function_id=spec.function_id, metadata=metadata),
        )
        if response.result.status == p.StatusResult.Success:
            return LoadResult(spec.name, True)
        return LoadResult(spec.name, False, response.result.exception.message or "load failed")

    async def reload_environment(self, env: dict[str, str], timeout: float) -> None:
        """FunctionEnvironmentReloadRequest (placeholder specialization): the worker replaces its environment."""
        p = self.protos
        response = await self._request(
            "reload",
            timeout,
            function_environment_reload_request=p.FunctionEnvironmentReloadRequest(
                environment_variables=env, function_app_directory=str(self._app_root)
            ),
        )
        _check(response.result, "FunctionEnvironmentReloadRequest")

    async def invoke(self, invocation_request: Any, timeout: float | None) -> Any:
        return await self._request(
            f"invoke:{invocation_request.invocation_id}", timeout, invocation_request=invocation_request
        )

    async def stop(self, grace: float = 5.0) -> None:
        self._closed = True
        self._fail_pending(WorkerError("host is shutting down"))
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()
        if self._watcher is not None:
            await self._watcher  # sets `exited` and fails what was still pending
        if self._connected is not None and self._connected.done():
            # Let the EventStream handler see the worker's end of the stream before the server goes:
            # stopping the server under a live call cancels it inside gRPC, which prints a traceback.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stream_closed.wait(), grace)
        if self._server is not None:
            await self._server.stop(grace=grace)
            self._server = None


def _pick(value: Any, allowed: tuple[str, ...], default: str) -> str:
    text = str(value or "")
    return text if text in allowed else default


def _response_key(kind: str | None, msg: Any) -> str | None:
    if kind == "worker_init_response":
        return "init"
    if kind == "function_metadata_response":
        return "metadata"
    if kind == "function_environment_reload_response":
        return "reload"
    if kind == "function_load_response":
        return f"load:{msg.function_load_response.function_id}"
    if kind == "invocation_response":
        return f"invoke:{msg.invocation_response.invocation_id}"
    return None


def _check(result: Any, what: str) -> None:
    protos = protos_loader.load()
    if result.status != protos.StatusResult.Success:
        raise WorkerError(f"{what} failed: {result.exception.message}")


def _generic_handler(protos: Any, servicer: _Servicer) -> grpc.GenericRpcHandler:
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.EventStream,
        request_deserializer=protos.StreamingMessage.FromString,
        response_serializer=protos.StreamingMessage.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("AzureFunctionsRpcMessages.FunctionRpc", {"EventStream": handler})
