"""`_PipelinedSendClient`: uamqp's send loop without its scan of every pending message per iteration.

The transfer itself is replaced by a recorder, so these run without a network: they pin down that every
queued message is handed over exactly once, that the client reports messages pending until the last one
is settled, and that uamqp's own paths (timeout, a failed transfer, a retry) still settle each message.
"""

from __future__ import annotations

import uamqp
from uamqp import constants

from c2d.iothub import _PipelinedSendClient

Ok, Error = constants.MessageSendResult.Ok, constants.MessageSendResult.Error


class _Recording(_PipelinedSendClient):
    def __init__(self) -> None:
        # No retries, as C2DSender builds it (uamqp's default would re-send a failed message 3 times).
        super().__init__(
            target="amqps://hub.example/messages/devicebound", msg_timeout=0,
            error_policy=uamqp.errors.ErrorPolicy(max_retries=0),
        )
        self.transferred: list[uamqp.Message] = []
        self.fail_transfer: set[int] = set()

    def _transfer_message(self, message: uamqp.Message, timeout: object) -> None:
        if id(message) in self.fail_transfer:
            raise RuntimeError("Message sender failed to add message data to outgoing queue.")
        self.transferred.append(message)

    def settle(self, message: uamqp.Message, result: constants.MessageSendResult = Ok) -> None:
        self._on_message_sent(message, result)

    def one_pass(self) -> None:
        self._waiting_messages = 0
        self._pending_messages = self._filter_pending()


def _queued(client: _Recording, count: int) -> list[uamqp.Message]:
    messages = [uamqp.Message(body=b"x") for _ in range(count)]
    client.queue_message(*messages)
    return messages


def test_every_message_is_handed_over_once_and_pending_until_the_last_is_settled() -> None:
    client = _Recording()
    messages = _queued(client, 1000)
    for _ in range(5):
        client.one_pass()
    assert client.transferred == messages
    assert all(m.state == constants.MessageState.WaitingForSendAck for m in messages)
    for message in messages[:-1]:
        client.settle(message)
        client.one_pass()
        assert client.messages_pending()
    client.settle(messages[-1])
    client.one_pass()
    assert not client.messages_pending()
    assert client.transferred == messages  # nothing handed over twice
    assert all(m.state == constants.MessageState.SendComplete for m in messages)


def test_settled_messages_are_dropped_in_batches_not_scanned_every_pass() -> None:
    client = _Recording()
    messages = _queued(client, 10)
    client.one_pass()
    for message in messages[:4]:
        client.settle(message)
    client.one_pass()
    assert len(client._pending_messages) == 10  # fewer than half settled: the list is left alone
    client.settle(messages[4])
    client.one_pass()
    assert client._pending_messages == messages[5:]
    assert client._waiting_messages == 5


def test_messages_queued_while_others_wait_are_handed_over_on_the_next_pass() -> None:
    client = _Recording()
    first = _queued(client, 3)
    client.one_pass()
    second = _queued(client, 2)
    client.one_pass()
    assert client.transferred == first + second


def test_a_failed_transfer_settles_that_message_as_failed_and_the_rest_go_on() -> None:
    client = _Recording()
    seen: list[tuple[object, object]] = []
    messages = _queued(client, 3)
    for message in messages:
        message.on_send_complete = lambda result, error: seen.append((result, type(error).__name__))
    client.fail_transfer.add(id(messages[1]))
    client.one_pass()
    assert client.transferred == [messages[0], messages[2]]
    assert messages[1].state == constants.MessageState.SendFailed
    assert seen == [(Error, "ClientMessageError")]
    client.settle(messages[0])
    client.settle(messages[2])
    client.one_pass()
    assert not client.messages_pending()


def test_a_message_uamqp_puts_back_for_a_retry_is_handed_over_again() -> None:
    client = _Recording()
    client._error_policy = uamqp.errors.ErrorPolicy(max_retries=1)
    (message,) = _queued(client, 1)
    client.one_pass()
    client.settle(message, Error)  # no delivery state: uamqp retries it
    assert message.state == constants.MessageState.WaitingToBeSent
    client.one_pass()
    assert client.transferred == [message, message]
    client.settle(message)
    client.one_pass()
    assert not client.messages_pending()


def test_a_replaced_pending_list_is_counted_afresh() -> None:
    client = _Recording()
    old = _queued(client, 2)
    client.one_pass()
    client.settle(old[0])
    client._pending_messages = []  # what uamqp does on redirect
    new = _queued(client, 2)
    client.one_pass()
    assert client.transferred == [*old, *new]
    for message in new:
        client.settle(message)
    client.one_pass()
    assert not client.messages_pending()


def test_a_message_that_waited_past_its_timeout_fails_without_a_transfer() -> None:
    client = _Recording()
    client._msg_timeout = 1000
    seen: list[object] = []
    (message,) = _queued(client, 1)
    message.on_send_complete = lambda result, error: seen.append(result)
    message.idle_time -= 5000
    client.one_pass()
    assert client.transferred == []
    assert message.state == constants.MessageState.SendFailed
    assert seen == [constants.MessageSendResult.Timeout]
    client.one_pass()
    assert not client.messages_pending()
