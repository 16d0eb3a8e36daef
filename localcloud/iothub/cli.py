"""`python -m localcloud iothub [--config FILE] [--state-dir DIR] [--amqp-port N] ...`.

Prints the connection strings it serves, the SSL_CERT_FILE hint, then one JSON line
`{"ready": true, "ports": {...}}` (also written to --ready-file) once every endpoint listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path

from ..certs import DEFAULT_STATE_DIR, ensure_certs
from . import config as config_mod
from .app import Emulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localcloud iothub", description=__doc__)
    p.add_argument("--config", help="JSON config file (defaults: hub localhub, policy iothubowner, device1/2)")
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where certificates live")
    for name in ("amqp", "mqtt", "https", "admin", "connect-proxy"):
        p.add_argument(f"--{name}-port", type=int, help=f"{name} port (0 = any free port)")
    p.add_argument("--ready-file", help="write the ready JSON (actual ports) here")
    p.add_argument("--log-level", default=os.environ.get("LOCALCLOUD_LOG_LEVEL", "WARNING"))
    return p


def _apply_ports(cfg: config_mod.HubConfig, args: argparse.Namespace) -> config_mod.HubConfig:
    overrides = {
        field: value
        for field, value in (
            ("amqp", args.amqp_port),
            ("mqtt", args.mqtt_port),
            ("https", args.https_port),
            ("admin", args.admin_port),
            ("connect_proxy", args.connect_proxy_port),
        )
        if value is not None
    }
    return dataclasses.replace(cfg, ports=dataclasses.replace(cfg.ports, **overrides))


def _banner(emulator: Emulator) -> str:
    cfg = emulator.config
    ports = emulator.ports
    lines = [
        f"IoT Hub emulator '{cfg.hub_name}' on {cfg.bind_host}: AMQPS {ports.amqp}, MQTTS {ports.mqtt}, "
        f"HTTPS {ports.https}, admin http://{cfg.bind_host}:{ports.admin}/admin/state, "
        f"CONNECT proxy {ports.connect_proxy}",
        f"service: {cfg.service_connection_string(cfg.policies[0].name)}",
    ]
    lines += [f"device:  {cfg.device_connection_string(d.device_id, d.primary_key)}" for d in cfg.devices]
    lines.append(emulator.certs.ssl_cert_file_hint())
    if ports.amqp != 5671:
        lines.append(f"non-default AMQP port: set uamqp.constants.DEFAULT_AMQPS_PORT = {ports.amqp} (see README)")
    return "\n".join(lines)


async def _run(emulator: Emulator, ready_file: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    try:
        print(_banner(emulator), flush=True)
        ready = json.dumps({"ready": True, "ports": dataclasses.asdict(emulator.ports)})
        if ready_file:
            tmp = Path(ready_file + ".tmp")
            tmp.write_text(ready)
            os.replace(tmp, ready_file)
        print(ready, flush=True)
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = _apply_ports(config_mod.load(args.config), args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"iothub: bad config: {exc}", file=sys.stderr)
        return 2
    certs = ensure_certs(args.state_dir)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(Emulator(cfg, certs), args.ready_file))
    return 0
