"""Waiting for a background process to be ready, and the signs each one gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from localcloud.emulator.ready import ReadyInfo, find_ready
from localcloud.supervisor import alive, log_of


def wait_ready[T](name: str, pid: int, probe: Callable[[], T | None], timeout_s: float = 90.0) -> T:
    """Poll `probe` until it returns something; raise RuntimeError (with the log's tail) if `pid` dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if not alive(pid):
            raise RuntimeError(f"{name} exited while starting:\n{log_of(name)[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout_s} s:\n{log_of(name)[-3000:]}")


def emulator_ready(name: str) -> Callable[[], ReadyInfo | None]:
    """An emulator is ready once its READY line is in its log."""
    return lambda: find_ready(log_of(name))


def file_exists(path: Path) -> Callable[[], bool]:
    """The Functions host is ready once it wrote its ready file."""
    return path.exists


def log_contains(name: str, text: str) -> Callable[[], bool]:
    """Azurite is ready once it logged that it listens."""
    return lambda: text in log_of(name)
