"""CBS token expiry on open links, with azure-servicebus (default pyamqp transport).

Service Bus detaches the links a CBS token authorised when it expires without renewal
(amqp:unauthorized-access). The SDK renews its tokens well before they expire, so the emulator's
`max_token_lifetime_s` makes its one-hour tokens expire after 2 s here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthorizationError
from localcloud_testing.servicebus import receive

from localcloud.servicebus.launcher import ServiceBusProcess

pytestmark = pytest.mark.integration
LIFETIME_S = 2


@pytest.fixture
def short_tokens(servicebus: ServiceBusProcess) -> Iterator[ServiceBusProcess]:
    servicebus.admin.set_limits(max_token_lifetime_s=LIFETIME_S)
    try:
        yield servicebus
    finally:
        servicebus.admin.set_limits(max_token_lifetime_s=None, enforce_token_expiry=True)


def tokens(bus: ServiceBusProcess) -> dict[str, int]:
    return dict(bus.admin.state()["amqp"]["tokens"])


def test_expired_token_detaches_the_sender_and_the_sdk_reauthorises(short_tokens: ServiceBusProcess) -> None:
    bus = short_tokens
    before = tokens(bus)
    with ServiceBusClient.from_connection_string(bus.connection_string, retry_total=3) as client:
        with client.get_queue_sender("token-expiry") as sender:
            sender.send_messages(ServiceBusMessage("one", message_id="exp-1"))
            time.sleep(LIFETIME_S + 1.5)
            detached = tokens(bus)["links_detached_on_expiry"] - before["links_detached_on_expiry"]
            sender.send_messages(ServiceBusMessage("two", message_id="exp-2"))  # attaches again with a new token
        after = tokens(bus)
        with client.get_queue_receiver("token-expiry") as receiver:
            got = receive(receiver, 2)
            for message in got:
                receiver.complete_message(message)
    assert detached == 1
    assert after["accepted"] - before["accepted"] >= 2  # the first put-token and the one after the detach
    assert sorted(str(m.message_id) for m in got) == ["exp-1", "exp-2"]


def test_idle_receiver_loses_its_link_and_cannot_settle_after_expiry(short_tokens: ServiceBusProcess) -> None:
    bus = short_tokens
    with ServiceBusClient.from_connection_string(bus.connection_string, retry_total=0) as client:
        with client.get_queue_sender("token-receiver") as sender:
            sender.send_messages(ServiceBusMessage("held", message_id="held-1"))
        before = tokens(bus)["links_detached_on_expiry"]
        with client.get_queue_receiver("token-receiver") as receiver:
            [held] = receive(receiver, 1)
            time.sleep(LIFETIME_S + 1.5)
            assert tokens(bus)["links_detached_on_expiry"] > before
            with pytest.raises(ServiceBusAuthorizationError):
                receiver.complete_message(held)  # the link is gone; the $management fallback is unauthorised
    bus.admin.set_limits(max_token_lifetime_s=None)
    with (
        ServiceBusClient.from_connection_string(bus.connection_string) as client,
        client.get_queue_receiver("token-receiver") as receiver,
    ):
        again = receive(receiver, 1)  # once its 5-second lock ran out
        for message in again:
            receiver.complete_message(message)
    assert [(str(m.message_id), m.delivery_count) for m in again] == [("held-1", 1)]


def test_links_stay_when_expiry_is_not_enforced(short_tokens: ServiceBusProcess) -> None:
    bus = short_tokens
    bus.admin.set_limits(enforce_token_expiry=False)
    before = tokens(bus)
    with ServiceBusClient.from_connection_string(bus.connection_string, retry_total=0) as client:
        with client.get_queue_sender("token-expiry") as sender:
            sender.send_messages(ServiceBusMessage("a", message_id="noexp-1"))
            time.sleep(LIFETIME_S + 1)
            sender.send_messages(ServiceBusMessage("b", message_id="noexp-2"))
        with client.get_queue_receiver("token-expiry") as receiver:
            got = receive(receiver, 2)
            for message in got:
                receiver.complete_message(message)
    after = tokens(bus)
    assert after["links_detached_on_expiry"] == before["links_detached_on_expiry"]
    assert after["accepted"] - before["accepted"] == 2  # one put-token per link: the sender never re-attached
    assert sorted(str(m.message_id) for m in got) == ["noexp-1", "noexp-2"]
