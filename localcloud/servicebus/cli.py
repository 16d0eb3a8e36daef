"""`python -m localcloud servicebus [options]`: run the Service Bus emulator until SIGINT/SIGTERM.

When ready it prints one line `READY {"amqpPort": ..., "adminPort": ..., "connectionString": ...}`
on stdout (ports may be given as 0 to pick free ones). The key in that connection string is shown as
`***`, even the emulator's well-known default: the caller knows the key it chose.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
from pathlib import Path

from localcloud.redact import redact_keys

from .auth import DEFAULT_KEY, DEFAULT_KEY_NAME
from .config import ConfigError, load_config
from .server import EmulatorSettings, ServiceBusEmulator


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localcloud servicebus", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--port", type=int, default=5672, help="AMQP port (0: pick a free one)")
    p.add_argument("--admin-port", type=int, default=5673, help="admin HTTP port (0: free one, -1: off)")
    p.add_argument("--config", default=os.environ.get("SERVICEBUS_EMULATOR_CONFIG"), help="Config.json path")
    p.add_argument("--key-name", default=DEFAULT_KEY_NAME)
    p.add_argument(
        "--key",
        default=os.environ.get("SERVICEBUS_EMULATOR_KEY", DEFAULT_KEY),
        help="shared access key (default: env SERVICEBUS_EMULATOR_KEY or the emulator's well-known value)",
    )
    p.add_argument(
        "--data-file",
        default=os.environ.get("SERVICEBUS_EMULATOR_DATA"),
        help="SQLite file that keeps messages across restarts (default: in memory only)",
    )
    p.add_argument("--tick-interval", type=float, default=0.05, help="seconds between lock/schedule checks")
    p.add_argument("--log-level", default="INFO")
    return p


async def _run(settings: EmulatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before READY: a stop right after it must be graceful
        loop.add_signal_handler(sig, stop.set)
    emulator = ServiceBusEmulator(settings)
    await emulator.start()
    try:
        ready = {
            "amqpPort": emulator.amqp_port,
            "adminPort": emulator.admin_port,
            "connectionString": redact_keys(emulator.connection_string()),  # the caller knows its key
        }
        print("READY " + json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not _is_loopback(args.host):
        print(f"servicebus: --host must be a loopback address (dev-only emulator), not {args.host!r}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"servicebus: {exc}", file=sys.stderr)
        return 2
    settings = EmulatorSettings(
        host=args.host,
        amqp_port=args.port,
        admin_port=args.admin_port,
        key_name=args.key_name,
        key=args.key,
        config=config,
        tick_interval=args.tick_interval,
        data_file=Path(args.data_file) if args.data_file else None,
    )
    asyncio.run(_run(settings))
    return 0
