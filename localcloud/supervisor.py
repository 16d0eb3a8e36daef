"""Background processes that outlive the command that started them (`make up` / `make down`):
spawn into a log under `.localcloud/run/`, remember their pids, check and stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

from localcloud.paths import REPO_ROOT, RUN_DIR

PIDS_FILE = RUN_DIR / "pids.json"


def spawn_background(name: str, command: list[str], env: dict[str, str] | None = None) -> int:
    """Start `command` in its own session, output to `<run dir>/<name>.log`; returns its pid."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
    return process.pid


def log_of(name: str) -> str:
    path = RUN_DIR / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def saved_pids() -> dict[str, int]:
    return json.loads(PIDS_FILE.read_text()) if PIDS_FILE.exists() else {}


def save_pids(pids: dict[str, int]) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    PIDS_FILE.write_text(json.dumps(pids))


def stop_group(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM the process group `pid` leads, SIGKILL it if it outlives `timeout_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
