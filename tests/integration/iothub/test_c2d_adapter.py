"""The lead's c2d.iothub adapter against this emulator, for what tests/integration/c2d does not cover:
tracking ids on typed errors, pipelining under slow dispositions, feedback dead-lettering, and the full
loop adapter -> MQTT device (azure-iot-device) -> feedback through the adapter."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, ProxyOptions

from c2d.config import IoTHubSettings
from c2d.errors import DeviceNotFound
from c2d.iothub import C2DSender, FeedbackReceiver
from c2d.messages import C2DMessage
from localcloud.iothub.launcher import IoTHubProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(hub: IoTHubProcess) -> IoTHubSettings:
    return IoTHubSettings.from_connection_string(
        hub.service_connection_string, amqp_port=hub.ports.amqp, send_timeout_s=20.0
    )


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def feedback_batches(receiver: FeedbackReceiver, timeout_s: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if batch := receiver.receive(10, 0.5):
            return batch
    raise AssertionError("no feedback arrived")


def test_typed_error_carries_the_hub_tracking_id(settings: IoTHubSettings) -> None:
    with C2DSender(settings) as sender:
        (result,) = sender.send_many([C2DMessage(device_id="ghost", message_id="g", body=b"x")])
    assert isinstance(result.error, DeviceNotFound)
    assert result.error.tracking_id  # from the rejection's com.microsoft:tracking-id


def test_pipelined_sends_with_slow_dispositions_all_succeed(hub: IoTHubProcess, settings: IoTHubSettings) -> None:
    hub.admin.disposition_delay(100)
    batch = [C2DMessage(device_id="device1", message_id=f"slow-{i}", body=b"x") for i in range(30)]
    with C2DSender(settings) as sender:
        results = sender.send_many(batch)
    assert [r.status for r in results] == ["Sent"] * 30
    assert [m["messageId"] for m in hub.admin.state()["devices"]["device1"]] == [f"slow-{i}" for i in range(30)]


def test_feedback_rejected_by_the_app_is_dead_lettered(hub: IoTHubProcess, settings: IoTHubSettings) -> None:
    with C2DSender(settings) as sender:
        sender.send_many([C2DMessage(device_id="device2", message_id="dl-1", body=b"x", ack="full")])
    rm_purge(hub, "device2")
    with FeedbackReceiver(settings) as receiver:
        (feedback,) = feedback_batches(receiver)
        feedback.reject("cannot process")
        assert receiver.receive(10, 1.0) == []
    state = wait_for(lambda: (s := hub.admin.state())["stats"]["feedback_dead_lettered"] == 1 and s)
    assert state["feedback"] == []


def rm_purge(hub: IoTHubProcess, device_id: str) -> None:
    from azure.iot.hub import IoTHubRegistryManager

    rm = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue(device_id)


def test_adapter_to_mqtt_device_and_back_as_feedback(hub: IoTHubProcess, settings: IoTHubSettings) -> None:
    msg = C2DMessage(
        device_id="device1",
        message_id="loop-1",
        body=b'{"led": 1}',
        ack="positive",
        correlation_id="corr-9",
        content_type="application/json",
        properties={"zone": "b/2"},
    )
    with C2DSender(settings) as sender:
        assert sender.send_many([msg])[0].sent
    client = IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string("device1"),
        proxy_options=ProxyOptions(**hub.device_proxy_options()),
        server_verification_cert=hub.ca_cert.read_text(),
        connection_retry=False,
    )
    received: queue.Queue[Any] = queue.Queue()
    client.on_message_received = received.put
    client.connect()
    try:
        got = received.get(timeout=20)
    finally:
        client.shutdown()
    assert (got.message_id, got.correlation_id, got.content_type, got.data) == (
        "loop-1",
        "corr-9",
        "application/json",
        b'{"led": 1}',
    )
    assert got.custom_properties == {"zone": "b/2"}
    with FeedbackReceiver(settings) as receiver:
        (feedback,) = feedback_batches(receiver)
        assert b'"originalMessageId": "loop-1"' in feedback.body and b'"statusCode": "Success"' in feedback.body
        feedback.accept()
    wait_for(lambda: hub.admin.state()["stats"]["feedback_completed"] == 1)
