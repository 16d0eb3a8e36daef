"""The Service Bus emulator's `LinkHandler` on the shared engine: senders into entities, receivers out
of them, and the `$management` operations.

Links need a token that covers their entity (CBS put-token, or SASL PLAIN with the key); when that
token expires without renewal, Service Bus detaches the links it authorised (`amqp:unauthorized-access`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from proton import Condition, Delivery, Link, symbol, ulong

from localcloud.amqp.addresses import link_path
from localcloud.amqp.errors import DECODE_ERROR, MESSAGE_SIZE_EXCEEDED, NOT_FOUND, UNAUTHORIZED_ACCESS, error_condition
from localcloud.amqp.links import ServiceConnection, open_link, refuse_link, top_up_credit
from localcloud.amqp.management import ManagementReply, ManagementRequest

from .consumers import Consumer, Consumers
from .management import ARGUMENT_ERROR, ManagementOperations
from .message import IncomingMessage, MessageFormatError, parse_message, split_batch
from .namespace import EntityNotFound, MessageTooLarge, Namespace

log = logging.getLogger(__name__)

RECEIVE_CREDIT = 1000  # transfers a sender may pipeline


def _parse_transfer(payload: bytes) -> list[IncomingMessage]:
    """One message, or the messages of a batch (message format 0x80013700: one data section per message)."""
    bodies = split_batch(payload)
    if bodies is not None:
        try:
            return [parse_message(b) for b in bodies]
        except MessageFormatError:
            pass  # a plain message whose binary body merely looked like an encoded message
    return [parse_message(payload)]


def _unauthorized(path: str) -> Condition:
    return error_condition(UNAUTHORIZED_ACCESS, f"Unauthorized access to '{path}'. Put a token first.")


class ServiceBusLinks:
    def __init__(self, namespace: Namespace, consumers: Consumers, clock: Callable[[], float]) -> None:
        self.namespace = namespace
        self.consumers = consumers
        self.clock = clock
        self.operations = ManagementOperations(namespace, clock)

    # ---- LinkHandler ------------------------------------------------------------------------
    def on_link_open(self, conn: ServiceConnection, link: Link, path: str) -> None:
        if not conn.authorize(link, path):
            refuse_link(link, _unauthorized(path))
        elif link.is_receiver:
            self._open_sender_link(link, path)
        else:
            self._open_receiver_link(conn, link, path)

    def _open_sender_link(self, link: Link, path: str) -> None:
        """The client sends into an entity. An unknown entity is reported on each transfer (rejected,
        amqp:not-found): the SDK's sender drops a detach's condition but raises a rejected delivery's
        as MessagingEntityNotFoundError."""
        with contextlib.suppress(EntityNotFound):
            limit = self.namespace.sendable(path).properties.max_message_size
            link.max_message_size = limit
            # The SDK sizes ServiceBusMessageBatch from this vendor property.
            link.properties = {symbol("com.microsoft:max-message-batch-size"): ulong(limit)}
        open_link(link)
        link.flow(RECEIVE_CREDIT)

    def _open_receiver_link(self, conn: ServiceConnection, link: Link, path: str) -> None:
        try:
            store = self.namespace.receivable(path)
        except EntityNotFound as exc:
            refuse_link(link, error_condition(NOT_FOUND, str(exc)))
            return
        open_link(link)
        self.consumers.add(Consumer(conn, link, store, peek_lock=link.remote_snd_settle_mode != Link.SND_SETTLED))

    def on_link_close(self, conn: ServiceConnection, link: Link) -> None:
        self.consumers.remove(link)

    def on_link_flow(self, conn: ServiceConnection, link: Link) -> None:
        self.consumers.on_flow(link)

    def on_transfer(self, conn: ServiceConnection, link: Link, delivery: Delivery, payload: bytes) -> None:
        top_up_credit(link, RECEIVE_CREDIT)
        rejection: Condition | None = None
        path = link_path(link.remote_target.address)
        try:
            self.namespace.send(path, _parse_transfer(payload), self.clock())
            self.namespace.commit()
        except MessageTooLarge as exc:
            rejection = error_condition(MESSAGE_SIZE_EXCEEDED, str(exc))
        except EntityNotFound as exc:
            rejection = error_condition(NOT_FOUND, str(exc))
        except MessageFormatError as exc:
            rejection = error_condition(DECODE_ERROR, str(exc))
        conn.settle_transfer(delivery, rejection)

    def on_disposition(self, conn: ServiceConnection, link: Link, delivery: Delivery) -> None:
        self.consumers.on_disposition(link, delivery)

    def on_connection_closed(self, conn: ServiceConnection) -> None:
        self.consumers.forget_connection(conn)

    # ---- ManagementHandler ------------------------------------------------------------------
    def handle(self, request: ManagementRequest) -> ManagementReply:
        try:
            reply = self.operations.handle(request.entity_path, request.operation, request.body)
        except EntityNotFound as exc:
            reply = ManagementReply(404, str(exc), {}, NOT_FOUND)
        except (MessageTooLarge, MessageFormatError, ValueError, KeyError, TypeError) as exc:
            reply = ManagementReply(400, f"bad request: {exc}", {}, ARGUMENT_ERROR)
        self.namespace.commit()
        self.consumers.pump_if_dirty()
        return reply
