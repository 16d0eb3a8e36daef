"""Device side over MQTT/TLS: the real azure-iot-device client (through the emulator's CONNECT proxy,
since the SDK always dials 8883) and, where the SDK cannot hold back a PUBACK, a raw MQTT client."""

from __future__ import annotations

import queue
import socket
import ssl
import struct
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, Message, ProxyOptions
from azure.iot.device.exceptions import ClientError, CredentialError
from azure.iot.hub import IoTHubRegistryManager

from localcloud import sas
from localcloud.iothub.launcher import IoTHubProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def rm(hub: IoTHubProcess) -> Iterator[IoTHubRegistryManager]:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    yield manager
    manager.amqp_svc_client.disconnect_sync()


def device_client(hub: IoTHubProcess, device_id: str, key: str | None = None) -> IoTHubDeviceClient:
    return IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string(device_id, key),
        proxy_options=ProxyOptions(**hub.device_proxy_options()),
        server_verification_cert=hub.ca_cert.read_text(),
        connection_retry=False,
    )


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_device_receives_over_mqtt_with_properties_intact(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    mid = str(uuid.uuid4())
    props = {
        "iothub-ack": "positive",
        "messageId": mid,
        "correlationId": "corr/1",
        "contentType": "application/json",
        "contentEncoding": "utf-8",
        "plain": "v",
        "tricky key": "a&b=c/d+e%f ü",
    }
    rm.send_c2d_message("device1", '{"on": true}', props)
    client = device_client(hub, "device1")
    received: queue.Queue[Message] = queue.Queue()
    client.on_message_received = received.put
    client.connect()
    try:
        msg = received.get(timeout=20)
    finally:
        client.shutdown()
    assert msg.data == b'{"on": true}'
    assert msg.message_id == mid
    assert msg.correlation_id == "corr/1"
    assert msg.content_type == "application/json"
    assert msg.content_encoding == "utf-8"
    assert msg.ack == "positive"
    assert msg.custom_properties == {"plain": "v", "tricky key": "a&b=c/d+e%f ü"}
    state = wait_for(lambda: (s := hub.admin.state())["stats"]["completed"] == 1 and s)  # PUBACK = complete
    assert state["devices"]["device1"] == []
    hub.admin.flush_feedback()
    records = wait_for(lambda: hub.admin.state()["feedback"])[0]["records"]
    assert [(r["originalMessageId"], r["statusCode"]) for r in records] == [(mid, "Success")]


def test_sdk_gets_messages_after_dropped_connection(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    client = device_client(hub, "device2")
    received: queue.Queue[Message] = queue.Queue()
    client.on_message_received = received.put
    client.connect()
    try:
        rm.send_c2d_message("device2", "one")
        assert received.get(timeout=20).data == b"one"
        assert hub.admin.drop_connections("mqtt") == 1
        wait_for(lambda: not client.connected)  # connection_retry=False: the test reconnects
        client.connect()
        rm.send_c2d_message("device2", "two")
        assert received.get(timeout=20).data == b"two"
    finally:
        client.shutdown()


def test_wrong_device_key_is_refused(hub: IoTHubProcess) -> None:
    client = device_client(hub, "device1", key="A" * 43 + "=")
    try:
        with pytest.raises((CredentialError, ClientError)):
            client.connect()
    finally:
        client.shutdown()


# ---- raw MQTT 3.1.1 client: the SDK always PUBACKs, so redelivery needs one that does not ----------
def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    out, n = bytearray([first]), len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def _read(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    first = exact(1)[0]
    length, mult = 0, 1
    while True:
        byte = exact(1)[0]
        length += (byte & 0x7F) * mult
        mult *= 128
        if not byte & 0x80:
            break
    return first, exact(length)


def raw_connect(hub: IoTHubProcess, device_id: str, clean: bool) -> tuple[ssl.SSLSocket, int]:
    ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
    sock = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", hub.ports.mqtt), timeout=20), server_hostname="localhost"
    )
    token = sas.make_token(f"{hub.hostname}/devices/{device_id}", hub.device_key(device_id))
    flags = 0x80 | 0x40 | (0x02 if clean else 0)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", 60) + _str(device_id)
    body += _str(f"{hub.hostname}/{device_id}/?api-version=2019-10-01") + _str(token)
    sock.sendall(_packet(0x10, body))
    first, ack = _read(sock)
    assert first >> 4 == 2
    return sock, ack[0]  # session-present flag


def raw_subscribe(sock: ssl.SSLSocket, device_id: str) -> None:
    sock.sendall(_packet(0x82, struct.pack(">H", 1) + _str(f"devices/{device_id}/messages/devicebound/#") + b"\x01"))
    first, _ = _read(sock)
    assert first >> 4 == 9


def raw_receive(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    first, body = _read(sock)
    assert first >> 4 == 3 and (first >> 1) & 3 == 1
    (size,) = struct.unpack_from(">H", body)
    topic = body[2 : 2 + size].decode()
    (pid,) = struct.unpack_from(">H", body, 2 + size)
    bag = topic.split("/", 4)[4]
    props = dict(
        (urllib.parse.unquote(k), urllib.parse.unquote(v)) for k, _, v in (p.partition("=") for p in bag.split("&"))
    )
    return pid, props, body[4 + size :]


def test_unacked_message_is_redelivered_on_reconnect(hub: IoTHubProcess, rm: IoTHubRegistryManager) -> None:
    rm.send_c2d_message("device1", "keep me", {"messageId": "redeliver-1"})
    sock, _ = raw_connect(hub, "device1", clean=True)  # wipe any session left by other tests
    sock.sendall(_packet(0xE0, b""))  # DISCONNECT
    sock.close()
    sock, session_present = raw_connect(hub, "device1", clean=False)
    assert session_present == 0
    raw_subscribe(sock, "device1")
    _pid, props, payload = raw_receive(sock)
    assert (props["$.mid"], payload) == ("redeliver-1", b"keep me")
    sock.close()  # no PUBACK
    wait_for(lambda: hub.admin.state()["devices"]["device1"][0]["state"] == "Enqueued")
    sock, session_present = raw_connect(hub, "device1", clean=False)
    try:
        assert session_present == 1  # persistent session keeps the subscription: no SUBSCRIBE needed
        pid, props, payload = raw_receive(sock)
        assert (props["$.mid"], payload) == ("redeliver-1", b"keep me")
        sock.sendall(_packet(0x40, struct.pack(">H", pid)))
        wait_for(lambda: hub.admin.state()["stats"]["completed"] == 1)
    finally:
        sock.close()
    assert hub.admin.state()["devices"]["device1"] == []
