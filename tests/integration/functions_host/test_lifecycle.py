"""Host process lifecycle: clean shutdown (worker gone, port closed) and refusal of a non-app folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from localcloud.functions_host.launcher import PROJECT_ROOT, running_host, wait_until

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_stop_kills_worker_and_closes_port(fixture_app: Callable[[str], Path]) -> None:
    with running_host(fixture_app("broken")) as host:
        worker_pid = int(host.status["workerPid"])
        assert _alive(worker_pid) and _port_open(host.port)
        process = host.process
    assert process.returncode == 0  # SIGTERM -> orderly shutdown
    assert host.output().rstrip().endswith("Host stopped.")
    wait_until(lambda: not _alive(worker_pid), 30, "the worker process to be gone")
    assert not _port_open(host.port)


def test_folder_without_host_json_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localcloud", "host", "--app-root", str(tmp_path), "--port", "0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
    )
    assert result.returncode == 1
    assert "host.json not found" in result.stderr


def test_host_stops_when_its_parent_is_gone(tmp_path: Path, fixture_app: Callable[[str], Path]) -> None:
    app = fixture_app("broken")
    # a stand-in for a test runner that gets killed: it starts the host with --parent-pid and dies
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ready = tmp_path / "ready.json"
    log = tmp_path / "host.log"
    with open(log, "wb") as out:
        host = subprocess.Popen(
            [sys.executable, "-m", "localcloud", "host", "--app-root", str(app), "--port", "0",
             "--ready-file", str(ready), "--parent-pid", str(parent.pid)],
            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        )  # fmt: skip
    try:
        wait_until(ready.exists, 120, "the host to be ready")
        parent.kill()
        parent.wait()
        assert host.wait(60) == 0
        assert "parent process" in log.read_text()
    finally:
        for process in (parent, host):
            if process.poll() is None:
                process.kill()
                process.wait()
