"""Language-worker process: a small proxy between the host's FunctionRpc EventStream and the
azure-functions-runtime-v1 library (the same library that runs the app in Azure).

Run by the host as ``python -m localcloud.functions_host.worker --host H --port P --worker-id W
--request-id R``. It connects to the host, sends StartStream, hands each request to the runtime's
handler and sends the response back; Python logging is forwarded to the host as RpcLog messages.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextvars
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc

from localcloud.functions_host import protos as protos_loader

_SYSTEM_LOGGERS = ("azure.functions", "azure_functions", "localcloud")
_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("invocation", default=None)
log = logging.getLogger("localcloud.functions_host.worker")


@dataclass
class WorkerRequest:
    """The request wrapper the runtime's handlers expect (as in Azure's proxy worker)."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class RpcLogHandler(logging.Handler):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # logging's contract: never raise from emit
            self.handleError(record)
            return
        self._worker.send_log(record, message)


class Worker:
    def __init__(self, protos: ModuleType, runtime: ModuleType, args: argparse.Namespace) -> None:
        self._protos = protos
        self._runtime = runtime
        self._args = args
        self._loop = asyncio.get_running_loop()
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, tuple[Callable[[Any], Awaitable[Any]], str]] = {
            "worker_init_request": (self._init, "worker_init_response"),
            "functions_metadata_request": (self._metadata, "function_metadata_response"),
            "function_load_request": (self._load, "function_load_response"),
            "invocation_request": (self._invoke, "invocation_response"),
            "function_environment_reload_request": (
                self._reload,
                "function_environment_reload_response",
            ),
        }

    # -- logging ---------------------------------------------------------------------------------
    def send_log(self, record: logging.LogRecord, message: str) -> None:
        p = self._protos
        if record.levelno >= logging.CRITICAL:
            level = p.RpcLog.Critical
        elif record.levelno >= logging.ERROR:
            level = p.RpcLog.Error
        elif record.levelno >= logging.WARNING:
            level = p.RpcLog.Warning
        elif record.levelno >= logging.INFO:
            level = p.RpcLog.Information
        else:
            level = p.RpcLog.Debug
        system = record.name.startswith(_SYSTEM_LOGGERS)
        fields: dict[str, Any] = {
            "level": level,
            "message": message,
            "category": record.name,
            "log_category": p.RpcLog.RpcLogCategory.Value("System" if system else "User"),
        }
        invocation_id = self._runtime.invocation_id_cv.get() or _invocation.get()
        if invocation_id:
            fields["invocation_id"] = invocation_id
        msg = p.StreamingMessage(request_id=self._args.request_id, rpc_log=p.RpcLog(**fields))
        try:
            self._loop.call_soon_threadsafe(self._outgoing.put_nowait, msg)
        except RuntimeError:  # loop closed during shutdown: the host is gone anyway
            print(message, file=sys.stderr, flush=True)

    # -- handlers --------------------------------------------------------------------------------
    def _wrap(self, name: str, msg: Any) -> WorkerRequest:
        return WorkerRequest(name=name, request=msg, properties={"protos": self._protos, "host": self._args.host})

    async def _init(self, msg: Any) -> Any:
        directory = msg.worker_init_request.function_app_directory
        if directory:
            # Azure puts the app root first on sys.path so functions can import shared modules.
            if directory not in sys.path:
                sys.path.insert(0, directory)
            os.chdir(directory)
        response = await self._runtime.worker_init_request(self._wrap("WorkerInitRequest", msg))
        self._runtime.start_threadpool_executor()
        return response

    async def _metadata(self, msg: Any) -> Any:
        return await self._runtime.functions_metadata_request(self._wrap("FunctionsMetadataRequest", msg))

    async def _load(self, msg: Any) -> Any:
        return await self._runtime.function_load_request(self._wrap("FunctionLoadRequest", msg))

    async def _reload(self, msg: Any) -> Any:
        return await self._runtime.function_environment_reload_request(
            self._wrap("FunctionEnvironmentReloadRequest", msg)
        )

    async def _invoke(self, msg: Any) -> Any:
        _invocation.set(msg.invocation_request.invocation_id)  # this task's own context
        return await self._runtime.invocation_request(self._wrap("InvocationRequest", msg))

    async def _dispatch(self, msg: Any) -> None:
        p = self._protos
        kind = msg.WhichOneof("content")
        if kind == "worker_status_request":
            response_msg = p.StreamingMessage(
                request_id=msg.request_id, worker_status_response=p.WorkerStatusResponse()
            )
            await self._outgoing.put(response_msg)
            return
        entry = self._handlers.get(kind or "")
        if entry is None:
            log.warning("ignoring unsupported StreamingMessage content %r", kind)
            return
        handler, response_field = entry
        response = await handler(msg)
        await self._outgoing.put(p.StreamingMessage(request_id=msg.request_id, **{response_field: response}))

    def _spawn(self, msg: Any) -> None:
        task = asyncio.create_task(self._dispatch(msg))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker handler failed", exc_info=task.exception())

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            msg = await self._outgoing.get()
            if msg is None:
                return
            yield msg

    async def run(self) -> int:
        p = self._protos
        target = f"{self._args.host}:{self._args.port}"
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            await asyncio.wait_for(channel.channel_ready(), self._args.connect_timeout)
            stub = p.FunctionRpcStub(channel)
            await self._outgoing.put(
                p.StreamingMessage(
                    request_id=self._args.request_id,
                    start_stream=p.StartStream(worker_id=self._args.worker_id),
                )
            )
            call = stub.EventStream(self._requests())
            try:
                async for msg in call:
                    if msg.WhichOneof("content") == "worker_terminate":
                        break
                    self._spawn(msg)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    print(f"worker: event stream ended: {exc.code().name}", file=sys.stderr, flush=True)
            finally:
                call.cancel()
        return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcloud.functions_host.worker")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    return parser.parse_args(argv)


async def _amain(args: argparse.Namespace) -> int:
    protos = protos_loader.load()
    import azure_functions_runtime_v1 as runtime  # after protos: keeps import errors readable

    worker = Worker(protos, runtime, args)
    # The host stops a worker with SIGTERM: end the stream like a WorkerTerminate, so the process
    # exits through its exit hooks (the app's clients close their connections) instead of dying.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    handler = RpcLogHandler(worker)
    root = logging.getLogger()
    debug = os.environ.get("PYTHON_ENABLE_DEBUG_LOGGING", "").lower() in ("1", "true")
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.addHandler(handler)
    try:
        return await worker.run()
    finally:
        root.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return asyncio.run(_amain(args))
    except asyncio.CancelledError:  # SIGTERM from the host
        return 0


if __name__ == "__main__":
    code = main()
    # Run the app's exit hooks (closing its AMQP clients), then leave without waiting for function
    # threads that may still be running (a function past its timeout, say): the interpreter would
    # otherwise join them at exit.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
