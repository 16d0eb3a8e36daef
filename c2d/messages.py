"""The C2D message as handed to the IoT Hub adapter, and the result of sending it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from c2d.errors import C2DError

ACK_MODES = ("none", "positive", "negative", "full")


@dataclass(frozen=True)
class C2DMessage:
    device_id: str
    message_id: str
    body: bytes
    ack: str = "full"
    expires_at: datetime | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SendResult:
    device_id: str
    message_id: str
    error: C2DError | None = None

    @property
    def sent(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """Sent, Failed (IoT Hub refused it or it never left), or Unknown (no disposition came back)."""
        if self.error is None:
            return "Sent"
        return "Unknown" if self.error.code == "OutcomeUnknown" else "Failed"
