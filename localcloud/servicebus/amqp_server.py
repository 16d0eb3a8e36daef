"""The AMQP side of the emulator: CBS, `$management`, senders into entities, consumers out of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proton import Condition, Delivery, Link, Message, int32, symbol, ulong

from .auth import Grant, SasValidator, TokenRejected
from .broker import EntityNotFound, MessageTooLarge, Namespace
from .engine import EngineConnection
from .management import ManagementHandler, encode_envelope
from .message import IncomingMessage, MessageFormatError, parse_message, split_batch
from .store import LockLost, MessageStore, Outcome

log = logging.getLogger(__name__)

CBS = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
RECEIVE_CREDIT = 1000


def link_path(address: str | None) -> str:
    """`amqps://host:port/a/b` or `/a/b` or `a/b` -> `a/b` (case preserved)."""
    if not address:
        return ""
    parts = urlsplit(address)
    path = parts.path if parts.scheme else address
    return path.strip("/")


def _with_tracking_id(condition: Condition) -> Condition:
    """The SDK reads condition, description and info by position: always send all three."""
    return Condition(condition.name, condition.description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


@dataclass(eq=False)
class Consumer:
    """A client receiver link reading from one store."""

    conn: EngineConnection
    link: Link
    store: MessageStore
    peek_lock: bool
    unsettled: dict[Delivery, uuid.UUID] = field(default_factory=dict)


@dataclass(eq=False)
class ConnectionState:
    grants: list[Grant] = field(default_factory=list)
    consumers: dict[Link, Consumer] = field(default_factory=dict)
    reply_links: dict[str, Link] = field(default_factory=dict)  # source address -> our sender
    pending_replies: dict[str, list[bytes]] = field(default_factory=dict)


class Broker:
    """Implements `engine.LinkHandler` on top of a `Namespace`."""

    def __init__(
        self,
        namespace: Namespace,
        validator: SasValidator,
        clock: Callable[[], float],
    ) -> None:
        self.namespace = namespace
        self.validator = validator
        self.clock = clock
        self.management = ManagementHandler(namespace, clock)
        self.connections: set[EngineConnection] = set()
        self._consumers_by_store: dict[str, list[Consumer]] = {}
        self._dirty_stores: set[str] = set()
        self._pump_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rr: dict[str, int] = {}
        #: Seconds before an incoming send is settled: a network round trip, for benchmarks.
        self.send_delay_s = 0.0

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _state(conn: EngineConnection) -> ConnectionState:
        state = conn.state.get("sb")
        if state is None:
            state = conn.state["sb"] = ConnectionState()
        assert isinstance(state, ConnectionState)
        return state

    def _authorized(self, conn: EngineConnection, path: str) -> bool:
        now = self.clock()
        return any(g.covers(path, now) for g in self._state(conn).grants)

    @staticmethod
    def _refuse(link: Link, condition: str, description: str) -> None:
        link.condition = Condition(condition, description)
        link.open()
        link.close()

    def notify_available(self, store: MessageStore) -> None:
        if store.path in self._consumers_by_store:
            self._schedule_pump(store.path)

    def _schedule_pump(self, path: str) -> None:
        self._dirty_stores.add(path)
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump_dirty)

    def _pump_dirty(self) -> None:
        self._pump_scheduled = False
        dirty, self._dirty_stores = self._dirty_stores, set()
        touched: set[EngineConnection] = set()
        for path in dirty:
            touched.update(self._pump_store(path))
        self.namespace.commit()  # receive-and-delete removals
        for conn in touched:
            conn.flush()

    def _pump_store(self, path: str) -> set[EngineConnection]:
        """Hand available messages to the store's consumers with credit, round-robin."""
        consumers = [c for c in self._consumers_by_store.get(path, []) if not c.conn.closed]
        touched: set[EngineConnection] = set()
        if not consumers:
            return touched
        start = self._rr.get(path, 0)
        progressed = True
        while progressed:
            progressed = False
            for i in range(len(consumers)):
                consumer = consumers[(start + i) % len(consumers)]
                if consumer.link.credit > 0 and self._send_one(consumer):
                    progressed = True
                    touched.add(consumer.conn)
            start += 1
        self._rr[path] = start % len(consumers)
        for consumer in consumers:
            if consumer.link.drain_mode and consumer.link.credit > 0:
                consumer.link.drained()
                touched.add(consumer.conn)
        return touched

    def _send_one(self, consumer: Consumer) -> bool:
        env = consumer.store.take(self.clock(), lock=consumer.peek_lock)
        if env is None:
            return False
        payload = encode_envelope(env, locked=consumer.peek_lock)
        # The lock token travels as the 16-byte delivery tag (the SDK reads it with bytes_le).
        token = env.lock_token if consumer.peek_lock and env.lock_token is not None else uuid.uuid4()
        link = consumer.link
        delivery = link.delivery(token.bytes_le)
        link.send(payload)
        link.advance()
        if consumer.peek_lock:
            consumer.unsettled[delivery] = token
        else:
            delivery.settle()
        return True

    # -- LinkHandler --------------------------------------------------------------------------
    def on_link_open(self, conn: EngineConnection, link: Link) -> None:
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        state = self._state(conn)
        if link.is_receiver:
            path = link_path(link.remote_target.address)
            if path != CBS and not path.lower().endswith(MANAGEMENT_SUFFIX):
                if not self._authorized(conn, path):
                    self._refuse(
                        link, "amqp:unauthorized-access", f"Unauthorized access to '{path}'. Put a token first."
                    )
                    return
                # An unknown entity is reported on each transfer (rejected, amqp:not-found): the SDK's
                # sender drops the condition of a link detach, but surfaces a rejected delivery's as
                # MessagingEntityNotFoundError.
                with contextlib.suppress(EntityNotFound):
                    limit = self.namespace.sendable(path).properties.max_message_size
                    link.max_message_size = limit
                    # The SDK sizes ServiceBusMessageBatch from this vendor property.
                    link.properties = {symbol("com.microsoft:max-message-batch-size"): ulong(limit)}
            link.open()
            link.flow(RECEIVE_CREDIT)
            return
        # our sender: the client receives
        path = link_path(link.remote_source.address)
        if path == CBS or path.lower().endswith(MANAGEMENT_SUFFIX):
            state.reply_links[path.lower()] = link
            link.open()
            return
        if not self._authorized(conn, path):
            self._refuse(link, "amqp:unauthorized-access", f"Unauthorized access to '{path}'. Put a token first.")
            return
        try:
            store = self.namespace.receivable(path)
        except EntityNotFound as exc:
            self._refuse(link, "amqp:not-found", str(exc))
            return
        link.open()
        consumer = Consumer(conn, link, store, peek_lock=link.remote_snd_settle_mode != Link.SND_SETTLED)
        state.consumers[link] = consumer
        self._consumers_by_store.setdefault(store.path, []).append(consumer)

    def on_link_close(self, conn: EngineConnection, link: Link) -> None:
        state = self._state(conn)
        consumer = state.consumers.pop(link, None)
        if consumer is not None:
            self._drop_consumer(consumer)
        for key, reply in list(state.reply_links.items()):
            if reply == link:
                del state.reply_links[key]

    def _drop_consumer(self, consumer: Consumer) -> None:
        consumers = self._consumers_by_store.get(consumer.store.path, [])
        if consumer in consumers:
            consumers.remove(consumer)
        if not consumers:
            self._consumers_by_store.pop(consumer.store.path, None)

    def on_connection_closed(self, conn: EngineConnection) -> None:
        state = self._state(conn)
        for consumer in state.consumers.values():
            self._drop_consumer(consumer)
        state.consumers.clear()
        self.connections.discard(conn)

    def on_link_flow(self, conn: EngineConnection, link: Link) -> None:
        state = self._state(conn)
        consumer = state.consumers.get(link)
        if consumer is not None:
            self._schedule_pump(consumer.store.path)
            return
        for address, reply in state.reply_links.items():
            if reply == link:
                self._flush_replies(conn, address)

    def on_transfer(self, conn: EngineConnection, link: Link, delivery: Delivery, payload: bytes) -> None:
        path = link_path(link.remote_target.address)
        if link.credit < RECEIVE_CREDIT // 2:
            link.flow(RECEIVE_CREDIT - link.credit)
        if path == CBS:
            self._on_cbs(conn, delivery, payload)
        elif path.lower().endswith(MANAGEMENT_SUFFIX):
            self._on_management(conn, path, delivery, payload)
        else:
            self._on_send(conn, path, delivery, payload)

    def _settle_incoming(self, delivery: Delivery, condition: Condition | None = None) -> None:
        if condition is None:
            delivery.update(Delivery.ACCEPTED)
        else:
            # The SDK reads condition, description and info by position: always send all three.
            delivery.local.condition = _with_tracking_id(condition)
            delivery.update(Delivery.REJECTED)
        delivery.settle()

    def _on_send(self, conn: EngineConnection, path: str, delivery: Delivery, payload: bytes) -> None:
        condition: Condition | None = None
        try:
            messages = self._parse_transfer(payload)
            self.namespace.send(path, messages, self.clock())
            self.namespace.commit()
        except MessageTooLarge as exc:
            condition = Condition("amqp:link:message-size-exceeded", str(exc))
        except EntityNotFound as exc:
            condition = Condition("amqp:not-found", str(exc))
        except MessageFormatError as exc:
            condition = Condition("amqp:decode-error", str(exc))
        if self.send_delay_s > 0 and self._loop is not None:
            self._loop.call_later(self.send_delay_s, self._settle_later, conn, delivery, condition)
        else:
            self._settle_incoming(delivery, condition)

    def _settle_later(self, conn: EngineConnection, delivery: Delivery, condition: Condition | None) -> None:
        if not conn.closed:
            self._settle_incoming(delivery, condition)
            conn.flush()

    @staticmethod
    def _parse_transfer(payload: bytes) -> list[IncomingMessage]:
        bodies = split_batch(payload)
        if bodies is not None:
            try:
                return [parse_message(b) for b in bodies]
            except MessageFormatError:
                pass  # a plain message whose binary body merely looked like an encoded message
        return [parse_message(payload)]

    # -- CBS ----------------------------------------------------------------------------------
    def _on_cbs(self, conn: EngineConnection, delivery: Delivery, payload: bytes) -> None:
        request = Message()
        request.decode(payload)
        self._settle_incoming(delivery)
        props = request.properties or {}
        operation = props.get("operation")
        status, description = 200, "OK"
        if operation != "put-token":
            status, description = 400, f"unsupported CBS operation {operation!r}"
        else:
            token = request.body
            if isinstance(token, bytes | memoryview):
                token = bytes(token).decode("utf-8", "replace")
            try:
                grant = self.validator.validate(str(token), self.clock())
            except TokenRejected as exc:
                status, description = 401, f"InvalidSignature: {exc}"
                log.info("CBS put-token rejected for %s: %s", props.get("name"), exc)
            else:
                self._state(conn).grants.append(grant)
        reply = Message(
            correlation_id=request.id,
            properties={"status-code": int32(status), "status-description": description},
        )
        self._reply(conn, CBS, request.reply_to, reply.encode())

    # -- $management --------------------------------------------------------------------------
    def _on_management(self, conn: EngineConnection, path: str, delivery: Delivery, payload: bytes) -> None:
        request = Message()
        request.decode(payload)
        self._settle_incoming(delivery)
        entity = path[: -len(MANAGEMENT_SUFFIX)]
        props = request.properties or {}
        operation = str(props.get("operation", ""))
        if not self._authorized(conn, entity):
            status, description, body, condition = (
                401,
                f"Unauthorized access to '{entity}'",
                {},
                "amqp:unauthorized-access",
            )
        else:
            try:
                result = self.management.handle(entity, operation, request.body)
                status, description, body, condition = result.status, result.description, result.body, result.condition
            except EntityNotFound as exc:
                status, description, body, condition = 404, str(exc), {}, "amqp:not-found"
            except (MessageTooLarge, MessageFormatError, ValueError, KeyError, TypeError) as exc:
                status, description, body, condition = 400, f"bad request: {exc}", {}, "com.microsoft:argument-error"
        app: dict[str, Any] = {"statusCode": int32(status), "statusDescription": description}
        if condition:
            app["errorCondition"] = condition
            app["error-condition"] = condition
        self.namespace.commit()
        reply = Message(correlation_id=request.id, properties=app, body=body)
        self._reply(conn, path, request.reply_to, reply.encode())
        self._pump_all_dirty_now()

    def _pump_all_dirty_now(self) -> None:
        if self._dirty_stores:
            self._pump_dirty()

    def _reply(self, conn: EngineConnection, request_path: str, reply_to: str | None, encoded: bytes) -> None:
        state = self._state(conn)
        key = (
            link_path(reply_to).lower()
            if reply_to and link_path(reply_to).lower() in state.reply_links
            else request_path.lower()
        )
        state.pending_replies.setdefault(key, []).append(encoded)
        self._flush_replies(conn, key)

    def _flush_replies(self, conn: EngineConnection, key: str) -> None:
        state = self._state(conn)
        link = state.reply_links.get(key)
        queue = state.pending_replies.get(key)
        if link is None or not queue:
            return
        while queue and link.credit > 0:
            encoded = queue.pop(0)
            delivery = link.delivery(uuid.uuid4().bytes)
            link.send(encoded)
            link.advance()
            delivery.settle()

    # -- dispositions from consumers ----------------------------------------------------------
    def on_disposition(self, conn: EngineConnection, link: Link, delivery: Delivery) -> None:
        consumer = self._state(conn).consumers.get(link)
        token = consumer.unsettled.pop(delivery, None) if consumer is not None else None
        if consumer is None or token is None:
            delivery.settle()
            return
        remote = delivery.remote
        kind = delivery.remote_state
        reason = description = None
        modify: dict[str, Any] | None = None
        if kind == Delivery.ACCEPTED:
            outcome = Outcome.COMPLETE
        elif kind == Delivery.RELEASED:
            outcome = Outcome.RELEASE
        elif kind == Delivery.MODIFIED:
            outcome = Outcome.DEFER if remote.undeliverable else Outcome.ABANDON
            if remote.annotations:
                modify = {str(k): v for k, v in remote.annotations.items()}
        elif kind == Delivery.REJECTED:
            outcome = Outcome.DEAD_LETTER
            cond = remote.condition
            if cond is not None:
                info = {str(k): v for k, v in (cond.info or {}).items()}
                reason = info.get("DeadLetterReason")
                description = info.get("DeadLetterErrorDescription", cond.description)
        else:
            consumer.unsettled[delivery] = token  # a non-terminal state (received): wait for the outcome
            return
        try:
            consumer.store.settle(token, outcome, self.clock(), reason, description, modify)
            self.namespace.commit()
        except LockLost as exc:
            delivery.local.condition = _with_tracking_id(Condition("com.microsoft:message-lock-lost", str(exc)))
            delivery.update(Delivery.REJECTED)
            delivery.settle()
            return
        if kind == Delivery.MODIFIED:
            delivery.local.failed = remote.failed
            delivery.local.undeliverable = remote.undeliverable
        delivery.update(kind)
        delivery.settle()
        self._pump_all_dirty_now()

    # -- timers and faults --------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        self.namespace.tick(now)
        self._pump_all_dirty_now()
        self.namespace.commit()
        for conn in list(self.connections):
            conn.tick(now)

    def drop_connections(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        return len(conns)
