"""Spawn the local host as a subprocess on free ports and wait until it is ready (tests, the local cloud).

with running_host(app_root, settings={"X": "1"}) as host:
    requests to host.base_url ...; host.run_function("Tick"); host.output()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class HostStartError(RuntimeError):
    pass


@dataclass
class HostProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    port: int
    status: dict[str, Any]
    log_path: Path
    master_key: str | None = None
    final_output: str | None = None  # kept when the host has stopped and its temp folder is gone

    def output(self) -> str:
        """Everything the host (and the worker) printed so far."""
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(errors="replace")

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.master_key:
            headers["x-functions-key"] = self.master_key
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def run_function(self, name: str, input_text: str = "") -> int:
        """POST /admin/functions/<name> like the real admin API; returns the status (202 when accepted)."""
        status, _ = self._request("POST", f"/admin/functions/{name}", json.dumps({"input": input_text}).encode())
        return status

    def host_status(self) -> dict[str, Any]:
        status, body = self._request("GET", "/admin/host/status")
        if status != 200:
            raise HostStartError(f"/admin/host/status answered {status}")
        return json.loads(body)

    def wait_for_output(self, text: str, timeout: float = 60.0) -> str:
        """Wait until the output contains `text`; return the whole output."""

        def found() -> str | None:
            out = self.output()
            return out if text in out else None

        return str(wait_until(found, timeout, f"host output to contain {text!r}"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM was ignored: kill the host's whole process group (host + worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_host(
    app_root: Path,
    settings: dict[str, str] | None = None,
    *,
    port: int = 0,
    timeout: float = 120.0,
    verbose: bool = False,
    master_key: str | None = None,
) -> Iterator[HostProcess]:
    """Start `python -m localcloud host` for `app_root` with extra app settings; stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="funchost-"))
    settings_file = workdir / "settings.json"
    settings_file.write_text(json.dumps(settings or {}))
    ready_file = workdir / "ready.json"
    log_path = workdir / "host.log"
    cmd = [
        sys.executable, "-m", "localcloud", "host", "--app-root", str(app_root), "--port", str(port),
        "--settings-file", str(settings_file), "--ready-file", str(ready_file), "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    if verbose:
        cmd.append("--verbose")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(PROJECT_ROOT), env=env, start_new_session=True,
        )  # fmt: skip
    running: HostProcess | None = None
    try:
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if process.poll() is not None:
                raise HostStartError(f"host exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise HostStartError(f"host not ready after {timeout} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        status = json.loads(ready_file.read_text())
        host_port = int(status["port"])
        running = HostProcess(process, f"http://127.0.0.1:{host_port}", host_port, status, log_path, master_key)
        yield running
    finally:
        stop_process(process)
        if running is not None:
            running.final_output = log_path.read_text(errors="replace")
        shutil.rmtree(workdir, ignore_errors=True)
