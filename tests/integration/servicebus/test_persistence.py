"""With --data-file, a restarted emulator still holds every message, dead letter, deferral and
duplicate-detection entry (default config: topic c2d-outcomes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from localcloud_testing.servicebus import receive

from localcloud.servicebus.launcher import running_servicebus

pytestmark = pytest.mark.integration


def _message(mid: str, status: str) -> ServiceBusMessage:
    return ServiceBusMessage(mid, message_id=mid, application_properties={"status": status})


def test_restart_keeps_messages(tmp_path: Path) -> None:
    data_file = tmp_path / "servicebus.sqlite"
    with (
        running_servicebus(data_file=data_file) as first,
        ServiceBusClient.from_connection_string(first.connection_string) as client,
    ):
        with client.get_topic_sender("c2d-outcomes") as sender:
            sender.send_messages([_message(f"p-{i}", "Failed" if i % 2 else "Success") for i in range(4)])
        with client.get_subscription_receiver("c2d-outcomes", "failed") as receiver:
            one, three = sorted(receive(receiver, 2), key=lambda m: m.message_id)
            receiver.dead_letter_message(one, reason="kept", error_description="across restarts")
            receiver.defer_message(three)
            deferred_seq = three.sequence_number
        with client.get_subscription_receiver("c2d-outcomes", "succeeded") as receiver:
            zero = [m for m in receive(receiver, 2) if m.message_id == "p-0"]
            receiver.complete_message(zero[0])  # p-2 stays locked: a restart releases it
        last_seq = max(m.sequence_number for m in (one, three))

    with (
        running_servicebus(data_file=data_file) as second,
        ServiceBusClient.from_connection_string(second.connection_string) as client,
    ):
        with client.get_topic_sender("c2d-outcomes") as sender:
            sender.send_messages(_message("p-1", "Failed"))  # a duplicate, still inside the window
            sender.send_messages(_message("p-new", "Success"))
        with client.get_subscription_receiver("c2d-outcomes", "all") as receiver:
            everything = receive(receiver, 5)
            everything += receive(receiver, 1, deadline_s=1)
            for m in everything:
                receiver.complete_message(m)
        with client.get_subscription_receiver("c2d-outcomes", "succeeded") as receiver:
            succeeded = receive(receiver, 2)
            for m in succeeded:
                receiver.complete_message(m)
        with client.get_subscription_receiver("c2d-outcomes", "failed") as receiver:
            [deferred] = receiver.receive_deferred_messages([deferred_seq])
            receiver.complete_message(deferred)
        with client.get_subscription_receiver(
            "c2d-outcomes", "failed", sub_queue=ServiceBusSubQueue.DEAD_LETTER
        ) as dlq:
            [dead] = receive(dlq, 1)
            dlq.complete_message(dead)

    assert sorted(m.message_id for m in everything) == ["p-0", "p-1", "p-2", "p-3", "p-new"]
    assert sorted(m.message_id for m in succeeded) == ["p-2", "p-new"]
    assert deferred.message_id == "p-3"
    assert (dead.message_id, dead.dead_letter_reason, dead.dead_letter_error_description) == (
        "p-1",
        "kept",
        "across restarts",
    )
    new = next(m for m in everything if m.message_id == "p-new")
    assert new.sequence_number > last_seq
