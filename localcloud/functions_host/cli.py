"""`python -m localcloud host [--app-root DIR] [--port 7071] ...`: run a v1 function app locally."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localcloud.functions_host.app import AppError
from localcloud.functions_host.host import FunctionsHost, HostOptions
from localcloud.functions_host.logs import HostLog
from localcloud.functions_host.rpc import WorkerError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud host",
        description="Local Azure Functions host for Python v1 (function.json) apps.",
    )
    parser.add_argument("--app-root", type=Path, default=Path.cwd(), help="folder with host.json (default: cwd)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (loopback)")
    parser.add_argument(
        "--port", type=int, default=None,
        help="HTTP port, 0 = any free port (default: local.settings.json Host.LocalHttpPort, else 7071)",
    )  # fmt: skip
    parser.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE",
        help="app setting added to (or overriding) local.settings.json Values; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--settings-file", type=Path, action="append", default=[],
        help="JSON object of app settings (keeps secrets off the command line); repeatable",
    )  # fmt: skip
    parser.add_argument("--ready-file", type=Path, help="write a JSON status here once all functions are loaded")
    parser.add_argument(
        "--parent-pid", type=int, default=None,
        help="stop when this process is gone (test runners pass their pid so a killed run leaves no host)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="also print the worker's own debug/info logs")
    return parser.parse_args(argv)


def _settings(files: list[Path], pairs: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise AppError(f"cannot read settings file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise AppError(f"settings file {path} must hold a JSON object")
        result.update({str(k): str(v) for k, v in data.items()})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise AppError(f"--setting expects NAME=VALUE, got '{pair}'")
        result[name] = value
    return result


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"host: parent process {pid} is gone; stopping", file=sys.stderr, flush=True)
            stop.set()
            return
        await asyncio.sleep(1.0)


LoopErrorHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]


def _loop_error_handler(log: HostLog, stop: asyncio.Event) -> LoopErrorHandler:
    """Route errors nobody awaited into the host log, with their traceback, as the real host does.

    Once stopping, a cancellation is expected (gRPC cancels the calls still open) and not worth a line."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if stop.is_set() and isinstance(exc, asyncio.CancelledError):
            return
        text = str(context.get("message") or "unhandled error in the host's event loop")
        if isinstance(exc, BaseException):
            text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
        log.write(f"Host error: {text}")

    return handle


async def _run(options: HostOptions, parent_pid: int | None) -> int:
    host = FunctionsHost(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_error_handler(host.log, stop))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        await host.start()
        await stop.wait()
    finally:
        stop.set()
        if watcher is not None:
            watcher.cancel()
        await host.stop()
    return 0


def _loopback(host: str) -> str:
    """This is a development host: it never listens beyond the machine."""
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        loopback = False
    if not loopback:
        raise AppError(f"--host must be a loopback address, got '{host}'")
    return host


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        _loopback(args.host)
        options = HostOptions(
            app_root=args.app_root,
            host=args.host,
            port=args.port,
            extra_settings=_settings(args.settings_file, args.setting),
            ready_file=args.ready_file,
            verbose=args.verbose,
        )
        code = asyncio.run(_run(options, args.parent_pid))
        HostLog().write("Host stopped.")  # after the loop closed, so it is the last line of a clean stop
        return code
    except (AppError, WorkerError) as exc:
        print(f"host: {exc}", file=sys.stderr, flush=True)
        return 1
