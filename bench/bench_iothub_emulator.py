"""Throughput of the local IoT Hub emulator's AMQP C2D endpoint with the real uamqp client.

    .venv/bin/python bench/bench_iothub_emulator.py [--messages 20000] [--devices 100] [--rounds 3]

One emulator process (subprocess, TLS, free ports); one uamqp SendClient (one connection, one link)
with every message queued first and one send_all_messages(), so transfers are pipelined and the
emulator settles each one (accepted). Target: >= 2,000 messages/s. Prints messages/s per round
and the best round; exits 1 if any message was not accepted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uamqp
from uamqp.errors import ErrorPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.iothub.service_client import service_auth


def one_round(hub: IoTHubProcess, messages: int, devices: list[str]) -> tuple[float, int]:
    client = uamqp.SendClient(
        f"amqps://{hub.hostname}/messages/devicebound",
        auth=service_auth(hub),
        error_policy=ErrorPolicy(max_retries=0),
    )
    try:
        client.open()
        while not client.client_ready():
            client.do_work()
        for i in range(messages):
            device = devices[i % len(devices)]
            props = uamqp.message.MessageProperties(
                message_id=str(uuid.uuid4()), to=f"/devices/{device}/messages/devicebound"
            )
            client.queue_message(
                uamqp.Message(b'{"cmd": "ping"}', properties=props, application_properties={"iothub-ack": "none"})
            )
        start = time.perf_counter()
        results = client.send_all_messages(close_on_done=False)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    failed = sum(1 for r in results if r != uamqp.constants.MessageState.SendComplete)
    return messages / elapsed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    devices = [f"bench-{i:04d}" for i in range(args.devices)]
    extra = {"devices": [{"device_id": d} for d in devices]}
    limits = {"queue_depth": args.messages * args.rounds, "feedback_interval_s": 1.0}
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_iothub(Path(tmp), limits=limits, extra_config=extra) as hub,
        hub.use_in_process(),
    ):
        rates = []
        for n in range(1, args.rounds + 1):
            rate, failed = one_round(hub, args.messages, devices)
            print(
                f"round {n}: {args.messages} messages pipelined on one link: {rate:,.0f} messages/s"
                + (f", {failed} NOT accepted" if failed else "")
            )
            if failed:
                return 1
            rates.append(rate)
            hub.admin.reset()
    print(f"best: {max(rates):,.0f} messages/s (target >= 2,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
