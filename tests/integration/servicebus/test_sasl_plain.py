"""SASL PLAIN on the Service Bus emulator, as Service Bus takes it: the key name and the key itself
(python-qpid-proton as the client, since the Azure SDKs use CBS)."""

from __future__ import annotations

import pytest
from proton import ConnectionException, Message
from proton.utils import BlockingConnection

from localcloud.servicebus.launcher import ServiceBusProcess
from localcloud.servicebus.tokens import DEFAULT_KEY_NAME

pytestmark = pytest.mark.integration


def connect(bus: ServiceBusProcess, password: str) -> BlockingConnection:
    return BlockingConnection(
        f"amqp://127.0.0.1:{bus.amqp_port}", user=DEFAULT_KEY_NAME, password=password, allowed_mechs="PLAIN", timeout=20
    )


def test_plain_with_the_key_authorises_every_entity(servicebus: ServiceBusProcess) -> None:
    conn = connect(servicebus, servicebus.key)
    try:
        conn.create_sender("plain").send(Message(id="plain-1", body="over PLAIN"))
        receiver = conn.create_receiver("plain")
        message = receiver.receive(timeout=20)
        receiver.accept()
    finally:
        conn.close()
    assert (message.id, message.body) == ("plain-1", "over PLAIN")


def test_plain_with_a_wrong_key_fails_the_sasl_exchange(servicebus: ServiceBusProcess) -> None:
    refused_before = servicebus.admin.state()["amqp"]["tokens"]["accepted"]
    with pytest.raises(ConnectionException, match=r"(?i)auth"):
        connect(servicebus, "not-the-key")
    assert servicebus.admin.state()["amqp"]["tokens"]["accepted"] == refused_before
