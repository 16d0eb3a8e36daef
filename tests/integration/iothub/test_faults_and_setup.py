"""Certificates, config, SAS, and the admin fault-injection API against the emulator subprocess."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import socket
import ssl
import struct
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.iot.hub import IoTHubRegistryManager
from cryptography import x509

from localcloud import sas
from localcloud.certs import ensure_certs
from localcloud.iothub import config as config_mod
from localcloud.iothub.launcher import IoTHubProcess
from localcloud.iothub.service_client import feedback_records, open_feedback_receiver, receive_feedback

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_certs_are_created_once_and_reused(tmp_path: Path) -> None:
    first = ensure_certs(tmp_path)
    ca = first.ca_cert.read_bytes()
    server = first.server_cert.read_bytes()
    second = ensure_certs(tmp_path)
    assert second.ca_cert.read_bytes() == ca and second.server_cert.read_bytes() == server
    bundle = second.ca_bundle.read_bytes()
    assert bundle.endswith(ca) and bundle.count(b"BEGIN CERTIFICATE") > 10  # certifi roots + local CA


def test_concurrent_first_starts_agree_on_one_ca(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(ensure_certs, [tmp_path] * 6))
    ca = x509.load_pem_x509_certificate(results[0].ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(results[0].server_cert.read_bytes())
    leaf.verify_directly_issued_by(ca)  # raises if a racing start replaced the CA under the leaf
    assert {r.ca_cert.read_bytes() for r in results} == {results[0].ca_cert.read_bytes()}


def test_server_cert_names_localhost_and_loopback_ips(hub: IoTHubProcess) -> None:
    for host in ("localhost", "127.0.0.1"):
        ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
        with (
            socket.create_connection(("127.0.0.1", hub.ports.https), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_config_file_overrides_and_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({"hub_name": "h2", "devices": [{"device_id": "d"}], "limits": {"queue_depth": 5}}))
    cfg = config_mod.load(path)
    assert (cfg.hub_name, [d.device_id for d in cfg.devices], cfg.limits.queue_depth) == ("h2", ["d"], 5)
    assert cfg.devices[0].primary_key == config_mod.dev_key("d")
    assert (
        config_mod.load(None)
        .service_connection_string()
        .startswith("HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=")
    )
    path.write_text(json.dumps({"limits": {"queue_depht": 5}}))
    with pytest.raises(ValueError, match="queue_depht"):
        config_mod.load(path)


def test_cli_rejects_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"no_such_setting": 1}))
    proc = subprocess.run(
        [sys.executable, "-m", "localcloud", "iothub", "--config", str(path), "--state-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no_such_setting" in proc.stderr


def test_sas_expired_and_wrong_resource_are_refused(hub: IoTHubProcess) -> None:
    key = hub.config.policies[0].primary_key
    expired = sas.make_token(hub.hostname, key, "iothubowner", ttl_s=-10)
    with pytest.raises(sas.SasError, match="expired"):
        sas.verify(sas.parse(expired), [key])
    good = sas.make_token(hub.hostname, key, "iothubowner")
    sas.verify(sas.parse(good), [key])
    with pytest.raises(sas.SasError, match="signature"):
        sas.verify(sas.parse(good), [config_mod.dev_key("other")])


def test_refuse_closes_new_connections_then_recovers(hub: IoTHubProcess) -> None:
    hub.admin.refuse_connections(30)
    ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", hub.ports.amqp), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"AMQP\x03\x01\x00\x00")
        if not tls.recv(8):
            raise ConnectionError("closed")
    hub.admin.reset()  # ends the refusal
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device1", "after refusal")
    finally:
        rm.amqp_svc_client.disconnect_sync()
    assert len(hub.admin.state()["devices"]["device1"]) == 1


def test_disposition_delay_still_accepts(hub: IoTHubProcess) -> None:
    hub.admin.disposition_delay(200)
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device2", "slow ack")
    finally:
        rm.amqp_svc_client.disconnect_sync()
    assert len(hub.admin.state()["devices"]["device2"]) == 1


def test_feedback_lock_expiry_redelivers_on_open_link(hub: IoTHubProcess) -> None:
    hub.admin.set_limits(feedback_lock_s=0.5)
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device1", "x", {"iothub-ack": "full", "messageId": "fb-lock"})
    finally:
        rm.amqp_svc_client.disconnect_sync()
    rm2 = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    rm2.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("device1")
    receiver = open_feedback_receiver(hub)
    try:
        first = receive_feedback(receiver, want_records=1, settle="none")
        again = receive_feedback(receiver, want_records=1, settle="accept")  # lock expired: sent again
        assert [feedback_records(m)[0]["originalMessageId"] for m in first + again] == ["fb-lock", "fb-lock"]
    finally:
        receiver.close()
    wait_for(lambda: hub.admin.state()["stats"]["feedback_completed"] == 1)


def test_feedback_ttl_drops_unread_feedback(hub: IoTHubProcess) -> None:
    hub.admin.set_limits(feedback_ttl_s=0.3)
    rm = IoTHubRegistryManager.from_connection_string(hub.registry_connection_string)
    with hub.use_in_process():
        rm.send_c2d_message("device1", "x", {"iothub-ack": "full"})
    rm.amqp_svc_client.disconnect_sync()
    rm.protocol.cloud_to_device_messages.purge_cloud_to_device_message_queue("device1")
    wait_for(lambda: hub.admin.state()["stats"]["feedback_expired"] == 1)
    assert hub.admin.state()["feedback"] == []


def test_mqtt_keep_alive_timeout_closes_silent_client(hub: IoTHubProcess) -> None:
    token = sas.make_token(f"{hub.hostname}/devices/device2", hub.device_key("device2"))

    def s(text: str) -> bytes:
        return struct.pack(">H", len(text.encode())) + text.encode()

    body = s("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 1) + s("device2") + s(f"{hub.hostname}/device2/") + s(token)
    ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", hub.ports.mqtt), timeout=30) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(bytes([0x10, len(body) % 128 | 0x80, len(body) // 128]) + body)  # body is 128..16383 bytes
        assert tls.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        assert tls.recv(1) == b""  # keep-alive 1 s, nothing sent: the server hangs up (1.5 x keep-alive)


def test_garbage_on_every_port_leaves_the_emulator_serving(hub: IoTHubProcess) -> None:
    ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
    for port, junk in (
        (hub.ports.amqp, b"AMQP\x03\x01\x00\x00" + b"\x00\x00\x00\x10\x02\x01\x00\x00" + b"\xff" * 8),
        (hub.ports.amqp, b"AMQP\x00\x01\x00\x00" + b"\x00\x00\x00\x0c\x02\x00\x00\x00\xde\xad\xbe\xef"),
        (hub.ports.amqp, b"GET / HTTP/1.1\r\n\r\n"),
        (hub.ports.mqtt, b"\x10\x05\x00\x04MQTX"),
        (hub.ports.mqtt, b"\xff\xff\xff\xff\xff"),
    ):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(junk)
            with contextlib.suppress(OSError):
                while tls.recv(4096):  # the server answers or hangs up, but must hang up eventually
                    pass
    assert hub.process.poll() is None
    rm = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    try:
        rm.send_c2d_message("device1", "still fine")
    finally:
        rm.amqp_svc_client.disconnect_sync()
    assert len(hub.admin.state()["devices"]["device1"]) == 1
