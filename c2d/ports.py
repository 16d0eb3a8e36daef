"""The boundaries the app logic talks to. `c2d.iothub` and `c2d.servicebus` implement them;
unit tests substitute them (and nothing deeper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from c2d.messages import C2DMessage, SendResult
from c2d.outcomes import Outcome


class MessageSender(Protocol):
    def send_many(self, messages: Sequence[C2DMessage]) -> list[SendResult]: ...


class OutcomeSink(Protocol):
    def publish(self, outcomes: Sequence[Outcome]) -> None: ...

    def check_reachable(self) -> None:
        """Open the connection to the topic now; raises `PublishFailed` if it cannot be reached."""
        ...


class SettleableFeedback(Protocol):
    body: bytes
    delivery_count: int

    def accept(self) -> None: ...

    def release(self) -> None: ...

    def reject(self, reason: str) -> None: ...


class FeedbackSource(Protocol):
    def receive(self, max_messages: int, timeout_s: float) -> Sequence[SettleableFeedback]: ...

    def close(self) -> None:
        """End the receive link (called after every drain, so nothing stays prefetched and locked)."""
        ...
