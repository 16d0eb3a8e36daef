"""localcloud.outcome_reader against the emulator's default entities (topic c2d-outcomes, subscription all)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from localcloud.outcome_reader import OutcomeReader
from localcloud.servicebus.launcher import running_servicebus

pytestmark = pytest.mark.integration


def test_reader_keeps_properties_and_times(tmp_path: Path) -> None:
    with running_servicebus(work_dir=tmp_path) as bus:
        before = time.time()
        with ServiceBusClient.from_connection_string(bus.connection_string) as client, \
                client.get_topic_sender("c2d-outcomes") as sender:
            sender.send_messages(ServiceBusMessage(
                json.dumps({"status": "Success"}), message_id="o-1", correlation_id="m-1", subject="Success",
                application_properties={"status": "Success", "deviceId": "d1"},
            ))
        reader = OutcomeReader(bus.connection_string)
        try:
            reader.wait_for(lambda seen: len(seen) == 1, 30, "the outcome")
        finally:
            reader.close()
    [outcome] = reader.seen
    assert (outcome.message_id, outcome.correlation_id, outcome.subject) == ("o-1", "m-1", "Success")
    assert outcome.properties == {"status": "Success", "deviceId": "d1"}
    assert outcome.body == {"status": "Success"}
    assert before - 1 < outcome.enqueued_at <= outcome.received_at + 0.01  # broker and reader: one machine clock
    assert outcome.received_at <= time.time()
