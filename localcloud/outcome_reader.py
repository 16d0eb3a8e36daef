"""Reading outcome events back from a subscription with the real azure-servicebus SDK (tests, demo, bench)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusReceiveMode
from azure.servicebus.exceptions import ServiceBusError


@dataclass(frozen=True)
class ReceivedOutcome:
    message_id: str
    correlation_id: str
    subject: str
    properties: dict[str, str]
    body: dict[str, Any]
    #: When Service Bus enqueued it on the topic (epoch seconds, the broker's clock): the outcome was published.
    enqueued_at: float = 0.0
    #: When this reader received it (epoch seconds, this process's clock).
    received_at: float = 0.0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class OutcomeReader:
    """Collects everything on one subscription (peek-lock, completed), keeping it for later assertions."""

    def __init__(self, connection_string: str, subscription: str = "all", topic: str = "c2d-outcomes") -> None:
        self._connection_string, self._subscription, self._topic = connection_string, subscription, topic
        self.seen: list[ReceivedOutcome] = []
        self._open()

    def _open(self) -> None:
        self._client = ServiceBusClient.from_connection_string(self._connection_string)
        self._receiver = self._client.get_subscription_receiver(
            self._topic, self._subscription, receive_mode=ServiceBusReceiveMode.PEEK_LOCK
        )
        self._opened = False

    def poll(self, wait_s: float = 0.5) -> list[ReceivedOutcome]:
        """Receive what is there; a message counts as seen once completed (a dropped connection makes
        Service Bus redeliver uncompleted ones, which are then seen once, not twice)."""
        new = []
        try:
            # The SDK counts opening the link against max_wait_time: give the first call room for it.
            wait_s = wait_s if self._opened else max(wait_s, 5.0)
            batch = self._receiver.receive_messages(max_message_count=200, max_wait_time=wait_s)
            received_at = time.time()
            self._opened = True
            for message in batch:
                outcome = ReceivedOutcome(
                    message_id=_text(message.message_id),
                    correlation_id=_text(message.correlation_id),
                    subject=_text(message.subject),
                    properties={_text(k): _text(v) for k, v in (message.application_properties or {}).items()},
                    body=json.loads(str(message)),
                    enqueued_at=message.enqueued_time_utc.timestamp() if message.enqueued_time_utc else 0.0,
                    received_at=received_at,
                )
                self._receiver.complete_message(message)
                new.append(outcome)
        except ServiceBusError:
            self.close()
            time.sleep(0.5)
            self._open()
        self.seen.extend(new)
        return new

    def wait_for(self, predicate: Callable[[list[ReceivedOutcome]], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.seen):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; saw {self.seen}")
            self.poll()

    def for_message(self, message_id: str) -> list[ReceivedOutcome]:
        return [o for o in self.seen if o.correlation_id == message_id]

    def close(self) -> None:
        for closable in (self._receiver, self._client):
            with contextlib.suppress(ServiceBusError):
                closable.close()
