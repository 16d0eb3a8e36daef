"""Throughput of the local Service Bus emulator with the real azure-servicebus SDK.

    .venv/bin/python bench/bench_servicebus_emulator.py [--messages 20000] [--batch 500]

Prints messages/s for sending in ServiceBusMessageBatch batches (target: >= 5,000/s) and for
receiving + completing in PEEK_LOCK mode (target: >= 1,000/s), against a queue and against a
topic with two subscriptions (one with a SQL filter). Uses the aio SDK with a few senders and
receivers in parallel, each on its own connection, as a real app would: one sync client waits
for every batch's and every completion's round trip and measures the client, not the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localcloud.servicebus.launcher import spawn_servicebus

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [{"Name": "bench", "Properties": {"LockDuration": "PT5M", "MaxDeliveryCount": 10}}],
                "Topics": [
                    {
                        "Name": "bench-topic",
                        "Properties": {
                            "RequiresDuplicateDetection": True,
                            "DuplicateDetectionHistoryTimeWindow": "PT5M",
                        },
                        "Subscriptions": [
                            {"Name": "all", "Properties": {"LockDuration": "PT5M"}},
                            {
                                "Name": "failed",
                                "Properties": {"LockDuration": "PT5M"},
                                "Rules": [
                                    {
                                        "Name": "f",
                                        "Properties": {
                                            "FilterType": "Sql",
                                            "SqlFilter": {"SqlExpression": "status <> 'Success'"},
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        ],
        "Logging": {"Type": "Console"},
    }
}


def _batch_messages(first: int, count: int) -> list[ServiceBusMessage]:
    return [
        ServiceBusMessage(
            f'{{"n": {i}}}',
            message_id=f"m-{i}",
            application_properties={"status": "Success" if i % 2 else "Failed", "deviceId": f"dev-{i % 10}"},
        )
        for i in range(first, first + count)
    ]


async def _send(client: ServiceBusClient, entity: str, count: int, batch_size: int, concurrency: int) -> float:
    """`concurrency` senders (one connection each) send `count` messages in batches."""
    senders = [
        client.get_topic_sender(entity) if entity.endswith("topic") else client.get_queue_sender(entity)
        for _ in range(concurrency)
    ]
    for sender in senders:
        await sender.__aenter__()
        await sender.send_messages(ServiceBusMessage("warm-up", application_properties={"status": "Success"}))
    share = count // concurrency

    async def run(index: int, sender: ServiceBusSender) -> None:
        first = index * share
        done = 0
        while done < share:
            batch = await sender.create_message_batch()
            for message in _batch_messages(first + done, min(batch_size, share - done)):
                batch.add_message(message)
            await sender.send_messages(batch)
            done += len(batch)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(run(i, s) for i, s in enumerate(senders)))
        return time.perf_counter() - start
    finally:
        for sender in senders:
            await sender.__aexit__(None, None, None)


async def _receive(client: ServiceBusClient, source: dict[str, str], count: int, concurrency: int) -> float:
    """`concurrency` peek-lock receivers receive and complete `count` messages between them."""

    def open_receiver() -> ServiceBusReceiver:
        if "topic" in source:
            return client.get_subscription_receiver(source["topic"], source["sub"], prefetch_count=200)
        return client.get_queue_receiver(source["queue"], prefetch_count=200)

    receivers = [open_receiver() for _ in range(concurrency)]
    for receiver in receivers:
        await receiver.__aenter__()
    done = 0

    async def run(receiver: ServiceBusReceiver) -> None:
        nonlocal done
        while done < count:
            messages = await receiver.receive_messages(max_message_count=200, max_wait_time=2)
            if not messages:
                continue
            for message in messages:
                await receiver.complete_message(message)
            done += len(messages)

    try:
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(run(r) for r in receivers)), timeout=300)
        return time.perf_counter() - start
    finally:
        for receiver in receivers:
            await receiver.__aexit__(None, None, None)


async def _bench(connection_string: str, n: int, batch: int, concurrency: int) -> None:
    async with ServiceBusClient.from_connection_string(connection_string) as client:
        t = await _send(client, "bench", n, batch, concurrency)
        print(f"queue send, batches of {batch}, {concurrency} senders: {n / t:,.0f} messages/s ({n} in {t:.2f} s)")
        total = n + concurrency  # the warm-up messages too
        t = await _receive(client, {"queue": "bench"}, total, concurrency)
        rate = total / t
        print(f"queue receive+complete, {concurrency} receivers: {rate:,.0f} messages/s ({total} in {t:.2f} s)")
        t = await _send(client, "bench-topic", n, batch, concurrency)
        print(f"topic send (2 subscriptions, SQL filter): {n / t:,.0f} messages/s ({n} in {t:.2f} s)")
        t = await _receive(client, {"topic": "bench-topic", "sub": "all"}, total, concurrency)
        print(f"subscription receive+complete: {total / t:,.0f} messages/s ({total} in {t:.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="senders / receivers working in parallel")
    parser.add_argument("--persist", action="store_true", help="run the emulator with a SQLite --data-file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "Config.json"
        config.write_text(json.dumps(CONFIG), encoding="utf-8")
        data_file = Path(tmp) / "state.sqlite" if args.persist else None
        emulator = spawn_servicebus(config_path=config, key="bench-key", data_file=data_file)
        try:
            asyncio.run(_bench(emulator.connection_string, args.messages, args.batch, args.concurrency))
        finally:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
