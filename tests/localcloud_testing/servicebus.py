"""Receiving from the Service Bus emulator with the real SDK until enough messages arrived."""

from __future__ import annotations

import time
from typing import Any

WAIT_S = 10.0


def receive(receiver: Any, count: int, deadline_s: float = WAIT_S) -> list[Any]:
    """Receive (sync SDK) until `count` messages arrived or the deadline passed."""
    got: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < count and time.monotonic() < deadline:
        got += receiver.receive_messages(max_message_count=count - len(got), max_wait_time=1)
    return got


async def receive_async(receiver: Any, count: int, deadline_s: float = WAIT_S) -> list[Any]:
    """The same with the aio SDK."""
    got: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < count and time.monotonic() < deadline:
        got += await receiver.receive_messages(max_message_count=count - len(got), max_wait_time=1)
    return got
