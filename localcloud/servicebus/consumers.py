"""Client receivers: hand available messages to the links with credit, round-robin, and settle what
comes back (peek-lock: the lock token travels as the 16-byte delivery tag, read with bytes_le)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proton import Condition, Delivery, Link

from localcloud.amqp.errors import error_condition
from localcloud.amqp.links import ServiceConnection

from .management import encode_envelope
from .store import LockLost, MessageStore, Settlement

LOCK_LOST = "com.microsoft:message-lock-lost"


@dataclass(eq=False)
class Consumer:
    """A client receiver link reading from one store."""

    conn: ServiceConnection
    link: Link
    store: MessageStore
    peek_lock: bool
    unsettled: dict[Delivery, uuid.UUID] = field(default_factory=dict)


def _settlement_of(
    kind: Any, delivery: Delivery
) -> tuple[Settlement, str | None, str | None, dict[str, Any] | None] | None:
    """The client's disposition (`kind`, its remote state) as a settlement with (reason, description,
    properties to modify); None while it is not final."""
    if kind == Delivery.ACCEPTED:
        return Settlement.COMPLETE, None, None, None
    if kind == Delivery.RELEASED:
        return Settlement.RELEASE, None, None, None
    remote = delivery.remote
    if kind == Delivery.MODIFIED:
        modify = {str(k): v for k, v in remote.annotations.items()} if remote.annotations else None
        return (Settlement.DEFER if remote.undeliverable else Settlement.ABANDON), None, None, modify
    if kind == Delivery.REJECTED:
        condition = remote.condition
        if condition is None:
            return Settlement.DEAD_LETTER, None, None, None
        info = {str(k): v for k, v in (condition.info or {}).items()}
        description = info.get("DeadLetterErrorDescription", condition.description)
        return Settlement.DEAD_LETTER, info.get("DeadLetterReason"), description, None
    return None


class Consumers:
    """Every consumer of the emulator, by link and by store; the store pump runs once per loop turn."""

    def __init__(self, clock: Callable[[], float], commit: Callable[[], None]) -> None:
        self.clock = clock
        self._commit = commit
        self._by_link: dict[Link, Consumer] = {}
        self._by_store: dict[str, list[Consumer]] = {}
        self._dirty_stores: set[str] = set()
        self._pump_scheduled = False
        self._next_index: dict[str, int] = {}  # round-robin position per store

    def add(self, consumer: Consumer) -> None:
        self._by_link[consumer.link] = consumer
        self._by_store.setdefault(consumer.store.path, []).append(consumer)

    def remove(self, link: Link) -> None:
        consumer = self._by_link.pop(link, None)
        if consumer is None:
            return
        consumers = self._by_store.get(consumer.store.path, [])
        if consumer in consumers:
            consumers.remove(consumer)
        if not consumers:
            self._by_store.pop(consumer.store.path, None)

    def forget_connection(self, conn: ServiceConnection) -> None:
        for link, consumer in list(self._by_link.items()):
            if consumer.conn is conn:
                self.remove(link)

    # ---- delivering -------------------------------------------------------------------------
    def notify_available(self, store: MessageStore) -> None:
        if store.path in self._by_store:
            self._schedule_pump(store.path)

    def on_flow(self, link: Link) -> None:
        consumer = self._by_link.get(link)
        if consumer is not None:
            self._schedule_pump(consumer.store.path)

    def _schedule_pump(self, path: str) -> None:
        self._dirty_stores.add(path)
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        """Deliver from every store that changed since the last pump."""
        self._pump_scheduled = False
        dirty, self._dirty_stores = self._dirty_stores, set()
        touched: set[ServiceConnection] = set()
        for path in dirty:
            touched.update(self._pump_store(path))
        self._commit()  # receive-and-delete removals
        for conn in touched:
            conn.flush()

    def pump_if_dirty(self) -> None:
        if self._dirty_stores:
            self.pump()

    def _pump_store(self, path: str) -> list[ServiceConnection]:
        consumers = [c for c in self._by_store.get(path, []) if not c.conn.closed]
        touched: list[ServiceConnection] = []
        if not consumers:
            return touched
        start = self._next_index.get(path, 0)
        progressed = True
        while progressed:
            progressed = False
            for i in range(len(consumers)):
                consumer = consumers[(start + i) % len(consumers)]
                if consumer.link.credit > 0 and self._send_one(consumer):
                    progressed = True
                    touched.append(consumer.conn)
            start += 1
        self._next_index[path] = start % len(consumers)
        for consumer in consumers:
            if consumer.link.drain_mode and consumer.link.credit > 0:
                consumer.link.drained()
                touched.append(consumer.conn)
        return touched

    def _send_one(self, consumer: Consumer) -> bool:
        env = consumer.store.take(self.clock(), lock=consumer.peek_lock)
        if env is None:
            return False
        payload = encode_envelope(env, locked=consumer.peek_lock)
        token = env.lock_token if consumer.peek_lock and env.lock_token is not None else uuid.uuid4()
        link = consumer.link
        delivery = link.delivery(token.bytes_le)  # type: ignore[arg-type]  # proton takes bytes tags too
        link.send(payload)
        link.advance()
        if consumer.peek_lock:
            consumer.unsettled[delivery] = token
        else:
            delivery.settle()
        return True

    # ---- settling ---------------------------------------------------------------------------
    def on_disposition(self, link: Link, delivery: Delivery) -> None:
        consumer = self._by_link.get(link)
        token = consumer.unsettled.pop(delivery, None) if consumer is not None else None
        if consumer is None or token is None:
            delivery.settle()
            return
        kind = delivery.remote_state
        settlement = _settlement_of(kind, delivery)
        if settlement is None:
            consumer.unsettled[delivery] = token  # a non-terminal state (received): wait for the final one
            return
        how, reason, description, modify = settlement
        try:
            consumer.store.settle(token, how, self.clock(), reason, description, modify)
            self._commit()
        except LockLost as exc:
            self._answer(delivery, Delivery.REJECTED, error_condition(LOCK_LOST, str(exc)))
            return
        if kind == Delivery.MODIFIED:
            delivery.local.failed = delivery.remote.failed
            delivery.local.undeliverable = delivery.remote.undeliverable
        # Service Bus answers each disposition with a settled one carrying the same delivery state.
        self._answer(delivery, kind, None)
        self.pump_if_dirty()

    @staticmethod
    def _answer(delivery: Delivery, state: Any, condition: Condition | None) -> None:
        if condition is not None:
            delivery.local.condition = condition
        delivery.update(state)
        delivery.settle()
