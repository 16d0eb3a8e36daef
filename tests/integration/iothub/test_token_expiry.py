"""CBS token expiry on open connections, with uamqp as azure-iot-hub and c2d use it.

IoT Hub closes a service connection when the CBS token that authorised its links expires without a
renewal (amqp:unauthorized-access); a put-token for the same audience before then renews it. These
clients mint 3-second tokens, so the tests take seconds, not an hour.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import uamqp
from azure.core.credentials import AccessToken
from uamqp.errors import ConnectionClose, ErrorPolicy

from localcloud import sas
from localcloud.iothub.launcher import IoTHubProcess
from localcloud.iothub.service_client import service_auth

pytestmark = pytest.mark.integration
TOKEN_LIFETIME_S = 3


def short_token_auth(hub: IoTHubProcess, *, renew: bool) -> uamqp.authentication.JWTTokenAuth:
    """JWTTokenAuth whose tokens expire after 3 s. renew=False tells uamqp they last an hour, so it never
    renews them (a client that forgets to); renew=True tells the truth and uamqp renews 2 s before expiry."""
    policy = hub.config.policies[0]

    def get_token() -> AccessToken:
        token = sas.make_token(hub.hostname, policy.primary_key, policy.name, ttl_s=TOKEN_LIFETIME_S)
        claimed = TOKEN_LIFETIME_S if renew else 3600
        return AccessToken(token, int(time.time() + claimed))

    auth = uamqp.authentication.JWTTokenAuth(
        audience="https://" + hub.hostname,
        uri="https://" + hub.hostname,
        get_token=get_token,
        token_type=b"servicebus.windows.net:sastoken",
        refresh_window=2,
    )
    auth.update_token()
    return auth


@pytest.fixture
def open_sender() -> Iterator[list[uamqp.SendClient]]:
    clients: list[uamqp.SendClient] = []
    yield clients
    for client in clients:
        client.close()


def sender(hub: IoTHubProcess, clients: list[uamqp.SendClient], auth: uamqp.authentication.JWTTokenAuth) -> uamqp.SendClient:
    client = uamqp.SendClient(
        f"amqps://{hub.hostname}/messages/devicebound", auth=auth, error_policy=ErrorPolicy(max_retries=0)
    )
    clients.append(client)
    client.open()
    while not client.client_ready():
        client.do_work()
    return client


def send(client: uamqp.SendClient, message_id: str) -> list[object]:
    properties = uamqp.message.MessageProperties(message_id=message_id, to="/devices/device1/messages/devicebound")
    client.queue_message(uamqp.Message(b"x", properties=properties))
    return list(client.send_all_messages(close_on_done=False))


def idle(client: uamqp.SendClient, seconds: float) -> None:
    """Keep the connection serviced (heartbeats, token renewal) without sending."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.do_work()
        time.sleep(0.05)


def tokens(hub: IoTHubProcess) -> dict[str, int]:
    return dict(hub.admin.state()["amqp"]["tokens"])


def queued_ids(hub: IoTHubProcess) -> list[str]:
    return [m["messageId"] for m in hub.admin.state()["devices"]["device1"]]


def test_unrenewed_token_closes_the_idle_connection_with_unauthorized_access(hub, open_sender) -> None:
    client = sender(hub, open_sender, short_token_auth(hub, renew=False))
    assert send(client, "before-expiry") == [uamqp.constants.MessageState.SendComplete]
    started = time.monotonic()
    with pytest.raises(ConnectionClose) as closed:
        idle(client, 10)
    assert time.monotonic() - started < TOKEN_LIFETIME_S + 2
    assert "UnauthorizedAccess" in str(closed.value.condition)
    assert "the CBS token expired at" in str(closed.value.description)
    assert tokens(hub)["connections_closed_on_expiry"] == 1
    assert queued_ids(hub) == ["before-expiry"]


def test_renewed_token_keeps_the_connection_open(hub, open_sender) -> None:
    client = sender(hub, open_sender, short_token_auth(hub, renew=True))
    assert send(client, "first") == [uamqp.constants.MessageState.SendComplete]
    idle(client, 3 * TOKEN_LIFETIME_S)  # three lifetimes: only renewals keep it open
    assert send(client, "after-renewals") == [uamqp.constants.MessageState.SendComplete]
    counts = tokens(hub)
    assert counts["renewed"] >= 3 and counts["connections_closed_on_expiry"] == 0
    assert queued_ids(hub) == ["first", "after-renewals"]


def test_expiry_is_not_enforced_when_switched_off(hub, open_sender) -> None:
    hub.admin.set_limits(enforce_token_expiry=False)
    client = sender(hub, open_sender, short_token_auth(hub, renew=False))
    idle(client, TOKEN_LIFETIME_S + 2)
    assert send(client, "past-expiry") == [uamqp.constants.MessageState.SendComplete]
    assert tokens(hub)["connections_closed_on_expiry"] == 0


def test_max_token_lifetime_shortens_a_one_hour_token(hub, open_sender) -> None:
    hub.admin.set_limits(max_token_lifetime_s=2)
    client = sender(hub, open_sender, service_auth(hub))  # a 1-hour token, as azure-iot-hub mints it
    with pytest.raises(ConnectionClose, match="expired"):
        idle(client, 8)
    assert tokens(hub)["connections_closed_on_expiry"] == 1


def test_switching_enforcement_on_closes_connections_whose_token_already_expired(hub, open_sender) -> None:
    hub.admin.set_limits(enforce_token_expiry=False)
    client = sender(hub, open_sender, short_token_auth(hub, renew=False))
    idle(client, TOKEN_LIFETIME_S + 1)
    hub.admin.set_limits(enforce_token_expiry=True)  # re-checks open connections at once
    with pytest.raises(ConnectionClose, match="expired"):
        idle(client, 3)
    assert tokens(hub)["connections_closed_on_expiry"] == 1
