"""The issue's end-to-end scenarios, through HTTP, Storage queues, devices and the outcome topic."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.iot.device import IoTHubDeviceClient, ProxyOptions
from azure.iot.hub import IoTHubRegistryManager
from azure.storage.queue import QueueClient
from c2d_testing.devices import device_https
from c2d_testing.localcloud import FAN_OUT_DEVICES, wait_until

from localcloud.outcome_reader import OutcomeReader

pytestmark = pytest.mark.e2e


@pytest.fixture
def outcomes(cloud) -> Iterator[OutcomeReader]:
    reader = OutcomeReader(cloud.bus.connection_string)
    reader.poll(0.2)  # forget what earlier tests left
    reader.seen.clear()
    try:
        yield reader
    finally:
        reader.close()


def status_of(outcomes: OutcomeReader, message_id: str, timeout_s: float = 40) -> str:
    outcomes.wait_for(lambda seen: any(o.correlation_id == message_id for o in seen), timeout_s, f"outcome of {message_id}")
    (outcome,) = outcomes.for_message(message_id)
    return outcome.subject


def test_http_send_device_completes_success_outcome(cloud, outcomes) -> None:
    received: list = []
    proxy = cloud.hub.device_proxy_options()
    device = IoTHubDeviceClient.create_from_connection_string(
        cloud.hub.device_connection_string("mqtt-1"), proxy_options=ProxyOptions(**proxy) if proxy else None
    )
    device.on_message_received = received.append
    device.connect()
    try:
        status, _, body = cloud.post(
            "/api/devices/mqtt-1/messages",
            {"payload": {"cmd": "on"}, "correlationId": "job-1", "properties": {"priority": "high"}},
        )
        assert status == 202, body
        wait_until(lambda: received, 30, "the device to receive the message")
    finally:
        device.shutdown()

    (message,) = received
    assert message.message_id == body["messageId"] and message.correlation_id == "job-1"
    assert message.custom_properties["priority"] == "high"
    assert message.data == b'{"cmd":"on"}'
    assert status_of(outcomes, body["messageId"]) == "Success"
    (outcome,) = outcomes.for_message(body["messageId"])
    assert outcome.properties["deviceId"] == "mqtt-1" and outcome.properties["status"] == "Success"
    assert outcome.body["originalMessageId"] == body["messageId"]


def test_ttl_expiry_with_no_device_online(cloud, outcomes) -> None:
    if cloud.hub.admin is None:
        pytest.skip("needs the emulator's clock: a real hub would take the full 60 s TTL and then some")
    status, _, body = cloud.post("/api/devices/expire-1/messages", {"payload": "late", "ttlSeconds": 60})
    assert status == 202
    cloud.hub.admin.advance_clock(61)
    assert status_of(outcomes, body["messageId"]) == "Expired"


def test_https_device_rejects_and_abandons(cloud, outcomes) -> None:
    _, _, rejected = cloud.post("/api/devices/https-1/messages", {"payload": 1, "ack": "negative"})
    _, _, abandoned = cloud.post("/api/devices/https-2/messages", {"payload": 2, "ack": "negative"})
    assert device_https(cloud.hub, "https-1", "reject") == 0
    assert device_https(cloud.hub, "https-2", "abandon", count=cloud.max_delivery_count) == 0

    assert status_of(outcomes, rejected["messageId"]) == "Rejected"
    assert status_of(outcomes, abandoned["messageId"]) == "DeliveryCountExceeded"


def test_purge_gives_purged(cloud, outcomes) -> None:
    _, _, body = cloud.post("/api/devices/purge-1/messages", {"payload": "x"})
    registry = IoTHubRegistryManager.from_connection_string(cloud.hub.registry_connection_string)
    registry.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("purge-1")
    assert status_of(outcomes, body["messageId"]) == "Purged"


def test_unknown_device_and_invalid_body_send_nothing(cloud, outcomes) -> None:
    before = cloud.hub.admin.state()["stats"]["sent"] if cloud.hub.admin else None
    status, _, body = cloud.post("/api/devices/ghost/messages", {"payload": 1})
    assert status == 404 and body["error"]["code"] == "DeviceNotFound"
    status, _, body = cloud.post("/api/devices/https-3/messages", {"payload": 1, "ttlSeconds": 5, "colour": "red"})
    assert status == 400
    assert {d["field"] for d in body["error"]["details"]} == {"ttlSeconds", "colour"}
    status, _, _ = cloud.post("/api/devices/https-3/messages", {"payload": 1}, key=None)
    assert status == 401
    if cloud.hub.admin:
        assert cloud.hub.admin.state()["stats"]["sent"] == before
    outcomes.poll(3.0)
    assert outcomes.seen == [], "no outcome for a message that was never sent"


def queue_client(cloud) -> QueueClient:
    client = QueueClient.from_connection_string(cloud.storage.connection_string, "c2d-requests")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def enqueue(client: QueueClient, text: str) -> None:
    client.send_message(base64.b64encode(text.encode()).decode())  # host.json: messageEncoding base64


def test_queue_triggered_send_success_and_send_failed(cloud, outcomes) -> None:
    client = queue_client(cloud)
    enqueue(client, '{"deviceId": "queue-1", "payload": {"via": "queue"}, "correlationId": "q-job"}')
    enqueue(client, '{"deviceId": "ghost-device", "payload": 1, "messageId": "ghost-msg-1"}')

    assert device_https(cloud.hub, "queue-1", timeout_s=60) == 0, "the queued message never reached the device"
    outcomes.wait_for(lambda seen: {o.subject for o in seen} >= {"Success", "SendFailed"}, 60, "both outcomes")
    failed = next(o for o in outcomes.seen if o.subject == "SendFailed")
    assert failed.correlation_id == "ghost-msg-1" and failed.properties["deviceId"] == "ghost-device"
    assert "DeviceNotFound" in failed.properties["description"]
    success = next(o for o in outcomes.seen if o.subject == "Success")
    assert success.properties["deviceId"] == "queue-1"


def test_fan_out_to_200_devices_every_outcome_once(cloud, outcomes) -> None:
    status, _, body = cloud.post("/api/messages", {"deviceIds": FAN_OUT_DEVICES, "payload": {"fw": "2.1"}})
    assert status == 207 and body["sent"] == 200, body
    ids = {r["messageId"] for r in body["results"]}

    def complete(devices: list[str]) -> None:
        for device in devices:
            assert device_https(cloud.hub, device) == 0

    workers = [threading.Thread(target=complete, args=(FAN_OUT_DEVICES[i::8],)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)

    outcomes.wait_for(lambda seen: ids <= {o.correlation_id for o in seen}, 120, "200 Success outcomes")
    time.sleep(3)  # any duplicate would arrive now
    outcomes.poll(1.0)
    counts = Counter(o.correlation_id for o in outcomes.seen if o.correlation_id in ids)
    assert len(counts) == 200 and set(counts.values()) == {1}
    assert all(o.subject == "Success" for o in outcomes.seen if o.correlation_id in ids)


def test_service_bus_outage_loses_nothing(cloud, outcomes) -> None:
    if cloud.bus.admin is None:
        pytest.skip("needs the Service Bus emulator's fault injection")
    ids = []
    for _ in range(5):
        status, _, body = cloud.post("/api/devices/outage-1/messages", {"payload": "x", "ack": "positive"})
        assert status == 202
        ids.append(body["messageId"])
    cloud.bus.admin.refuse_connections(8.0)
    cloud.bus.admin.drop_connections()
    assert device_https(cloud.hub, "outage-1", count=5) == 0
    time.sleep(8.5)  # FeedbackProcessor runs every 2 s meanwhile and must release, not lose

    outcomes.wait_for(lambda seen: set(ids) <= {o.correlation_id for o in seen}, 60, "outcomes after the outage")
    time.sleep(3)
    outcomes.poll(1.0)
    counts = Counter(o.correlation_id for o in outcomes.seen if o.correlation_id in ids)
    assert counts == Counter(dict.fromkeys(ids, 1))
