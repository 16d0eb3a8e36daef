"""`python -m localcloud iothub [--config FILE] [--amqp-port N] ... [flags of every emulator]`.

Prints the hub's connection strings (keys masked), the SSL_CERT_FILE hint, then the READY line with
the bound ports (see `localcloud.emulator.cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from localcloud.certs import ensure_certs
from localcloud.emulator import cli as emulator_cli

from . import config as config_mod
from .emulator import IoTHubEmulator

LISTENERS = ("amqp", "mqtt", "https", "admin", "connect_proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localcloud iothub", description=__doc__)
    emulator_cli.add_common_arguments(
        parser,
        dict.fromkeys(LISTENERS),
        "JSON config file (default: hub localhub, policy iothubowner, devices device1/device2)",
    )
    return parser


def _config(args: argparse.Namespace) -> config_mod.HubConfig:
    cfg = config_mod.load(args.config)
    ports = {name: getattr(args, f"{name}_port") for name in LISTENERS}
    overrides = {name: port for name, port in ports.items() if port is not None}
    return dataclasses.replace(
        cfg,
        bind_host=args.host or cfg.bind_host,
        ports=dataclasses.replace(cfg.ports, **overrides),
        limits=dataclasses.replace(cfg.limits, **emulator_cli.token_limits(args)),
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    emulator_cli.configure_logging(args.log_level)
    try:
        cfg = _config(args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"iothub: bad config: {exc}", file=sys.stderr)
        return 2
    if not emulator_cli.is_loopback(cfg.bind_host):
        print(f"iothub: the host must be loopback (dev-only emulator), not {cfg.bind_host!r}", file=sys.stderr)
        return 2
    return emulator_cli.run(IoTHubEmulator(cfg, ensure_certs(args.state_dir)), args.ready_file)
