"""functionTimeout and worker crashes: the host fails the invocation, restarts the worker, keeps serving."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud.functions_host.launcher import HostProcess, running_host, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def resilience_host(fixture_app: Callable[[str], Path]) -> Iterator[HostProcess]:
    with running_host(fixture_app("resilience")) as host:
        yield host


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _worker_pid(host: HostProcess) -> int:
    status, body = _get(host.base_url + "/api/Fast")
    assert status == 200
    return int(body)


def _restarted(host: HostProcess, old_pid: int) -> bool:
    status = host.host_status()
    return status["state"] == "Running" and status["workerPid"] not in (None, old_pid)


def test_timeout_fails_invocation_and_restarts_worker(resilience_host: HostProcess) -> None:
    old_pid = _worker_pid(resilience_host)
    assert resilience_host.status["workerPid"] == old_pid
    status, _ = _get(resilience_host.base_url + "/api/Slow")  # sleeps 120 s, functionTimeout is 2 s
    assert status == 500
    resilience_host.wait_for_output("Timeout value of 2.0 s exceeded by function 'Functions.Slow'")
    wait_until(lambda: _restarted(resilience_host, old_pid), 60, "a new worker")
    assert _worker_pid(resilience_host) != old_pid


def test_worker_crash_fails_invocation_and_restarts_worker(resilience_host: HostProcess) -> None:
    old_pid = _worker_pid(resilience_host)
    status, _ = _get(resilience_host.base_url + "/api/Crash")  # os._exit(3) in the worker
    assert status == 500
    resilience_host.wait_for_output("Language worker process exited unexpectedly")
    wait_until(lambda: _restarted(resilience_host, old_pid), 60, "a new worker")
    assert _worker_pid(resilience_host) != old_pid
    assert resilience_host.host_status()["workerRestarts"] == 1
