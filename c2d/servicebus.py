"""Publishes outcome events to the Service Bus topic with azure-servicebus, in batches.

Not an output binding: Python output bindings can set only the body, and feedback must be
accepted only after its outcomes are known to be published.

Each outcome's AMQP bytes are written by `c2d.outcome_wire` straight into the SDK's own
`ServiceBusMessageBatch` (`c2d.servicebus_batches`), which the SDK then sends as usual: the same
wire content as `to_service_bus_message` + `add_message`, for a fraction of the CPU. The SDK encodes
instead when azure-core tracing is on (it adds trace properties to each message) or when the
once-per-process `wire_check` finds the SDK writes anything differently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError
from azure.core.settings import settings as azure_settings
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusAuthenticationError

from c2d.config import ServiceBusSettings
from c2d.errors import PublishFailed
from c2d.outcome_wire import CONTENT_TYPE
from c2d.outcomes import Outcome
from c2d.servicebus_batches import UnsupportedBatch, encoded_batches, wire_check

logger = logging.getLogger(__name__)


def to_service_bus_message(outcome: Outcome) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=outcome.body_json(),
        message_id=outcome.message_id,
        correlation_id=outcome.original_message_id,
        subject=outcome.status,
        content_type=CONTENT_TYPE,
        application_properties=dict(outcome.application_properties),  # type: ignore[arg-type]
    )


class OutcomePublisher:
    """One client and topic sender per process, opened lazily, rebuilt after a failure. Thread-safe."""

    def __init__(
        self, settings: ServiceBusSettings, *, credential_factory: Callable[[], object] | None = None
    ) -> None:
        self._settings = settings
        self._credential_factory = credential_factory
        self._client: ServiceBusClient | None = None
        self._sender: ServiceBusSender | None = None
        self._lock = threading.Lock()

    def publish(self, outcomes: Sequence[Outcome]) -> None:
        """Publish every outcome (as few batches as fit) or raise `PublishFailed`.

        A failure part-way may leave some outcomes published: publishing them again is safe,
        the topic's duplicate detection drops them by message id.
        """
        if not outcomes:
            return
        with self._lock:
            try:
                self._publish_locked(outcomes)
            except ServiceBusAuthenticationError:
                self._reset()
                raise PublishFailed("Service Bus refused the app's credentials") from None
            except (AzureError, OSError) as error:
                self._reset()
                raise PublishFailed(f"publishing outcomes to Service Bus failed: {type(error).__name__}") from None

    def check_reachable(self) -> None:
        """Open the topic link now (connection, authentication, attach) without sending anything.

        FeedbackProcessor calls it before taking feedback: while the topic is out of reach the
        feedback stays on IoT Hub untouched, instead of being received, released and redelivered
        every run until IoT Hub drops it after its maxDeliveryCount.
        """
        with self._lock:
            try:
                self._open_sender().create_message_batch()  # the SDK attaches the link to learn its size limit
            except ServiceBusAuthenticationError:
                self._reset()
                raise PublishFailed("Service Bus refused the app's credentials") from None
            except (AzureError, OSError) as error:
                self._reset()
                raise PublishFailed(f"the outcome topic cannot be reached: {type(error).__name__}") from None

    def _publish_locked(self, outcomes: Sequence[Outcome]) -> None:
        sender = self._open_sender()
        if azure_settings.tracing_implementation() is None and _encoded_batches.usable():
            try:
                self._publish_encoded(sender, outcomes)
                return
            except UnsupportedBatch as error:  # e.g. a transport whose batches have another shape
                _encoded_batches.disable(str(error))
        self._publish_stock(sender, outcomes)

    def _publish_encoded(self, sender: ServiceBusSender, outcomes: Sequence[Outcome]) -> None:
        for batch in encoded_batches(sender, outcomes, to_service_bus_message):
            sender.send_messages(batch)

    def _publish_stock(self, sender: ServiceBusSender, outcomes: Sequence[Outcome]) -> None:
        batch = sender.create_message_batch()
        for outcome in outcomes:
            message = to_service_bus_message(outcome)
            try:
                batch.add_message(message)
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise
                sender.send_messages(batch)
                batch = sender.create_message_batch()
                batch.add_message(message)
        if len(batch):
            sender.send_messages(batch)

    def _open_sender(self) -> ServiceBusSender:
        if self._sender is None:
            settings = self._settings
            if settings.connection_string:
                self._client = ServiceBusClient.from_connection_string(
                    settings.connection_string, retry_total=settings.retry_total
                )
            else:
                credential = (self._credential_factory or _default_credential)()
                self._client = ServiceBusClient(
                    settings.namespace or "", credential, retry_total=settings.retry_total  # type: ignore[arg-type]
                )
            self._sender = self._client.get_topic_sender(topic_name=settings.topic)
        return self._sender

    def _reset(self) -> None:
        sender, client = self._sender, self._client
        self._sender = self._client = None
        for closable in (sender, client):
            if closable is not None:
                try:
                    closable.close()
                except (AzureError, OSError) as error:
                    logger.debug("ignoring error while closing Service Bus client: %s", type(error).__name__)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __enter__(self) -> OutcomePublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class _EncodedBatches:
    """Whether `c2d.outcome_wire` writes what this SDK writes: checked once per process."""

    checked: bool = False
    problem: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usable(self) -> bool:
        with self.lock:
            if not self.checked:
                self.problem, self.checked = wire_check(to_service_bus_message), True
                if self.problem:
                    logger.warning("outcomes are encoded by azure-servicebus itself: %s", self.problem)
            return self.problem is None

    def disable(self, reason: str) -> None:
        with self.lock:
            self.problem, self.checked = reason, True
        logger.warning("outcomes are encoded by azure-servicebus itself from now on: %s", reason)


_encoded_batches = _EncodedBatches()


def _default_credential() -> object:
    from azure.identity import DefaultAzureCredential  # imported only for managed-identity setups

    return DefaultAzureCredential()
