"""The AMQPS listener: azure-servicebus over TLS on a non-default port, with the local CA, exactly as
localcloud/README.md tells ("Service Bus over TLS"): a connection string without a port or
UseDevelopmentEmulator, `custom_endpoint_address=sb://localhost:<amqps port>`, `transport_type=Amqp`,
and trust through `connection_verify` (uamqp also reads SSL_CERT_FILE)."""

from __future__ import annotations

import socket
import ssl

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, TransportType
from localcloud_testing.servicebus import receive

from localcloud.servicebus.launcher import ServiceBusProcess

pytestmark = pytest.mark.integration


def test_amqps_port_speaks_tls_with_a_localhost_certificate(servicebus: ServiceBusProcess) -> None:
    assert servicebus.certs is not None and servicebus.amqps_port != servicebus.amqp_port
    context = ssl.create_default_context(cafile=str(servicebus.certs.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", servicebus.amqps_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"AMQP\x03\x01\x00\x00")
        assert tls.recv(8) == b"AMQP\x03\x01\x00\x00"  # the SASL layer answers inside TLS
    with socket.create_connection(("127.0.0.1", servicebus.amqp_port), timeout=10) as raw:  # noqa: SIM117
        with pytest.raises(ssl.SSLError), context.wrap_socket(raw, server_hostname="localhost"):
            pass  # the plain listener stays plain


def test_sync_client_with_uamqp_transport_sends_a_batch_over_tls(servicebus: ServiceBusProcess) -> None:
    kwargs = servicebus.tls_client_kwargs(uamqp_transport=True)
    assert kwargs["custom_endpoint_address"] == f"sb://localhost:{servicebus.amqps_port}"
    assert "UseDevelopmentEmulator" not in servicebus.tls_connection_string
    ids = [f"tls-{i}" for i in range(5)]
    with ServiceBusClient.from_connection_string(servicebus.tls_connection_string, **kwargs) as client:
        with client.get_topic_sender("tls-topic") as sender:
            batch = sender.create_message_batch()
            for i, message_id in enumerate(ids):
                status = "Failed" if i % 2 else "Success"
                batch.add_message(ServiceBusMessage(message_id, message_id=message_id, application_properties={"status": status}))
            sender.send_messages(batch)
        with client.get_subscription_receiver("tls-topic", "all") as receiver:
            got = receive(receiver, len(ids))
            for message in got:
                receiver.complete_message(message)
        with client.get_subscription_receiver("tls-topic", "failed") as receiver:
            failed = receive(receiver, 2)
            for message in failed:
                receiver.complete_message(message)
    assert sorted(str(m.message_id) for m in got) == ids
    assert sorted(str(m.message_id) for m in failed) == ["tls-1", "tls-3"]


def test_default_pyamqp_transport_over_tls(servicebus: ServiceBusProcess) -> None:
    kwargs = servicebus.tls_client_kwargs()
    assert kwargs["transport_type"] is TransportType.Amqp  # without it the SDK takes WebSockets for a custom endpoint
    with ServiceBusClient.from_connection_string(servicebus.tls_connection_string, **kwargs) as client:
        with client.get_queue_sender("tls") as sender:
            sender.send_messages(ServiceBusMessage("over tls", message_id="tls-pyamqp"))
        with client.get_queue_receiver("tls") as receiver:
            [message] = receive(receiver, 1)
            receiver.complete_message(message)
    assert str(message) == "over tls"


def test_tls_client_with_the_wrong_key_is_refused(servicebus: ServiceBusProcess) -> None:
    """The emulator refuses the token (401); with a custom endpoint the SDK reports any refused
    authentication as ServiceBusConnectionError ("for uamqp parity": a wrong endpoint looks the same)."""
    from azure.servicebus.exceptions import ServiceBusConnectionError

    refused_before = servicebus.admin.state()["amqp"]["tokens"]["refused"]
    wrong = servicebus.tls_connection_string.replace(servicebus.key, "not-the-key")
    with (
        ServiceBusClient.from_connection_string(wrong, retry_total=0, **servicebus.tls_client_kwargs()) as client,
        pytest.raises(ServiceBusConnectionError),
        client.get_queue_sender("tls") as sender,
    ):
        sender.send_messages(ServiceBusMessage("x"))
    assert servicebus.admin.state()["amqp"]["tokens"]["refused"] > refused_before
