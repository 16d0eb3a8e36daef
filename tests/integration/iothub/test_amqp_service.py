"""Service side over AMQP/TLS: real azure-iot-hub (uamqp) against the emulator subprocess."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import uamqp
from azure.iot.hub import IoTHubRegistryManager
from uamqp.errors import ErrorPolicy

from localcloud.iothub.launcher import IoTHubProcess
from localcloud.iothub.service_client import service_auth

pytestmark = pytest.mark.integration


def send_raw(
    hub: IoTHubProcess, device_id: str, bodies: list[bytes], app_properties: dict[str, str] | None = None
) -> list[tuple[Any, Any]]:
    """Pipeline messages on one uamqp link without retries; return (result, error) per message."""
    outcomes: list[tuple[Any, Any]] = [(None, None)] * len(bodies)
    client = uamqp.SendClient(
        f"amqps://{hub.hostname}/messages/devicebound",
        auth=service_auth(hub),
        error_policy=ErrorPolicy(max_retries=0),
    )
    try:
        for i, body in enumerate(bodies):
            props = uamqp.message.MessageProperties(
                message_id=str(uuid.uuid4()), to=f"/devices/{device_id}/messages/devicebound"
            )

            def done(result: Any, error: Any, i: int = i) -> None:
                outcomes[i] = (result, error)

            msg = uamqp.Message(body, properties=props, application_properties=app_properties)
            msg.on_send_complete = done
            client.queue_message(msg)
        client.send_all_messages(close_on_done=False)
    finally:
        client.close()
    return outcomes


def condition_of(error: Any) -> str:
    """uamqp maps known conditions to ErrorCodes enums; keep both the enum and the text."""
    condition = getattr(error, "condition", None)
    if isinstance(condition, bytes):
        condition = condition.decode()
    return f"{condition!r} {error}"


def test_registry_manager_send_is_enqueued_with_properties(hub: IoTHubProcess) -> None:
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device1", "hello", {"iothub-ack": "full", "messageId": "m-1", "color": "blue"})
    finally:
        rm.amqp_svc_client.disconnect_sync()
    queued = hub.admin.state()["devices"]["device1"]
    assert [(m["messageId"], m["ack"], m["state"]) for m in queued] == [("m-1", "full", "Enqueued")]


def test_unknown_device_is_rejected_not_found(hub: IoTHubProcess) -> None:
    [(result, error)] = send_raw(hub, "no-such-device", [b"x"])
    assert result == uamqp.constants.MessageSendResult.Error
    assert "amqp:not-found" in condition_of(error)
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        with pytest.raises(Exception, match="C2D message send failure"):
            rm.send_c2d_message("no-such-device", "x")
    finally:
        rm.amqp_svc_client.disconnect_sync()


def test_queue_full_at_51(hub: IoTHubProcess) -> None:
    outcomes = send_raw(hub, "device1", [b"m%d" % i for i in range(51)])
    results = [r for r, _ in outcomes]
    assert results[:50] == [uamqp.constants.MessageSendResult.Ok] * 50
    assert results[50] == uamqp.constants.MessageSendResult.Error
    assert "amqp:resource-limit-exceeded" in condition_of(outcomes[50][1])
    assert len(hub.admin.state()["devices"]["device1"]) == 50


def test_too_large_at_64kb_plus_one(hub: IoTHubProcess) -> None:
    outcomes = send_raw(hub, "device2", [b"a" * 65536, b"a" * 65537])
    assert outcomes[0][0] == uamqp.constants.MessageSendResult.Ok
    assert outcomes[1][0] == uamqp.constants.MessageSendResult.Error
    assert "amqp:link:message-size-exceeded" in condition_of(outcomes[1][1])


def test_throttling_rejects_with_device_container_throttled(hub: IoTHubProcess) -> None:
    hub.admin.throttle(2)
    outcomes = send_raw(hub, "device1", [b"1", b"2", b"3"])
    assert [r for r, _ in outcomes[:2]] == [uamqp.constants.MessageSendResult.Ok] * 2
    assert "com.microsoft:device-container-throttled" in condition_of(outcomes[2][1])


def test_wrong_sas_key_is_refused(hub: IoTHubProcess) -> None:
    wrong = hub.service_connection_string.rsplit("=", 2)[0] + "=" + "A" * 43 + "="
    rm = IoTHubRegistryManager.from_connection_string(wrong)
    try:
        with pytest.raises(Exception) as info:
            rm.send_c2d_message("device1", "x")
        assert "auth" in type(info.value).__name__.lower() or "auth" in str(info.value).lower()
    finally:
        rm.amqp_svc_client.disconnect_sync()
    assert hub.admin.state()["devices"]["device1"] == []


def test_feedback_is_batched_by_64_records(hub: IoTHubProcess) -> None:
    hub.admin.set_limits(queue_depth=100, feedback_interval_s=1.0)
    outcomes = send_raw(hub, "device2", [b"m"] * 70, {"iothub-ack": "full"})
    assert [r for r, _ in outcomes] == [uamqp.constants.MessageSendResult.Ok] * 70
    rm = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    try:
        rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("device2")
    finally:
        rm.amqp_svc_client.disconnect_sync()
    deadline = time.monotonic() + 20
    while len(hub.admin.state()["feedback"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sizes = [len(f["records"]) for f in hub.admin.state()["feedback"]]
    assert sizes == [64, 6]  # a full batch at once, the rest after the flush interval
