"""AMQP over WebSockets (uamqp AmqpOverWebsocket) and MQTT over WebSockets (azure-iot-device
websockets=True), both served on the emulator's HTTPS port."""

from __future__ import annotations

import queue
from typing import Any

import pytest
import uamqp
from azure.iot.device import IoTHubDeviceClient, ProxyOptions
from azure.iot.hub import IoTHubRegistryManager
from uamqp import TransportType

from localcloud.iothub.launcher import IoTHubProcess
from localcloud.iothub.service_client import feedback_records, receive_feedback, service_auth

pytestmark = pytest.mark.integration


def test_registry_manager_send_over_amqp_websockets(hub: IoTHubProcess) -> None:
    rm = IoTHubRegistryManager.from_connection_string(
        hub.service_connection_string, transport_type=TransportType.AmqpOverWebsocket
    )
    try:
        rm.send_c2d_message("device1", "over ws", {"messageId": "ws-1", "iothub-ack": "full"})
    finally:
        rm.amqp_svc_client.disconnect_sync()
    assert [m["messageId"] for m in hub.admin.state()["devices"]["device1"]] == ["ws-1"]


def test_feedback_over_amqp_websockets(hub: IoTHubProcess) -> None:
    rm = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    try:
        rm.send_c2d_message("device2", "x", {"messageId": "ws-fb", "iothub-ack": "full"})
    finally:
        rm.amqp_svc_client.disconnect_sync()
    rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("device2")
    receiver = uamqp.ReceiveClient(
        f"amqps://{hub.hostname}/messages/servicebound/feedback",
        auth=service_auth(hub, transport_type=TransportType.AmqpOverWebsocket),
        auto_complete=False,
    )
    try:
        (msg,) = receive_feedback(receiver, want_records=1)
    finally:
        receiver.close()
    assert [(r["originalMessageId"], r["statusCode"]) for r in feedback_records(msg)] == [("ws-fb", "Purged")]


def test_device_receives_over_mqtt_websockets(hub: IoTHubProcess) -> None:
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device2", "mqtt over ws", {"messageId": "ws-2", "color": "green"})
    finally:
        rm.amqp_svc_client.disconnect_sync()
    client = IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string("device2"),
        websockets=True,  # dials :443; the CONNECT proxy maps it to the HTTPS port
        proxy_options=ProxyOptions(**hub.device_proxy_options()),
        server_verification_cert=hub.ca_cert.read_text(),
        connection_retry=False,
    )
    received: queue.Queue[Any] = queue.Queue()
    client.on_message_received = received.put
    client.connect()
    try:
        msg = received.get(timeout=20)
    finally:
        client.shutdown()
    assert (msg.message_id, msg.data, msg.custom_properties) == ("ws-2", b"mqtt over ws", {"color": "green"})
