"""The AMQP endpoint seen by a second client stack (python-qpid-proton), as Node's azure-iothub uses it:
no SASL layer or SASL PLAIN, CBS with reply_to, links refused before put-token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from proton import Message, SSLDomain
from proton.utils import BlockingConnection, LinkDetached

from localcloud import sas
from localcloud.iothub.launcher import IoTHubProcess

pytestmark = pytest.mark.integration


def ssl_domain(hub: IoTHubProcess) -> SSLDomain:
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(str(hub.ca_cert))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    return domain


@pytest.fixture
def no_sasl(hub: IoTHubProcess) -> Iterator[BlockingConnection]:
    conn = BlockingConnection(
        f"amqps://localhost:{hub.ports.amqp}", ssl_domain=ssl_domain(hub), sasl_enabled=False, timeout=20
    )
    yield conn
    conn.close()


def put_token(conn: BlockingConnection, token: str, name: str) -> int:
    sender = conn.create_sender("$cbs")
    receiver = conn.create_receiver("$cbs", name="cbs-replies")
    request = Message(
        id=uuid.uuid4().int >> 65,
        reply_to="cbs",
        properties={"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": name},
        body=token,
    )
    sender.send(request)
    reply = receiver.receive(timeout=20)
    assert reply.correlation_id == request.id
    return int(reply.properties["status-code"])


def test_without_sasl_put_token_then_send(hub: IoTHubProcess, no_sasl: BlockingConnection) -> None:
    key = hub.config.policies[0].primary_key
    assert put_token(no_sasl, sas.make_token(hub.hostname, key, "iothubowner"), hub.hostname) == 200
    sender = no_sasl.create_sender("/messages/devicebound")
    sender.send(Message(id="node-1", address="/devices/device1/messages/devicebound", body=b"from proton"))
    assert [m["messageId"] for m in hub.admin.state()["devices"]["device1"]] == ["node-1"]


def test_wrong_key_put_token_is_401(hub: IoTHubProcess, no_sasl: BlockingConnection) -> None:
    token = sas.make_token(hub.hostname, "A" * 43 + "=", "iothubowner")
    assert put_token(no_sasl, token, hub.hostname) == 401


def test_link_refused_before_put_token(no_sasl: BlockingConnection) -> None:
    with pytest.raises(LinkDetached, match="unauthorized-access"):
        no_sasl.create_sender("/messages/devicebound")


def test_sasl_plain_with_sas_password_authorizes(hub: IoTHubProcess) -> None:
    key = hub.config.policies[0].primary_key
    conn = BlockingConnection(
        f"amqps://localhost:{hub.ports.amqp}",
        ssl_domain=ssl_domain(hub),
        user=f"iothubowner@sas.root.{hub.config.hub_name}",
        password=sas.make_token(hub.hostname, key, "iothubowner"),
        allowed_mechs="PLAIN",
        timeout=20,
    )
    try:
        sender = conn.create_sender("amqps://localhost/MESSAGES/DEVICEBOUND")  # case-insensitive, with host
        sender.send(Message(address="/devices/device2/messages/devicebound", body=b"plain"))
    finally:
        conn.close()
    assert len(hub.admin.state()["devices"]["device2"]) == 1
