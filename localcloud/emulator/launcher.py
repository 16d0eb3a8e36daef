"""Spawn an emulator process (`python -m localcloud <service> ...`), wait for its READY line, stop it.

Its output goes to a log file; the READY line there names the bound ports (ask for port 0 and no
port is ever raced for). Each emulator wraps this in its own `launcher.py` with its flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localcloud.paths import REPO_ROOT

from .ready import ReadyInfo, find_ready


class EmulatorStartError(RuntimeError):
    """The emulator exited, or did not print READY in time; the message holds its log's tail."""


def log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class EmulatorProcess:
    service: str
    process: subprocess.Popen[bytes]
    ready: ReadyInfo
    log_path: Path

    def port(self, listener: str) -> int:
        return self.ready.port(listener)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout_s: float = 10.0) -> None:
        terminate(self.process, timeout_s)


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)


def spawn(
    service: str,
    args: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> EmulatorProcess:
    """Start `python -m localcloud <service> <args>` and return once it printed READY."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localcloud", service, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout_s
    try:
        while (ready := find_ready(log_path.read_text(errors="replace"))) is None:
            if process.poll() is not None:
                raise EmulatorStartError(f"{service} emulator exited with {process.returncode}:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise EmulatorStartError(f"{service} emulator not ready after {timeout_s} s:\n{log_tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        terminate(process)
        raise
    return EmulatorProcess(service, process, ready, log_path)
