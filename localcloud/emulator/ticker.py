"""An emulator's timers (lock expiry, TTL, scheduled messages, feedback flushes): one callback, run
every interval in the event loop. A failing tick is logged, never fatal: the next one runs anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    def __init__(self, tick: Callable[[], None], interval_s: Callable[[], float]) -> None:
        self._tick = tick
        self._interval_s = interval_s  # read before every wait: run-time limits may change it
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s())
            try:
                self._tick()
            except Exception:  # a timer bug must be visible but must not stop the emulator
                log.exception("emulator tick failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
