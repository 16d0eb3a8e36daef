"""Process-wide clients, created on first use and reused by every invocation (Functions guidance).

Nothing is created at import time, and each getter imports only its own adapter, so SendC2D never
loads Service Bus code and FeedbackProcessor never loads the HTTP path. A client rebuilds its own
connection after a failure; the object itself lives as long as the worker process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from c2d.config import (
    FeedbackSettings,
    SendSettings,
    load_feedback_settings,
    load_iothub_settings,
    load_send_settings,
    load_servicebus_settings,
)

if TYPE_CHECKING:
    from c2d.iothub import C2DSender, FeedbackReceiver
    from c2d.servicebus import OutcomePublisher

_lock = threading.Lock()
_sender: C2DSender | None = None
_receiver: FeedbackReceiver | None = None
_publisher: OutcomePublisher | None = None


def get_sender() -> C2DSender:
    """Raises `ConfigurationError` naming every bad IoT Hub setting."""
    global _sender
    with _lock:
        if _sender is None:
            from c2d.iothub import C2DSender

            _sender = C2DSender(load_iothub_settings())
        return _sender


def get_feedback_receiver() -> FeedbackReceiver:
    global _receiver
    with _lock:
        if _receiver is None:
            from c2d.iothub import FeedbackReceiver

            _receiver = FeedbackReceiver(load_iothub_settings(), prefetch=load_feedback_settings().batch_size)
        return _receiver


def get_publisher() -> OutcomePublisher:
    """Raises `ConfigurationError` naming every bad Service Bus setting."""
    global _publisher
    with _lock:
        if _publisher is None:
            from c2d.servicebus import OutcomePublisher

            _publisher = OutcomePublisher(load_servicebus_settings())
        return _publisher


def send_settings() -> SendSettings:
    return load_send_settings()


def feedback_settings() -> FeedbackSettings:
    return load_feedback_settings()


def close_all() -> None:
    """Close and forget every client (tests, and a clean worker shutdown)."""
    global _sender, _receiver, _publisher
    with _lock:
        for client in (_sender, _receiver, _publisher):
            if client is not None:
                client.close()
        _sender = _receiver = _publisher = None
