"""Hub state: device registry, per-device C2D queues and the feedback queue.

Pure logic, no I/O: the protocol endpoints call it from one asyncio loop (no locks needed) and
`tick()` drives the timers (lock expiry, TTL, feedback flush). Semantics follow
iot-hub-devguide-messages-c2d: Enqueued -> Invisible (locked) -> Completed | Dead-lettered | Enqueued.
"""

from __future__ import annotations

import base64
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .config import DeviceSpec, HubConfig, Limits
from .twins import Twin, apply_twin_patch

ACK_MODES = ("none", "positive", "negative", "full")
#: Feedback deliveries kept for /admin/feedback-deliveries (benchmarks time the feedback reader with them).
FEEDBACK_DELIVERY_HISTORY = 20_000
#: The feedback statuses IoT Hub writes, with the description this hub writes beside each.
FEEDBACK_DESCRIPTIONS = {
    "Success": "Success",
    "Expired": "Message expired",
    "DeliveryCountExceeded": "Message delivery count exceeded",
    "Rejected": "Message rejected",
    "Purged": "Message purged",
}


class State(StrEnum):
    """A C2D message's state (iot-hub-devguide-messages-c2d); Completed and DeadLettered are final."""

    ENQUEUED = "Enqueued"
    INVISIBLE = "Invisible"
    COMPLETED = "Completed"
    DEAD_LETTERED = "DeadLettered"


