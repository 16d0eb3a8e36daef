"""Start the emulator as a subprocess on free ports, for tests and scripts.

    with start_emulator(config_path=...) as sb:
        client = ServiceBusClient.from_connection_string(sb.connection_string)
        sb.admin.entities()

The child picks its own free ports (port 0) and reports them on its READY line, so there is no
race between choosing a port and binding it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from localcloud.redact import with_key

from .admin import AdminClient

REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorStartError(RuntimeError):
    """The emulator process exited or did not report READY in time."""


@dataclass
class RunningEmulator:
    process: subprocess.Popen[str]
    amqp_port: int
    admin_port: int
    connection_string: str = field(repr=False)
    key: str = field(repr=False)
    admin: AdminClient = field(repr=False)
    log_lines: list[str] = field(default_factory=list)

    def connection_string_with_key(self, key: str) -> str:
        return self.connection_string.replace(f"SharedAccessKey={self.key};", f"SharedAccessKey={key};")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _drain(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


def launch(
    config_path: str | os.PathLike[str] | None = None,
    key: str = "SAS_KEY_VALUE",
    tick_interval: float = 0.02,
    ready_timeout: float = 60.0,
    extra_args: list[str] | None = None,
    data_file: str | os.PathLike[str] | None = None,
) -> RunningEmulator:
    """Start the emulator and wait for its READY line; the caller must `stop()` it."""
    cmd = [sys.executable, "-m", "localcloud", "servicebus", "--host", "127.0.0.1", "--port", "0", "--admin-port", "0"]
    cmd += ["--tick-interval", str(tick_interval), "--log-level", "WARNING"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    if data_file is not None:
        cmd += ["--data-file", str(data_file)]
    cmd += extra_args or []
    env = {**os.environ, "SERVICEBUS_EMULATOR_KEY": key}  # the key stays off the command line
    process = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    log_lines: list[str] = []
    stderr_reader = threading.Thread(target=_drain, args=(process.stderr, log_lines), daemon=True)
    stderr_reader.start()
    first_line: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(ready_timeout)  # the READY line, or EOF if the process died
    ready: dict[str, object] | None = None
    if first_line and first_line[0].startswith("READY "):
        ready = json.loads(first_line[0][len("READY ") :])
    if ready is None:
        process.kill()
        process.wait()
        stderr_reader.join(5)
        raise EmulatorStartError("Service Bus emulator did not start:\n" + "\n".join(log_lines[-30:]))
    threading.Thread(target=_drain, args=(process.stdout, log_lines), daemon=True).start()
    admin_port = int(ready["adminPort"])  # type: ignore[arg-type]
    return RunningEmulator(
        process=process,
        amqp_port=int(ready["amqpPort"]),  # type: ignore[arg-type]
        admin_port=admin_port,
        connection_string=with_key(str(ready["connectionString"]), key),
        key=key,
        admin=AdminClient(f"http://127.0.0.1:{admin_port}"),
        log_lines=log_lines,
    )


@contextmanager
def start_emulator(
    config_path: str | os.PathLike[str] | None = None,
    key: str = "SAS_KEY_VALUE",
    tick_interval: float = 0.02,
    data_file: str | os.PathLike[str] | None = None,
) -> Iterator[RunningEmulator]:
    emulator = launch(config_path=config_path, key=key, tick_interval=tick_interval, data_file=data_file)
    try:
        yield emulator
    finally:
        emulator.stop()
