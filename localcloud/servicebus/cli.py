"""`python -m localcloud servicebus [--amqp-port 5672] [--amqps-port N] [--admin-port 5673] [...]`:
run the Service Bus emulator until SIGINT/SIGTERM.

Flags of every emulator (see `localcloud.emulator.cli`), plus the key (`--key`, or env
SERVICEBUS_EMULATOR_KEY so that it stays off the command line), persistence and timers. The READY
line reports every bound port; its connection string (plain AMQP) shows the key as `***`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from localcloud.emulator import cli as emulator_cli

from .config import ConfigError, load_config
from .emulator import EmulatorSettings, Limits, ServiceBusEmulator
from .tokens import DEFAULT_KEY, DEFAULT_KEY_NAME


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localcloud servicebus", description=__doc__)
    emulator_cli.add_common_arguments(
        p, {"amqp": 5672, "amqps": -1, "admin": 5673}, "Config.json (Microsoft's emulator shape; default: c2d-outcomes)"
    )
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
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    host = args.host or emulator_cli.DEFAULT_HOST
    if not emulator_cli.is_loopback(host):
        print(f"servicebus: the host must be loopback (dev-only emulator), not {host!r}", file=sys.stderr)
        return 2
    emulator_cli.configure_logging(args.log_level)
    try:
        config = load_config(args.config or os.environ.get("SERVICEBUS_EMULATOR_CONFIG"))
    except ConfigError as exc:
        print(f"servicebus: {exc}", file=sys.stderr)
        return 2
    settings = EmulatorSettings(
        host=host,
        amqp_port=args.amqp_port,
        amqps_port=args.amqps_port,
        admin_port=args.admin_port,
        key_name=args.key_name,
        key=args.key,
        config=config,
        tick_interval=args.tick_interval,
        data_file=Path(args.data_file) if args.data_file else None,
        state_dir=Path(args.state_dir),
        limits=Limits(**emulator_cli.token_limits(args)),  # type: ignore[arg-type]
    )
    return emulator_cli.run(ServiceBusEmulator(settings), args.ready_file)
