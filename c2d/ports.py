"""The boundaries the app logic talks to. `c2d.iothub` and `c2d.servicebus` implement them;
unit tests substitute them (and nothing deeper)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from c2d.messages import C2DMessage, SendResult
from c2d.outcomes import Outcome

if TYPE_CHECKING:
    from c2d.registry import QueryResult
    from c2d.status_store import OutcomeRecord, RequestContext


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


class DeviceRegistry(Protocol):
    def query_device_ids(self, query: str, cap: int) -> QueryResult: ...

    def purge(self, device_id: str) -> int: ...


class OutcomeLedger(Protocol):
    """Where FeedbackProcessor reads a message's request context and records its final outcome."""

    def check_reachable(self) -> None:
        """Raises `StoreUnavailable` if the status table cannot be reached now."""
        ...

    def contexts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RequestContext]: ...

    def record_outcomes(self, outcomes: Sequence[OutcomeRecord]) -> None: ...
