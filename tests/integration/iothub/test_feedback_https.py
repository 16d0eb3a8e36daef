"""HTTPS device API (complete/reject/abandon), lock expiry, TTL expiry, purge, registry, and the
feedback endpoint read with a plain uamqp ReceiveClient (statusCode per outcome, redelivery)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager

from localcloud import sas
from localcloud.iothub.launcher import IoTHubProcess
from localcloud.iothub.service_client import feedback_records, open_feedback_receiver, receive_feedback

pytestmark = pytest.mark.integration
API = "api-version=2020-09-30"


class Device:
    """The device side of the HTTPS C2D API, as azure-iot-device-http (Node) calls it."""

    def __init__(self, hub: IoTHubProcess, device_id: str, key: str | None = None) -> None:
        self.hub = hub
        self.device_id = device_id
        self.key = key or hub.device_key(device_id)
        self.base = f"https://localhost:{hub.ports.https}/devices/{device_id}/messages/devicebound"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": sas.make_token(f"{self.hub.hostname}/devices/{self.device_id}", self.key)}

    def receive(self) -> requests.Response:
        return requests.get(f"{self.base}?{API}", headers=self._headers(), verify=str(self.hub.ca_cert), timeout=10)

    def complete(self, etag: str) -> int:
        url = f"{self.base}/{etag.strip(chr(34))}?{API}"
        return requests.delete(url, headers=self._headers(), verify=str(self.hub.ca_cert), timeout=10).status_code

    def reject(self, etag: str) -> int:
        url = f"{self.base}/{etag.strip(chr(34))}?{API}&reject"
        return requests.delete(url, headers=self._headers(), verify=str(self.hub.ca_cert), timeout=10).status_code

    def abandon(self, etag: str) -> int:
        url = f"{self.base}/{etag.strip(chr(34))}/abandon?{API}"
        return requests.post(url, headers=self._headers(), verify=str(self.hub.ca_cert), timeout=10).status_code


@pytest.fixture
def rm(hub: IoTHubProcess) -> Iterator[IoTHubRegistryManager]:
    manager = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    yield manager
    manager.amqp_svc_client.disconnect_sync()


@pytest.fixture
def feedback(hub: IoTHubProcess) -> Iterator[Any]:
    receiver = open_feedback_receiver(hub)
    yield receiver
    receiver.close()


def send(rm: IoTHubRegistryManager, device_id: str, ack: str = "full", **props: Any) -> str:
    message_id = str(uuid.uuid4())
    rm.send_c2d_message(device_id, "payload", {"iothub-ack": ack, "messageId": message_id, **props})
    return message_id


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def statuses(messages: list[Any]) -> dict[str, str]:
    return {r["originalMessageId"]: r["statusCode"] for m in messages for r in feedback_records(m)}


def test_https_complete_reject_abandon_and_feedback_status(
    hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any
) -> None:
    device = Device(hub, "device1")
    ids = [send(rm, "device1", color="red") for _ in range(3)]
    got = device.receive()
    assert got.status_code == 200 and got.content == b"payload"
    assert got.headers["iothub-messageid"] == ids[0]
    assert got.headers["iothub-app-color"] == "red"
    assert device.complete(got.headers["ETag"]) == 204
    assert device.complete(got.headers["ETag"]) == 412  # lock already used
    second = device.receive()
    assert device.reject(second.headers["ETag"]) == 204
    third = device.receive()
    assert device.abandon(third.headers["ETag"]) == 204
    again = device.receive()
    assert again.headers["iothub-messageid"] == ids[2]
    assert again.headers["iothub-deliverycount"] == "2"
    assert device.complete(again.headers["ETag"]) == 204
    assert device.receive().status_code == 204

    messages = receive_feedback(feedback, want_records=3)
    assert statuses(messages) == {ids[0]: "Success", ids[1]: "Rejected", ids[2]: "Success"}
    first = messages[0]
    assert first.properties.content_type == b"application/vnd.microsoft.iothub.feedback.json"
    assert first.properties.user_id == b"localhub"
    assert b"iothub-enqueuedtime" in first.annotations
    record = feedback_records(first)[0]
    assert set(record) == {
        "originalMessageId",
        "deviceId",
        "deviceGenerationId",
        "statusCode",
        "description",
        "enqueuedTimeUtc",
    }


def test_ack_modes_filter_feedback(hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any) -> None:
    device = Device(hub, "device2")
    positive = send(rm, "device2", ack="positive")
    negative = send(rm, "device2", ack="negative")
    none = send(rm, "device2", ack="none")
    for _ in range(3):
        device.complete(device.receive().headers["ETag"])
    marker = send(rm, "device2", ack="negative")
    device.reject(device.receive().headers["ETag"])
    got = statuses(receive_feedback(feedback, want_records=2))
    assert got == {positive: "Success", marker: "Rejected"}
    assert negative not in got and none not in got


def test_abandon_max_delivery_count_dead_letters(
    hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any
) -> None:
    hub.admin.set_limits(max_delivery_count=3)
    device = Device(hub, "device1")
    mid = send(rm, "device1")
    for _ in range(3):
        got = device.receive()
        assert got.status_code == 200
        assert device.abandon(got.headers["ETag"]) == 204
    assert device.receive().status_code == 204
    assert statuses(receive_feedback(feedback, want_records=1)) == {mid: "DeliveryCountExceeded"}


def test_lock_expiry_redelivers(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    hub.admin.set_limits(lock_s=0.5)
    device = Device(hub, "device1")
    mid = send(rm, "device1")
    first = device.receive()
    assert first.headers["iothub-messageid"] == mid
    assert device.receive().status_code == 204  # invisible while locked
    again = wait_for(lambda: (r := device.receive()).status_code == 200 and r)
    assert again.headers["iothub-messageid"] == mid
    assert again.headers["ETag"] != first.headers["ETag"]
    assert device.complete(first.headers["ETag"]) == 412
    assert device.complete(again.headers["ETag"]) == 204


def test_expiry_gives_expired_feedback(hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any) -> None:
    expiry_ms = int((time.time() + 0.5) * 1000)
    mid = send(rm, "device2", ack="negative", expiryTimeUtc=expiry_ms)
    assert statuses(receive_feedback(feedback, want_records=1)) == {mid: "Expired"}
    assert Device(hub, "device2").receive().status_code == 204


def test_purge_gives_purged_feedback(hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any) -> None:
    ids = [send(rm, "device1") for _ in range(2)]
    result = rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("device1")
    assert result.total_messages_purged == 2
    assert statuses(receive_feedback(feedback, want_records=2)) == dict.fromkeys(ids, "Purged")


def test_feedback_not_accepted_is_redelivered(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    device = Device(hub, "device1")
    mid = send(rm, "device1")
    device.complete(device.receive().headers["ETag"])
    receiver = open_feedback_receiver(hub)
    try:
        first = receive_feedback(receiver, want_records=1, settle="release")
        assert statuses(first) == {mid: "Success"}
        second = receive_feedback(receiver, want_records=1, settle="none")  # left unsettled, then closed
        assert statuses(second) == {mid: "Success"}
    finally:
        receiver.close()
    receiver = open_feedback_receiver(hub)
    try:
        third = receive_feedback(receiver, want_records=1, settle="accept")
        assert statuses(third) == {mid: "Success"}
    finally:
        receiver.close()
    wait_for(lambda: hub.admin.state()["stats"]["feedback_completed"] == 1)
    assert hub.admin.state()["feedback"] == []


def test_feedback_deliveries_record_flush_and_delivery_times(
    hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any
) -> None:
    device = Device(hub, "device1")
    mid = send(rm, "device1")
    device.complete(device.receive().headers["ETag"])
    before = time.time()
    first = receive_feedback(feedback, want_records=1, settle="release")
    again = receive_feedback(feedback, want_records=1, settle="accept")
    assert statuses(first) == statuses(again) == {mid: "Success"}
    deliveries = hub.admin.feedback_deliveries()
    assert [d["deliveryCount"] for d in deliveries] == [1, 2]
    assert {d["messageId"] for d in deliveries} == {first[0].properties.message_id.decode()}
    assert all(d["originalMessageIds"] == [mid] for d in deliveries)
    assert deliveries[0]["enqueuedAt"] <= deliveries[0]["deliveredAt"] <= deliveries[1]["deliveredAt"]
    assert before - 5 < deliveries[0]["deliveredAt"] < time.time() + 1
    hub.admin.reset()
    assert hub.admin.feedback_deliveries() == []


def test_feedback_reject_dead_letters(hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any) -> None:
    device = Device(hub, "device1")
    send(rm, "device1")
    device.complete(device.receive().headers["ETag"])
    receive_feedback(feedback, want_records=1, settle="reject")
    state = wait_for(lambda: (s := hub.admin.state())["stats"]["feedback_dead_lettered"] == 1 and s)
    assert state["feedback"] == []


def test_registry_create_get_delete(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    created = rm.create_device_with_sas("new-device", "", "", "enabled")
    assert created.device_id == "new-device"
    key = created.authentication.symmetric_key.primary_key
    assert key
    assert rm.get_device("new-device").generation_id == created.generation_id
    rm.send_c2d_message("new-device", "hi")
    assert Device(hub, "new-device", key).receive().content == b"hi"
    rm.delete_device("new-device")
    with pytest.raises(Exception, match=r"404|Not ?Found|not found"):
        rm.get_device("new-device")


def test_https_device_wrong_key_is_401(hub: IoTHubProcess) -> None:
    assert Device(hub, "device1", key="A" * 43 + "=").receive().status_code == 401


def test_advance_clock_expires_default_ttl(hub: IoTHubProcess, rm: IoTHubRegistryManager, feedback: Any) -> None:
    mid = send(rm, "device1", ack="negative")  # hub default TTL: 1 h
    assert hub.admin.advance_clock(3601) == 3601
    assert statuses(receive_feedback(feedback, want_records=1)) == {mid: "Expired"}
    assert Device(hub, "device1").receive().status_code == 204


def test_admin_feedback_backlog_is_batched_like_the_hub_and_counted(hub: IoTHubProcess, feedback: Any) -> None:
    pairs = [(f"dev-{i % 7}", f"msg-{i}") for i in range(150)]
    assert hub.admin.enqueue_feedback(pairs) == 3  # 64 + 64 + 22 records, as IoT Hub batches them
    assert hub.admin.enqueue_feedback([{"deviceId": "device1", "originalMessageId": "m-x", "statusCode": "Expired"}]) == 1
    counts = hub.admin.feedback_counts()
    assert counts["messages"] == 4 and counts["records"] == 151 and counts["completed_records"] == 0

    messages = receive_feedback(feedback, want_records=151)
    assert [len(feedback_records(m)) for m in messages] == [64, 64, 22, 1]
    assert messages[0].properties.content_type == b"application/vnd.microsoft.iothub.feedback.json"
    assert b"iothub-enqueuedtime" in messages[0].annotations
    got = statuses(messages)
    assert got == {**{m: "Success" for _, m in pairs}, "m-x": "Expired"}
    record = feedback_records(messages[3])[0]
    assert record["description"] == "Message expired" and record["deviceGenerationId"]  # a registered device
    second = feedback_records(messages[0])[1]
    assert second == {
        "originalMessageId": "msg-1", "deviceId": "dev-1", "deviceGenerationId": "", "statusCode": "Success",
        "description": "Success", "enqueuedTimeUtc": second["enqueuedTimeUtc"],
    }
    assert second["enqueuedTimeUtc"].endswith("Z")
    counts = wait_for(lambda: (c := hub.admin.feedback_counts())["completed"] == 4 and c)
    assert counts["completed_records"] == 151 and counts["messages"] == 0 and counts["records"] == 0


@pytest.mark.parametrize(
    "body",
    [{"records": [{"deviceId": "d"}]}, {"records": [{"deviceId": "d", "originalMessageId": "m", "statusCode": "Nope"}]},
     {"records": "x"}, ["x"]],
)
def test_admin_feedback_refuses_bad_records(hub: IoTHubProcess, body: Any) -> None:
    response = requests.post(f"{hub.admin.base_url}/admin/feedback", json=body, timeout=10)
    assert response.status_code == 400
    assert hub.admin.feedback_counts()["messages"] == 0
