"""Sending a validated command: one message per device, all pipelined in one call to the sender."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from c2d.commands import C2DCommand
from c2d.logs import log_event
from c2d.messages import C2DMessage, SendResult
from c2d.ports import MessageSender

logger = logging.getLogger("c2d.send")


def send_command(
    command: C2DCommand,
    sender: MessageSender,
    now: datetime,
    new_message_id: Callable[[str], str] = lambda _device: str(uuid.uuid4()),
) -> tuple[list[C2DMessage], list[SendResult]]:
    messages = command.to_messages(now, new_message_id)
    results = sender.send_many(messages)
    log_results(messages, results)
    return messages, results


def log_results(messages: Sequence[C2DMessage], results: Sequence[SendResult]) -> None:
    """One `c2d.send` line per message: what was sent where, or why not."""
    sent_lines = logger.isEnabledFor(logging.INFO)  # asked once: a fan-out logs thousands of lines
    for message, result in zip(messages, results, strict=True):
        if result.error is None and not sent_lines:
            continue
        fields: dict[str, object] = {
            "status": result.status,
            "deviceId": message.device_id,
            "messageId": message.message_id,
            "correlationId": message.correlation_id,
            "ack": message.ack,
        }
        if result.error is not None:
            fields["error"] = result.error.code
            fields["reason"] = result.error.message
            if result.error.tracking_id:
                fields["trackingId"] = result.error.tracking_id
        log_event(logger, "send", logging.INFO if result.sent else logging.WARNING, **fields)
