"""One receivable entity's messages: a queue, a subscription, or a dead-letter sub-queue.

Pure state, no I/O: the AMQP server calls it with the current time. A message is in exactly one
state: available, locked (peek-lock delivery in flight), deferred, or scheduled.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum, auto
from typing import Any

from .config import EntityProperties
from .message import IncomingMessage
from .persistence import Journal, StoredRow

DEAD_LETTER_SUFFIX = "/$deadletterqueue"


class State(StrEnum):
    """Where a message is inside one entity; its value is the name in lower case."""

    AVAILABLE = auto()
    LOCKED = auto()  # a peek-lock delivery is in flight
    DEFERRED = auto()  # received only by sequence number
    SCHEDULED = auto()  # waits for its enqueue time


class Settlement(Enum):
    """How a receiver settles a locked message (the `$management` update-disposition names as values)."""

    COMPLETE = "completed"
    ABANDON = "abandoned"
    DEAD_LETTER = "suspended"
    DEFER = "defered"
    RELEASE = "released"


class LockLost(Exception):
    """The lock token is unknown or its lock expired."""


@dataclass(eq=False)
class Envelope:
    """One copy of a message inside one entity."""

    message: IncomingMessage
    sequence_number: int
    enqueued_time: float
    expires_at: float
    delivery_count: int = 0
    state: State = State.AVAILABLE
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    scheduled_time: float | None = None
    extra_app_props: dict[str, Any] | None = None
    dead_letter_source: str | None = None
    deferred: bool = False  # once deferred, a message is only received by sequence number


@dataclass
class StoreStats:
    available: int
    locked: int
    deferred: int
    scheduled: int
    dead_lettered: int


@dataclass(eq=False)
class MessageStore:
    path: str  # lower-case entity path, e.g. "c2d-outcomes/subscriptions/all"
    display_name: str
    properties: EntityProperties
    dead_letter: MessageStore | None = None
    on_available: Callable[[MessageStore], None] | None = None
    journal: Journal | None = None
    _messages: dict[int, Envelope] = field(default_factory=dict)
    _available: list[int] = field(default_factory=list)  # heap of sequence numbers
    _locks: dict[uuid.UUID, Envelope] = field(default_factory=dict)
    _lock_heap: list[tuple[float, int, uuid.UUID]] = field(default_factory=list)
    _scheduled: list[tuple[float, int]] = field(default_factory=list)
    _expiries: list[tuple[float, int]] = field(default_factory=list)
    _next_sequence: int = 1

    # -- enqueue ------------------------------------------------------------------------------
    def next_sequence_number(self) -> int:
        seq = self._next_sequence
        self._next_sequence += 1
        return seq

    def next_sequence_number_peek(self) -> int:
        return self._next_sequence

    def raise_sequence(self, next_seq: int) -> None:
        self._next_sequence = max(self._next_sequence, next_seq)

    def enqueue(self, message: IncomingMessage, sequence_number: int, now: float) -> Envelope:
        ttl = self.properties.default_message_ttl
        if message.ttl_ms is not None and message.ttl_ms > 0:
            ttl = min(ttl, message.ttl_ms / 1000.0)
        scheduled = message.scheduled_enqueue_time
        env = Envelope(message, sequence_number, now, now + ttl)
        self._next_sequence = max(self._next_sequence, sequence_number + 1)
        if scheduled is not None and scheduled > now:
            env.state = State.SCHEDULED
            env.scheduled_time = scheduled
            env.expires_at = scheduled + ttl
            self._messages[sequence_number] = env
            self._save(env)
            heapq.heappush(self._scheduled, (scheduled, sequence_number))
            return env
        self._messages[sequence_number] = env
        self._save(env)
        heapq.heappush(self._expiries, (env.expires_at, sequence_number))
        self._make_available(env)
        return env

    def adopt(self, env: Envelope) -> None:
        """Take a message moved here (dead-lettering), keeping its sequence number."""
        env.state = State.AVAILABLE
        env.lock_token = None
        env.expires_at = float("inf")
        self._messages[env.sequence_number] = env
        self._save(env)
        self._make_available(env)

    def restore(self, env: Envelope, now: float) -> None:
        """Put back a message loaded from the journal (see persistence.py)."""
        self._messages[env.sequence_number] = env
        self._next_sequence = max(self._next_sequence, env.sequence_number + 1)
        if env.scheduled_time is not None and env.scheduled_time > now:
            env.state = State.SCHEDULED
            heapq.heappush(self._scheduled, (env.scheduled_time, env.sequence_number))
        elif env.deferred:
            env.state = State.DEFERRED
        else:
            if env.expires_at != float("inf"):
                heapq.heappush(self._expiries, (env.expires_at, env.sequence_number))
            self._make_available(env)

    def _save(self, env: Envelope) -> None:
        if self.journal is not None:
            self.journal.put(
                StoredRow(
                    store=self.path,
                    seq=env.sequence_number,
                    payload=env.message.payload,
                    enqueued=env.enqueued_time,
                    expires=env.expires_at,
                    delivery_count=env.delivery_count,
                    scheduled=env.scheduled_time if env.state is State.SCHEDULED else None,
                    deferred=env.deferred,
                    extra=env.extra_app_props,
                    dl_source=env.dead_letter_source,
                )
            )

    def _remove(self, sequence_number: int) -> None:
        if self._messages.pop(sequence_number, None) is not None and self.journal is not None:
            self.journal.delete(self.path, sequence_number)

    def _make_available(self, env: Envelope) -> None:
        env.state = State.AVAILABLE
        env.lock_token = None
        heapq.heappush(self._available, env.sequence_number)
        if self.on_available is not None:
            self.on_available(self)

    # -- receive ------------------------------------------------------------------------------
    def has_available(self) -> bool:
        return bool(self._available)

    def take(self, now: float, lock: bool) -> Envelope | None:
        """The next available message, locked (peek-lock) or removed (receive-and-delete)."""
        while self._available:
            seq = heapq.heappop(self._available)
            env = self._messages.get(seq)
            if env is None or env.state is not State.AVAILABLE:
                continue
            if env.expires_at <= now:
                self._expire(env)
                continue
            if lock:
                self._lock(env, now)
            else:
                self._remove(seq)
            return env
        return None

    def _lock(self, env: Envelope, now: float) -> None:
        env.state = State.LOCKED
        env.lock_token = uuid.uuid4()
        env.locked_until = now + self.properties.lock_duration
        self._locks[env.lock_token] = env
        heapq.heappush(self._lock_heap, (env.locked_until, env.sequence_number, env.lock_token))

    def _expire(self, env: Envelope) -> None:
        self._remove(env.sequence_number)
        if self.properties.dead_lettering_on_message_expiration and self.dead_letter is not None:
            self._move_to_dead_letter(env, "TTLExpiredException", "The message expired and was dead lettered.")

    def _move_to_dead_letter(self, env: Envelope, reason: str | None, description: str | None) -> None:
        self._remove(env.sequence_number)
        if self.dead_letter is None:
            return
        extra = dict(env.extra_app_props or {})
        if reason is not None:
            extra["DeadLetterReason"] = reason
        if description is not None:
            extra["DeadLetterErrorDescription"] = description
        env.extra_app_props = extra
        env.dead_letter_source = self.display_name
        self.dead_letter.adopt(env)

    # -- settle -------------------------------------------------------------------------------
    def _locked(self, token: uuid.UUID, now: float) -> Envelope:
        env = self._locks.get(token)
        if env is None or env.state is not State.LOCKED or env.lock_token != token:
            raise LockLost(f"the lock {token} is unknown or expired")
        if env.locked_until <= now:
            self._lock_expired(env)
            raise LockLost(f"the lock {token} expired")
        return env

    def settle(
        self,
        token: uuid.UUID,
        settlement: Settlement,
        now: float,
        reason: str | None = None,
        description: str | None = None,
        properties_to_modify: dict[str, Any] | None = None,
    ) -> None:
        env = self._locked(token, now)
        del self._locks[token]
        env.lock_token = None
        if properties_to_modify:
            env.extra_app_props = {**(env.extra_app_props or {}), **properties_to_modify}
        if settlement is Settlement.COMPLETE:
            self._remove(env.sequence_number)
        elif settlement is Settlement.RELEASE:
            self._return(env)
        elif settlement is Settlement.ABANDON:
            self._count_failed_delivery(env)
        elif settlement is Settlement.DEAD_LETTER:
            self._move_to_dead_letter(env, reason, description)
        elif settlement is Settlement.DEFER:
            env.deferred = True
            env.state = State.DEFERRED
            self._save(env)

    def _count_failed_delivery(self, env: Envelope) -> None:
        env.delivery_count += 1
        if env.delivery_count >= self.properties.max_delivery_count and self.dead_letter is not None:
            self._move_to_dead_letter(
                env,
                "MaxDeliveryCountExceeded",
                f"Message could not be consumed after {self.properties.max_delivery_count} delivery attempts.",
            )
        else:
            self._save(env)
            self._return(env)

    def _return(self, env: Envelope) -> None:
        """Back to where it was received from: the queue, or the deferred set."""
        if env.deferred:
            env.state = State.DEFERRED
            env.lock_token = None
        else:
            self._make_available(env)

    def _lock_expired(self, env: Envelope) -> None:
        if env.lock_token is not None:
            self._locks.pop(env.lock_token, None)
        env.lock_token = None
        self._count_failed_delivery(env)

    def renew(self, token: uuid.UUID, now: float) -> float:
        env = self._locked(token, now)
        env.locked_until = now + self.properties.lock_duration
        heapq.heappush(self._lock_heap, (env.locked_until, env.sequence_number, token))
        return env.locked_until

    def is_locked(self, token: uuid.UUID) -> bool:
        return token in self._locks

    # -- timers -------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Expire locks and enqueue scheduled messages whose time has come."""
        while self._lock_heap and self._lock_heap[0][0] <= now:
            until, _seq, token = heapq.heappop(self._lock_heap)
            env = self._locks.get(token)
            if env is not None and env.locked_until <= now and env.locked_until == until:
                self._lock_expired(env)
        while self._scheduled and self._scheduled[0][0] <= now:
            _when, seq = heapq.heappop(self._scheduled)
            env = self._messages.get(seq)
            if env is not None and env.state is State.SCHEDULED:
                env.enqueued_time = now
                heapq.heappush(self._expiries, (env.expires_at, seq))
                self._make_available(env)
                self._save(env)
        while self._expiries and self._expiries[0][0] <= now:
            _when, seq = heapq.heappop(self._expiries)
            env = self._messages.get(seq)
            # Locked messages expire when their lock ends; deferred ones only when fetched.
            if env is not None and env.state is State.AVAILABLE and env.expires_at <= now:
                self._expire(env)

    def next_deadline(self) -> float | None:
        times = []
        if self._lock_heap:
            times.append(self._lock_heap[0][0])
        if self._scheduled:
            times.append(self._scheduled[0][0])
        if self._expiries:
            times.append(self._expiries[0][0])
        return min(times) if times else None

    # -- management ---------------------------------------------------------------------------
    def peek(self, from_sequence: int, count: int) -> list[Envelope]:
        seqs = sorted(s for s, e in self._messages.items() if s >= from_sequence)
        return [self._messages[s] for s in seqs[:count]]

    def cancel_scheduled(self, sequence_number: int) -> None:
        env = self._messages.get(sequence_number)
        if env is not None and env.state is State.SCHEDULED:
            self._remove(sequence_number)

    def take_deferred(self, sequence_number: int, now: float, lock: bool) -> Envelope | None:
        env = self._messages.get(sequence_number)
        if env is None or env.state is not State.DEFERRED:
            return None
        if lock:
            self._lock(env, now)
        else:
            self._remove(sequence_number)
        return env

    def stats(self) -> StoreStats:
        counts = dict.fromkeys(State, 0)
        for env in self._messages.values():
            counts[env.state] += 1
        dlq = len(self.dead_letter._messages) if self.dead_letter is not None else 0
        return StoreStats(
            available=counts[State.AVAILABLE],
            locked=counts[State.LOCKED],
            deferred=counts[State.DEFERRED],
            scheduled=counts[State.SCHEDULED],
            dead_lettered=dlq,
        )

    def clear(self) -> None:
        """Drop every message (the emulator's reset); sequence numbers go on."""
        for sequence_number in list(self._messages):
            self._remove(sequence_number)
        self._available.clear()
        self._locks.clear()
        self._lock_heap.clear()
        self._scheduled.clear()
        self._expiries.clear()

    def envelopes(self) -> list[Envelope]:
        return list(self._messages.values())
