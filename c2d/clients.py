"""Process-wide clients, created on first use and reused by every invocation (Functions guidance).

Nothing is created at import time, and each getter imports only its own adapter, so SendC2D never
loads Service Bus code and FeedbackProcessor never loads the HTTP path. A client rebuilds its own
connection after a failure; the object itself lives as long as the worker process.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

from c2d.config import (
    FeedbackSettings,
    SendSettings,
    StatusSettings,
    load_feedback_settings,
    load_iothub_settings,
    load_send_settings,
    load_servicebus_settings,
    load_status_settings,
    load_table_settings,
)
from c2d.errors import ConfigurationError

if TYPE_CHECKING:
    from c2d.iothub import C2DSender, FeedbackReceiver
    from c2d.journal import SendJournal
    from c2d.registry import Registry
    from c2d.servicebus import OutcomePublisher
    from c2d.status_store import StatusStore
    from c2d.tables import Table

_lock = threading.Lock()
_sender: C2DSender | None = None
_receiver: FeedbackReceiver | None = None
_publisher: OutcomePublisher | None = None
_table: Table | None = None
_registry: Registry | None = None
_exit_hook_registered = False


def _close_at_exit() -> None:
    """Close every client when the worker process exits normally (AMQP close frames, not a reset)."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(close_all)
        _exit_hook_registered = True


def get_sender() -> C2DSender:
    """Raises `ConfigurationError` naming every bad IoT Hub setting."""
    global _sender
    with _lock:
        if _sender is None:
            from c2d.iothub import C2DSender

            _sender = C2DSender(load_iothub_settings())
            _close_at_exit()
        return _sender


def get_feedback_receiver() -> FeedbackReceiver:
    global _receiver
    with _lock:
        if _receiver is None:
            from c2d.iothub import FeedbackReceiver

            _receiver = FeedbackReceiver(load_iothub_settings(), prefetch=load_feedback_settings().batch_size)
            _close_at_exit()
        return _receiver


def get_publisher() -> OutcomePublisher:
    """Raises `ConfigurationError` naming every bad Service Bus setting."""
    global _publisher
    with _lock:
        if _publisher is None:
            from c2d.servicebus import OutcomePublisher

            _publisher = OutcomePublisher(load_servicebus_settings())
            _close_at_exit()
        return _publisher


def _get_table() -> Table:
    global _table
    from c2d.tables import Table

    with _lock:
        if _table is None:
            _table = Table(load_table_settings())
            _close_at_exit()
        return _table


def get_journal() -> SendJournal:
    """Raises `ConfigurationError` naming every bad storage setting."""
    from c2d.journal import SendJournal

    return SendJournal(_get_table())


def get_status_store() -> StatusStore:
    """Raises `ConfigurationError` naming every bad storage setting."""
    from c2d.status_store import StatusStore

    return StatusStore(_get_table())


def get_registry() -> Registry:
    """The device registry (queries, purges). Raises `ConfigurationError` naming every bad IoT Hub setting."""
    global _registry
    from c2d.registry import Registry

    with _lock:
        if _registry is None:
            settings = load_iothub_settings()
            _registry = Registry(settings, https_port=settings.https_port)
        return _registry


def status_settings() -> StatusSettings:
    return load_status_settings()


def public_base_url() -> str | None:
    """C2D_PUBLIC_BASE_URL, or None when it is unset or invalid (then links use the request's host)."""
    try:
        return load_status_settings().public_base_url
    except ConfigurationError:
        return None


def send_settings() -> SendSettings:
    return load_send_settings()


def feedback_settings() -> FeedbackSettings:
    return load_feedback_settings()


def close_all() -> None:
    """Close and forget every client (tests, and a clean worker shutdown)."""
    global _sender, _receiver, _publisher, _table, _registry
    with _lock:
        for client in (_sender, _receiver, _publisher, _table):
            if client is not None:
                client.close()
        _sender = _receiver = _publisher = _table = _registry = None