class SendError(Exception):
    """A C2D send refused by the hub; `condition` is the AMQP error condition."""

    def __init__(self, condition: str, description: str, http_status: int, tracking_id: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description
        self.http_status = http_status
        self.tracking_id = tracking_id


def _refusal(condition: str, description: str, http_status: int) -> SendError:
    """A refused send with its own tracking id (made only for refusals: accepted sends need none)."""
    tracking = uuid.uuid4().hex
    return SendError(condition, f"{description}. TrackingId:{tracking}", http_status, tracking)


class LockError(LookupError):
    """Unknown or expired lock token (HTTP 412 PreconditionFailed)."""


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Device:
    device_id: str
    primary_key: str = field(repr=False)
    secondary_key: str = field(repr=False)
    generation_id: str = field(default_factory=lambda: str(int(time.time() * 1e6)))
    etag: str = field(default_factory=lambda: base64.b64encode(os.urandom(6)).decode())
    status: str = "enabled"

    def keys(self) -> list[str]:
        return [k for k in (self.primary_key, self.secondary_key) if k]


def initial_twin(spec: DeviceSpec) -> Twin:
    """A device's twin as the hub creates it, with the tags and reported properties the config gives."""
    twin = Twin(spec.device_id)
    patch: dict[str, Any] = {}
    if spec.tags:
        patch["tags"] = spec.tags
    if spec.reported:
        patch["properties"] = {"reported": spec.reported}
    return apply_twin_patch(twin, patch) if patch else twin


@dataclass
class CloudMessage:
    device_id: str
    body: bytes
    message_id: str | None
    enqueued_at: float
    expires_at: float
    to: str = ""
    correlation_id: str | None = None
    user_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    ack: str = "none"
    app_properties: dict[str, str] = field(default_factory=dict)
    state: State = State.ENQUEUED
    delivery_count: int = 0
    lock_token: str | None = None
    locked_until: float | None = None  # None while INVISIBLE = held by a connection (MQTT in flight)


@dataclass
class FeedbackMessage:
    message_id: str
    records: list[dict[str, str]]
    enqueued_at: float
    expires_at: float
    delivery_count: int = 0
    lock_token: str | None = None
    locked_until: float | None = None


@dataclass
class Stats:
    sent: int = 0
    completed: int = 0
    rejected: int = 0
    expired: int = 0
    abandoned: int = 0
    dead_lettered: int = 0
    purged: int = 0
    feedback_completed: int = 0
    feedback_completed_records: int = 0
    feedback_dead_lettered: int = 0
    feedback_expired: int = 0


class HubStore:
    def __init__(self, config: HubConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.limits: Limits = config.limits
        self.clock = clock
        self.clock_offset_s = 0.0  # /admin/advance-clock: expiry and locks without waiting
        self.devices: dict[str, Device] = {}
        self.twins: dict[str, Twin] = {}
        self.queues: dict[str, list[CloudMessage]] = {}
        self.feedback: list[FeedbackMessage] = []
        self.pending_records: list[dict[str, str]] = []
        self.pending_since: float | None = None
        self.stats = Stats()
        self.throttle_per_min = config.limits.throttle_per_min
        self._send_times: deque[float] = deque()
        self._next_deadline = math.inf  # earliest expiry / lock end: tick() scans queues only after it
        self.c2d_listeners: list[Callable[[str], None]] = []
        self.feedback_listeners: list[Callable[[], None]] = []
        self.feedback_deliveries: deque[dict[str, Any]] = deque(maxlen=FEEDBACK_DELIVERY_HISTORY)
        self.reset()

    def now(self) -> float:
        return self.clock() + self.clock_offset_s

    def advance_clock(self, seconds: float) -> None:
        """Move the hub's clock forward (TTL, locks, feedback timers see it at the next tick)."""
        self.clock_offset_s += seconds
        self._next_deadline = -math.inf  # rescan on the next tick

    # ---- registry -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the configured devices, empty queues, no throttling."""
        self.devices = {d.device_id: Device(d.device_id, d.primary_key, d.secondary_key) for d in self.config.devices}
        self.twins = {d.device_id: initial_twin(d) for d in self.config.devices}
        self.queues = {d: [] for d in self.devices}
        self.feedback.clear()
        self.feedback_deliveries.clear()
        self.pending_records.clear()
        self.pending_since = None
        self.stats = Stats()
        self.limits = self.config.limits
        self.throttle_per_min = self.limits.throttle_per_min
        self._send_times.clear()
        self._next_deadline = math.inf
        self.clock_offset_s = 0.0

    def add_device(self, spec: DeviceSpec) -> Device:
        device = Device(spec.device_id, spec.primary_key or new_key(), spec.secondary_key or new_key())
        self.devices[spec.device_id] = device
        self.twins[spec.device_id] = initial_twin(spec)
        self.queues[spec.device_id] = []
        return device

    def remove_device(self, device_id: str) -> bool:
        self.queues.pop(device_id, None)
        self.twins.pop(device_id, None)
        return self.devices.pop(device_id, None) is not None

    # ---- twins ------------------------------------------------------------------------------
    def twin(self, device_id: str) -> Twin | None:
        """The device's twin as the registry shows it now (status and queue length included)."""
        device, twin = self.devices.get(device_id), self.twins.get(device_id)
        if device is None or twin is None:
            return None
        return replace(
            twin, status=device.status, device_etag=device.etag,
            cloud_to_device_message_count=len(self.queues.get(device_id, [])),
        )

    def all_twins(self) -> list[Twin]:
        return [t for d in self.devices if (t := self.twin(d)) is not None]

    def patch_twin(self, device_id: str, patch: dict[str, Any], etag: str | None = None) -> Twin | None:
        """Apply a twin patch (tags, desired and, for the admin API, reported); None if no such device."""
        if device_id not in self.twins:
            return None
        self.twins[device_id] = apply_twin_patch(self.twins[device_id], patch, etag=etag)
        return self.twin(device_id)

    # ---- C2D ------------------------------------------------------------------------------
    def send(self, device_id: str, msg: CloudMessage) -> CloudMessage:
        now = self.now()
        if self.throttle_per_min > 0:
            while self._send_times and self._send_times[0] <= now - 60:
                self._send_times.popleft()
            if len(self._send_times) >= self.throttle_per_min:
                raise _refusal(
                    "com.microsoft:device-container-throttled",
                    f"ThrottlingException: C2D send rate over {self.throttle_per_min}/min", 429,
                )
        if device_id not in self.devices:
            raise _refusal("amqp:not-found", f"DeviceNotFound: {device_id}", 404)
        if len(msg.body) > self.limits.max_message_bytes:
            raise _refusal(
                "amqp:link:message-size-exceeded",
                f"MessageTooLarge: {len(msg.body)} > {self.limits.max_message_bytes} bytes", 413,
            )
        queue = self.queues[device_id]
        if len(queue) >= self.limits.queue_depth:
            raise _refusal(
                "amqp:resource-limit-exceeded", f"DeviceMaximumQueueDepthExceeded: {self.limits.queue_depth}", 403
            )
        if self.throttle_per_min > 0:
            self._send_times.append(now)
        msg.device_id = device_id
        msg.enqueued_at = now
        if msg.message_id is None:
            msg.message_id = str(uuid.uuid4())
        if msg.ack not in ACK_MODES:
            msg.ack = "none"
        queue.append(msg)
        self._note_deadline(msg.expires_at)
        self.stats.sent += 1
        for listener in self.c2d_listeners:
            listener(device_id)
        return msg

    def default_expiry(self) -> float:
        return self.now() + self.limits.default_ttl_s

    def receive(self, device_id: str, lock_s: float | None) -> CloudMessage | None:
        """Lock the next Enqueued message. lock_s=None: held until settled or released by the caller."""
        self._expire_device(device_id, self.now())
        for msg in self.queues.get(device_id, []):
            if msg.state is State.ENQUEUED:
                msg.state = State.INVISIBLE
                msg.delivery_count += 1
                msg.lock_token = str(uuid.uuid4())
                msg.locked_until = None if lock_s is None else self.now() + lock_s
                if msg.locked_until is not None:
                    self._note_deadline(msg.locked_until)
                return msg
        return None

    def _locked(self, device_id: str, lock_token: str) -> CloudMessage:
        for msg in self.queues.get(device_id, []):
            if msg.lock_token == lock_token and msg.state is State.INVISIBLE:
                return msg
        raise LockError(f"lock token {lock_token} unknown or expired")

    def complete(self, device_id: str, lock_token: str) -> None:
        msg = self._locked(device_id, lock_token)
        self._finish(msg, State.COMPLETED, "Success", "Success")
        self.stats.completed += 1

    def reject(self, device_id: str, lock_token: str) -> None:
        msg = self._locked(device_id, lock_token)
        self._finish(msg, State.DEAD_LETTERED, "Rejected", "Message rejected")
        self.stats.rejected += 1

    def abandon(self, device_id: str, lock_token: str) -> None:
        self._release(self._locked(device_id, lock_token))
        self.stats.abandoned += 1

    def _release(self, msg: CloudMessage) -> None:
        """Back to Enqueued, or dead-lettered once maxDeliveryCount deliveries were used."""
        if msg.delivery_count >= self.limits.max_delivery_count:
            self._finish(msg, State.DEAD_LETTERED, "DeliveryCountExceeded", "Message delivery count exceeded")
            return
        msg.state = State.ENQUEUED
        msg.lock_token = None
        msg.locked_until = None
        self._note_deadline(msg.expires_at)
        for listener in self.c2d_listeners:
            listener(msg.device_id)

    def purge(self, device_id: str) -> int:
        queue = self.queues.get(device_id, [])
        count = len(queue)
        for msg in list(queue):
            self._finish(msg, State.DEAD_LETTERED, "Purged", "Message purged", dead_letter_stat=False)
        self.stats.purged += count
        return count

    def _finish(
        self, msg: CloudMessage, state: State, status: str, description: str, dead_letter_stat: bool = True
    ) -> None:
        msg.state = state
        msg.lock_token = None
        queue = self.queues.get(msg.device_id)
        if queue is not None and msg in queue:
            queue.remove(msg)
        if state is State.DEAD_LETTERED and dead_letter_stat:
            self.stats.dead_lettered += 1
        wanted = {"full"} | ({"positive"} if status == "Success" else {"negative"})
        if msg.ack in wanted:
            self._add_record(msg, status, description)
        for listener in self.c2d_listeners:
            listener(msg.device_id)  # a slot freed / state changed

    def _note_deadline(self, when: float) -> None:
        self._next_deadline = min(self._next_deadline, when)

    def _expire_device(self, device_id: str, now: float) -> None:
        for msg in list(self.queues.get(device_id, [])):
            if msg.state is State.ENQUEUED:
                if msg.expires_at <= now:
                    self._finish(msg, State.DEAD_LETTERED, "Expired", "Message expired")
                    self.stats.expired += 1
                else:
                    self._note_deadline(msg.expires_at)
            elif msg.state is State.INVISIBLE and msg.locked_until is not None:
                if msg.locked_until <= now:
                    self._release(msg)
                else:
                    self._note_deadline(msg.locked_until)

    # ---- feedback -------------------------------------------------------------------------
    def _add_record(self, msg: CloudMessage, status: str, description: str) -> None:
        device = self.devices.get(msg.device_id)
        self.pending_records.append(
            {
                "originalMessageId": msg.message_id or "",
                "deviceId": msg.device_id,
                "deviceGenerationId": device.generation_id if device else "",
                "statusCode": status,
                "description": description,
                "enqueuedTimeUtc": iso_utc(self.now()),
            }
        )
        if self.pending_since is None:
            self.pending_since = self.now()
        if len(self.pending_records) >= self.limits.feedback_batch_size:
            self.flush_feedback()

    def enqueue_feedback(self, records: Sequence[Mapping[str, str]]) -> int:
        """Synthetic feedback records (benchmarks, tests): queued at once, batched into feedback messages
        of `feedback_batch_size` records as the hub batches them; returns the feedback messages added.

        Each record needs `deviceId` and `originalMessageId`; `statusCode` defaults to Success and must be one
        IoT Hub writes; `description` defaults to the hub's text for that status. Raises ValueError.
        """
        now = self.now()
        stamp = iso_utc(now)
        built = []
        for index, record in enumerate(records):
            device_id, message_id = record.get("deviceId"), record.get("originalMessageId")
            status = record.get("statusCode", "Success")
            if not isinstance(device_id, str) or not device_id or not isinstance(message_id, str) or not message_id:
                raise ValueError(f"record {index}: deviceId and originalMessageId must be non-empty strings")
            if status not in FEEDBACK_DESCRIPTIONS:
                raise ValueError(f"record {index}: statusCode must be one of {', '.join(FEEDBACK_DESCRIPTIONS)}")
            device = self.devices.get(device_id)
            built.append(
                {
                    "originalMessageId": message_id,
                    "deviceId": device_id,
                    "deviceGenerationId": device.generation_id if device else "",
                    "statusCode": status,
                    "description": str(record.get("description") or FEEDBACK_DESCRIPTIONS[status]),
                    "enqueuedTimeUtc": stamp,
                }
            )
        size = self.limits.feedback_batch_size
        for start in range(0, len(built), size):
            self.feedback.append(
                FeedbackMessage(str(uuid.uuid4()), built[start:start + size], now, now + self.limits.feedback_ttl_s)
            )
        if built:
            for listener in self.feedback_listeners:
                listener()
        return -(-len(built) // size)

    def feedback_counts(self) -> dict[str, int]:
        """The feedback queue in numbers (cheap to poll, unlike `snapshot`)."""
        locked = [fb for fb in self.feedback if fb.lock_token is not None]
        return {
            "messages": len(self.feedback),
            "records": sum(len(fb.records) for fb in self.feedback),
            "locked": len(locked),
            "pending_records": len(self.pending_records),
            "completed": self.stats.feedback_completed,
            "completed_records": self.stats.feedback_completed_records,
            "dead_lettered": self.stats.feedback_dead_lettered,
            "expired": self.stats.feedback_expired,
        }

    def flush_feedback(self) -> None:
        size = self.limits.feedback_batch_size
        now = self.now()
        while self.pending_records:
            batch, self.pending_records = self.pending_records[:size], self.pending_records[size:]
            self.feedback.append(FeedbackMessage(str(uuid.uuid4()), batch, now, now + self.limits.feedback_ttl_s))
        self.pending_since = None
        for listener in self.feedback_listeners:
            listener()

    def receive_feedback(self, lock_s: float | None = None) -> FeedbackMessage | None:
        now = self.now()
        self._expire_feedback(now)
        for fb in self.feedback:
            if fb.lock_token is None:
                fb.delivery_count += 1
                fb.lock_token = str(uuid.uuid4())
                fb.locked_until = now + (self.limits.feedback_lock_s if lock_s is None else lock_s)
                self._note_delivery(fb, now)
                return fb
        return None

    def _note_delivery(self, fb: FeedbackMessage, now: float) -> None:
        """When each feedback message was flushed and handed to a reader (epoch seconds, the hub's clock)."""
        self.feedback_deliveries.append({
            "messageId": fb.message_id,
            "enqueuedAt": fb.enqueued_at,
            "deliveredAt": now,
            "deliveryCount": fb.delivery_count,
            "originalMessageIds": [r["originalMessageId"] for r in fb.records],
        })

    def _locked_feedback(self, lock_token: str) -> FeedbackMessage:
        for fb in self.feedback:
            if fb.lock_token == lock_token:
                return fb
        raise LockError(f"feedback lock token {lock_token} unknown or expired")

    def feedback_complete(self, lock_token: str) -> None:
        fb = self._locked_feedback(lock_token)
        self.feedback.remove(fb)
        self.stats.feedback_completed += 1
        self.stats.feedback_completed_records += len(fb.records)

    def feedback_dead_letter(self, lock_token: str) -> None:
        self.feedback.remove(self._locked_feedback(lock_token))
        self.stats.feedback_dead_lettered += 1

    def feedback_abandon(self, lock_token: str) -> None:
        self._release_feedback(self._locked_feedback(lock_token))

    def _release_feedback(self, fb: FeedbackMessage) -> None:
        if fb.delivery_count >= self.limits.feedback_max_delivery_count:
            self.feedback.remove(fb)
            self.stats.feedback_dead_lettered += 1
            return
        fb.lock_token = None
        fb.locked_until = None
        for listener in self.feedback_listeners:
            listener()

    def _expire_feedback(self, now: float) -> None:
        for fb in list(self.feedback):
            if fb.lock_token is not None and fb.locked_until is not None and fb.locked_until <= now:
                self._release_feedback(fb)
            elif fb.lock_token is None and fb.expires_at <= now:
                self.feedback.remove(fb)
                self.stats.feedback_expired += 1

    # ---- timers ---------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.now()
        if now >= self._next_deadline:
            self._next_deadline = math.inf
            for device_id in list(self.queues):
                self._expire_device(device_id, now)
        self._expire_feedback(now)
        if self.pending_since is not None and now - self.pending_since >= self.limits.feedback_interval_s:
            self.flush_feedback()

    def snapshot(self) -> dict[str, Any]:
        """Queues and feedback for /admin/state (bodies left out)."""
        return {
            "hub_name": self.config.hub_name,
            "throttle_per_min": self.throttle_per_min,
            "devices": {
                device_id: [
                    {
                        "messageId": m.message_id,
                        "state": m.state.value,
                        "deliveryCount": m.delivery_count,
                        "ack": m.ack,
                        "expiresAt": iso_utc(m.expires_at),
                    }
                    for m in queue
                ]
                for device_id, queue in self.queues.items()
            },
            "feedback": [
                {
                    "messageId": f.message_id,
                    "locked": f.lock_token is not None,
                    "deliveryCount": f.delivery_count,
                    "records": f.records,
                }
                for f in self.feedback
            ],
            "pending_feedback_records": list(self.pending_records),
            "stats": vars(self.stats).copy(),
        }
