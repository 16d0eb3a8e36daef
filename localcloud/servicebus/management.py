"""The `$management` operations azure-servicebus uses, on the namespace's state: request body in, reply out.

The request/response plumbing (links, correlation, authorisation) is the engine's (`localcloud.amqp.management`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from proton import Array, Data, symbol, timestamp

from localcloud.amqp.errors import NOT_IMPLEMENTED
from localcloud.amqp.management import ManagementReply as Reply

from .message import DeliveryView, IncomingMessage, encode_for_delivery, parse_message
from .namespace import Namespace, Topic
from .store import Envelope, LockLost, Settlement

OP = "com.microsoft:"
LOCK_LOST = "com.microsoft:message-lock-lost"
NOT_FOUND = "com.microsoft:message-not-found"
ARGUMENT_ERROR = "com.microsoft:argument-error"

_DISPOSITIONS = {
    "completed": Settlement.COMPLETE,
    "abandoned": Settlement.ABANDON,
    "suspended": Settlement.DEAD_LETTER,
    "defered": Settlement.DEFER,
}


def delivery_annotations(env: Envelope, locked: bool) -> dict[Any, Any]:
    out: dict[Any, Any] = {
        k: v
        for k, v in env.message.annotations.items()
        if not str(k).startswith(("x-opt-sequence-number", "x-opt-enqueued-time", "x-opt-locked-until"))
    }
    out[symbol("x-opt-sequence-number")] = env.sequence_number
    out[symbol("x-opt-enqueued-time")] = timestamp(int(env.enqueued_time * 1000))
    if locked:
        out[symbol("x-opt-locked-until")] = timestamp(int(env.locked_until * 1000))
    if env.dead_letter_source:
        out[symbol("x-opt-deadletter-source")] = env.dead_letter_source
    return out


def encode_envelope(env: Envelope, locked: bool) -> bytes:
    view = DeliveryView(
        delivery_count=env.delivery_count,
        annotations=delivery_annotations(env, locked),
        extra_app_props=env.extra_app_props,
        ttl_ms=env.message.ttl_ms,
    )
    return encode_for_delivery(env.message, view)


def _tokens(body: dict[str, Any]) -> list[uuid.UUID]:
    raw = body.get("lock-tokens") or []
    return [t if isinstance(t, uuid.UUID) else uuid.UUID(str(t)) for t in raw]


def _seqs(body: dict[str, Any]) -> list[int]:
    return [int(s) for s in (body.get("sequence-numbers") or [])]


class ManagementOperations:
    """Executes one request against one entity path (a queue, subscription or DLQ)."""

    def __init__(self, namespace: Namespace, clock: Callable[[], float]) -> None:
        self.namespace = namespace
        self.clock = clock

    def handle(self, entity_path: str, operation: str, body: Any) -> Reply:
        if not isinstance(body, dict):
            body = {}
        body = {str(k): v for k, v in body.items()}
        op = operation.removeprefix(OP)
        handler = getattr(self, "_op_" + op.replace("-", "_"), None)
        if handler is None:
            return Reply(501, f"operation {operation!r} is not supported by the emulator", {}, NOT_IMPLEMENTED)
        return handler(entity_path, body)

    def _op_renew_lock(self, path: str, body: dict[str, Any]) -> Reply:
        store = self.namespace.receivable(path)
        now = self.clock()
        expirations = []
        for token in _tokens(body):
            try:
                expirations.append(int(store.renew(token, now) * 1000))
            except LockLost as exc:
                return Reply(410, str(exc), {}, LOCK_LOST)
        return Reply(
            200,
            "OK",
            {
                "expirations": Array(Data.NULL, Data.TIMESTAMP, *expirations)
                if expirations
                else Array(Data.NULL, Data.TIMESTAMP)
            },
        )

    def _op_update_disposition(self, path: str, body: dict[str, Any]) -> Reply:
        store = self.namespace.receivable(path)
        status = str(body.get("disposition-status", ""))
        settlement = _DISPOSITIONS.get(status)
        if settlement is None:
            return Reply(400, f"unknown disposition-status {status!r}", {}, ARGUMENT_ERROR)
        now = self.clock()
        modify = body.get("properties-to-modify")
        for token in _tokens(body):
            try:
                store.settle(
                    token,
                    settlement,
                    now,
                    reason=body.get("deadletter-reason"),
                    description=body.get("deadletter-description"),
                    properties_to_modify={str(k): v for k, v in modify.items()} if isinstance(modify, dict) else None,
                )
            except LockLost as exc:
                return Reply(410, str(exc), {}, LOCK_LOST)
        return Reply(200, "OK", {})

    def _op_peek_message(self, path: str, body: dict[str, Any]) -> Reply:
        store = self.namespace.receivable(path)
        start = int(body.get("from-sequence-number", 1))
        count = int(body.get("message-count", 1))
        envs = store.peek(start, count)
        if not envs:
            return Reply(204, "No messages", {})
        items = [{"message": encode_envelope(e, locked=False)} for e in envs]
        return Reply(200, "OK", {"messages": items})

    def _op_schedule_message(self, path: str, body: dict[str, Any]) -> Reply:
        raw = body.get("messages") or []
        parsed: list[IncomingMessage] = [parse_message(bytes(item["message"])) for item in raw]
        seqs = self.namespace.send(path, parsed, self.clock()).sequence_numbers
        return Reply(200, "OK", {"sequence-numbers": Array(Data.NULL, Data.LONG, *seqs)})

    def _op_cancel_scheduled_message(self, path: str, body: dict[str, Any]) -> Reply:
        entity = self.namespace.sendable(path)
        stores = [s.store for s in entity.subscriptions.values()] if isinstance(entity, Topic) else [entity.store]
        for seq in _seqs(body):
            for store in stores:
                store.cancel_scheduled(seq)
        return Reply(200, "OK", {})

    def _op_receive_by_sequence_number(self, path: str, body: dict[str, Any]) -> Reply:
        store = self.namespace.receivable(path)
        lock = int(body.get("receiver-settle-mode", 1)) == 1
        now = self.clock()
        items = []
        for seq in _seqs(body):
            env = store.take_deferred(seq, now, lock)
            if env is None:
                return Reply(404, f"deferred message {seq} not found", {}, NOT_FOUND)
            item: dict[Any, Any] = {"message": encode_envelope(env, locked=lock)}
            if lock and env.lock_token is not None:
                item["lock-token"] = env.lock_token
            items.append(item)
        return Reply(200, "OK", {"messages": items})
