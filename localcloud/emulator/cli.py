"""The command line every emulator shares: flags, logging, the banner, READY, and running until a signal.

    python -m localcloud <iothub|servicebus> [--config FILE] [--host 127.0.0.1] [--state-dir DIR]
        [--<listener>-port N ...] [--ready-file FILE] [--log-level LEVEL] [service flags]

A port of 0 binds a free port (the READY line has the real one); -1 turns an optional listener off.
Everything printed passes through `redact_keys`: keys never reach a terminal or a log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from localcloud.paths import STATE_DIR
from localcloud.redact import redact_keys

from .ready import ready_line

DEFAULT_HOST = "127.0.0.1"


class ServedEmulator(Protocol):
    """An emulator that runs in this process (`IoTHubEmulator`, `ServiceBusEmulator`)."""

    service: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def bound_ports(self) -> dict[str, int]: ...

    def connection_string(self) -> str: ...

    def banner(self) -> list[str]: ...


def add_common_arguments(parser: argparse.ArgumentParser, ports: Mapping[str, int | None], config_help: str) -> None:
    """The flags of every emulator; `ports`: listener name -> default port (None: from the config file)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--host", help=f"loopback address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--state-dir", default=str(STATE_DIR), help="where the local CA and certificate live")
    for name, default in ports.items():
        flag = name.replace("_", "-")
        shown = "from the config" if default is None else ("off" if default < 0 else str(default))
        parser.add_argument(
            f"--{flag}-port", type=int, default=default, help=f"{flag} port (0: a free one; default {shown})"
        )
    parser.add_argument(
        "--enforce-token-expiry",
        action=argparse.BooleanOptionalAction,
        help="act when a connection's CBS token expires without renewal (default: on)",
    )
    parser.add_argument(
        "--max-token-lifetime-s", type=float, help="treat every CBS token as expiring this long after put-token"
    )
    parser.add_argument("--ready-file", help="also write the READY JSON here")
    parser.add_argument("--log-level", default=os.environ.get("LOCALCLOUD_LOG_LEVEL", "WARNING"))


def token_limits(args: argparse.Namespace) -> dict[str, object]:
    """The token flags given on the command line, as limit overrides."""
    given = {"enforce_token_expiry": args.enforce_token_expiry, "max_token_lifetime_s": args.max_token_lifetime_s}
    return {name: value for name, value in given.items() if value is not None}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _write_ready_file(path: str, line: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(line.removeprefix("READY "))
    os.replace(tmp, path)


async def serve_until_signalled(emulator: ServedEmulator, ready_file: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before READY: a stop right after it must be graceful
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    try:
        for line in emulator.banner():
            print(redact_keys(line), flush=True)
        ready = ready_line(emulator.service, emulator.bound_ports(), emulator.connection_string())
        if ready_file:
            _write_ready_file(ready_file, ready)
        print(ready, flush=True)
        await stop.wait()
    finally:
        await emulator.stop()


def run(emulator: ServedEmulator, ready_file: str | None) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_until_signalled(emulator, ready_file))
    return 0
