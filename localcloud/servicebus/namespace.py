"""The namespace: queues and topics by path, sends with duplicate detection and topic fan-out."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import EntityProperties, NamespaceConfig
from .message import IncomingMessage, parse_message
from .persistence import Journal
from .rules import Rule, compile_rule, facts_for
from .store import DEAD_LETTER_SUFFIX, Envelope, MessageStore


class _NoEntity:
    duplicates: DuplicateDetector | None = None


class EntityNotFound(LookupError):
    """No queue, topic or subscription has that path."""


class MessageTooLarge(ValueError):
    """The message is larger than the entity accepts."""


@dataclass
class DuplicateDetector:
    window: float
    entity: str = ""
    journal: Journal | None = None
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def is_duplicate(self, message_id: str | None, now: float) -> bool:
        """True when `message_id` was accepted within the window; otherwise records it."""
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.window:
                break
            del self._seen[oldest_id]
            if self.journal is not None:
                self.journal.duplicate(self.entity, oldest_id, None)
        if message_id is None:
            return False
        if message_id in self._seen:
            return True
        self.remember(message_id, now)
        return False

    def forget_all(self) -> None:
        for message_id in list(self._seen):
            del self._seen[message_id]
            if self.journal is not None:
                self.journal.duplicate(self.entity, message_id, None)

    def remember(self, message_id: str, seen_at: float) -> None:
        self._seen[message_id] = seen_at
        if self.journal is not None:
            self.journal.duplicate(self.entity, message_id, seen_at)


@dataclass(eq=False)
class Subscription:
    name: str
    store: MessageStore
    rules: tuple[Rule, ...]

    def accepts(self, message: IncomingMessage, sequence_number: int, now: float) -> bool:
        if not self.rules:
            return True
        facts = facts_for(message, sequence_number, now)
        return any(rule.matches(message, facts) for rule in self.rules)


@dataclass(eq=False)
class Queue:
    name: str
    properties: EntityProperties
    store: MessageStore
    duplicates: DuplicateDetector | None

    def accept(self, message: IncomingMessage, now: float) -> int:
        seq = self.store.next_sequence_number()
        self.store.enqueue(message, seq, now)
        return seq


@dataclass(eq=False)
class Topic:
    name: str
    properties: EntityProperties
    subscriptions: dict[str, Subscription]
    duplicates: DuplicateDetector | None
    _next_sequence: int = 1

    def accept(self, message: IncomingMessage, now: float) -> int:
        seq = self._next_sequence
        self._next_sequence += 1
        for sub in self.subscriptions.values():
            if sub.accepts(message, seq, now):
                sub.store.enqueue(message, seq, now)
        return seq


@dataclass
class SendResult:
    accepted: int = 0
    duplicates: int = 0
    sequence_numbers: list[int] = field(default_factory=list)


def _store(
    path: str,
    display: str,
    props: EntityProperties,
    notify: Callable[[MessageStore], None] | None,
    journal: Journal | None,
) -> MessageStore:
    dlq = MessageStore(
        path + DEAD_LETTER_SUFFIX, display + "/$DeadLetterQueue", props, on_available=notify, journal=journal
    )
    return MessageStore(path, display, props, dead_letter=dlq, on_available=notify, journal=journal)


def _detector(props: EntityProperties, entity: str, journal: Journal | None) -> DuplicateDetector | None:
    if not props.requires_duplicate_detection:
        return None
    return DuplicateDetector(props.duplicate_detection_window, entity=entity, journal=journal)


class Namespace:
    """All entities of the emulated namespace, addressed by case-insensitive path."""

    def __init__(
        self,
        config: NamespaceConfig,
        on_available: Callable[[MessageStore], None] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.name = config.name
        self.journal = journal
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}
        self._stores: dict[str, MessageStore] = {}
        for q in config.queues:
            store = _store(q.name.lower(), q.name, q.properties, on_available, journal)
            dup = _detector(q.properties, q.name.lower(), journal)
            self.queues[q.name.lower()] = Queue(q.name, q.properties, store, dup)
            self._register(store)
        for t in config.topics:
            subs: dict[str, Subscription] = {}
            for s in t.subscriptions:
                path = f"{t.name}/subscriptions/{s.name}".lower()
                store = _store(path, f"{t.name}/Subscriptions/{s.name}", s.properties, on_available, journal)
                subs[s.name.lower()] = Subscription(s.name, store, tuple(compile_rule(r) for r in s.rules))
                self._register(store)
            dup = _detector(t.properties, t.name.lower(), journal)
            self.topics[t.name.lower()] = Topic(t.name, t.properties, subs, dup)
        if journal is not None:
            self._restore(journal)

    def _restore(self, journal: Journal) -> None:
        """Reload what a previous run persisted (entities no longer configured are skipped)."""
        now = time.time()
        for row in journal.load_rows():
            store = self._stores.get(row.store)
            if store is None:
                continue
            env = Envelope(
                message=parse_message(row.payload),
                sequence_number=row.seq,
                enqueued_time=row.enqueued,
                expires_at=row.expires,
                delivery_count=row.delivery_count,
                scheduled_time=row.scheduled,
                extra_app_props=row.extra,
                dead_letter_source=row.dl_source,
                deferred=row.deferred,
            )
            store.restore(env, now)
            topic = self.topics.get(row.store.split("/", 1)[0])
            if topic is not None:
                topic._next_sequence = max(topic._next_sequence, row.seq + 1)
        for entity, next_seq in journal.load_counters().items():
            if entity in self.topics:
                self.topics[entity]._next_sequence = max(self.topics[entity]._next_sequence, next_seq)
            elif entity in self.queues:
                self.queues[entity].store.raise_sequence(next_seq)
        for entity, message_id, seen in journal.load_duplicates():
            detector = (self.queues.get(entity) or self.topics.get(entity) or _NoEntity).duplicates
            if detector is not None and now - seen < detector.window:
                detector._seen[message_id] = seen

    def commit(self) -> None:
        """Make every change so far durable (no-op without a journal); call before acknowledging."""
        if self.journal is not None:
            self.journal.commit()

    def _register(self, store: MessageStore) -> None:
        self._stores[store.path] = store
        if store.dead_letter is not None:
            self._stores[store.dead_letter.path] = store.dead_letter

    # -- lookup -------------------------------------------------------------------------------
    def sendable(self, path: str) -> Queue | Topic:
        key = path.strip("/").lower()
        entity = self.queues.get(key) or self.topics.get(key)
        if entity is None:
            raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
        return entity

    def receivable(self, path: str) -> MessageStore:
        store = self._stores.get(path.strip("/").lower())
        if store is None:
            raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
        return store

    def exists(self, path: str) -> bool:
        key = path.strip("/").lower()
        return key in self._stores or key in self.topics

    def stores(self) -> list[MessageStore]:
        return list(self._stores.values())

    # -- send ---------------------------------------------------------------------------------
    def send(self, path: str, messages: list[IncomingMessage], now: float) -> SendResult:
        entity = self.sendable(path)
        limit = entity.properties.max_message_size
        for message in messages:
            if message.size > limit:
                raise MessageTooLarge(
                    f"The received message (size {message.size} bytes) exceeds the limit ({limit} bytes)."
                )
        result = SendResult()
        for message in messages:
            if entity.duplicates is not None and entity.duplicates.is_duplicate(message.message_id, now):
                result.duplicates += 1
                continue
            result.sequence_numbers.append(entity.accept(message, now))
            result.accepted += 1
        if self.journal is not None and result.accepted:
            next_seq = entity._next_sequence if isinstance(entity, Topic) else entity.store.next_sequence_number_peek()
            self.journal.counter(entity.name.lower(), next_seq)
        return result

    def reset(self) -> None:
        """Every entity empty, duplicate detection forgotten (the emulator's reset)."""
        for store in self._stores.values():
            store.clear()
        for entity in (*self.queues.values(), *self.topics.values()):
            if entity.duplicates is not None:
                entity.duplicates.forget_all()
        self.commit()

    def tick(self, now: float) -> None:
        for store in self._stores.values():
            deadline = store.next_deadline()
            if deadline is not None and deadline <= now:
                store.tick(now)

    def snapshot(self) -> dict[str, Any]:
        """Counts per entity, for the admin API."""
        out: dict[str, Any] = {"queues": {}, "topics": {}}
        for q in self.queues.values():
            out["queues"][q.name] = vars(q.store.stats())
        for t in self.topics.values():
            out["topics"][t.name] = {"subscriptions": {s.name: vars(s.store.stats()) for s in t.subscriptions.values()}}
        return out
