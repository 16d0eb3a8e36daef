"""The emulator's Python API in-process (same event loop as the aio SDK): start/stop on free ports,
entity state, and connection faults."""

from __future__ import annotations

import asyncio

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

from localcloud.servicebus.config import parse_config
from localcloud.servicebus.emulator import EmulatorSettings, ServiceBusEmulator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONFIG = {
    "UserConfig": {
        "Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "inproc"}], "Topics": []}],
        "Logging": {"Type": "Console"},
    }
}


async def test_in_process_emulator_with_faults() -> None:
    emulator = ServiceBusEmulator(
        EmulatorSettings(amqp_port=0, admin_port=-1, key="in-process-key", config=parse_config(CONFIG))
    )
    await emulator.start()
    try:
        assert emulator.amqp_port > 0
        async with ServiceBusClient.from_connection_string(
            emulator.connection_string(), retry_total=10, retry_backoff_factor=0.2, retry_backoff_max=1
        ) as client:
            async with client.get_queue_sender("inproc") as sender:
                await sender.send_messages(ServiceBusMessage("one", message_id="ip-1"))
                assert emulator.drop_connections() == 1
                await sender.send_messages(ServiceBusMessage("two", message_id="ip-2"))  # reconnects
                emulator.refuse_connections(1.0)
                emulator.drop_connections()
                await sender.send_messages(ServiceBusMessage("three", message_id="ip-3"))  # retries past it
            assert emulator.namespace.snapshot()["queues"]["inproc"]["available"] == 3
            async with client.get_queue_receiver("inproc") as receiver:
                got: list = []
                for _ in range(10):
                    got += await receiver.receive_messages(max_message_count=3, max_wait_time=1)
                    if len(got) == 3:
                        break
                for m in got:
                    await receiver.complete_message(m)
        assert sorted(m.message_id for m in got) == ["ip-1", "ip-2", "ip-3"]
        await asyncio.sleep(0)
        assert emulator.namespace.snapshot()["queues"]["inproc"]["available"] == 0
    finally:
        await emulator.stop()
