"""Start Azurite (node_modules/.bin/azurite) for local runs and tests: the queue service (the
queue trigger) and the table service (the app's send journal and status table); blob comes along.

    python -m localcloud.azurite [--port 10001] [--table-port 10002] [--location DIR]

prints the connection string and runs until interrupted. From Python use `start_azurite()` or the
`azurite()` context manager (port 0 picks a free port; the actual ones are read from Azurite's output).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localcloud.redact import redact_keys

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AZURITE = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's fixed, publicly documented development account (not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_CLOSED = "Queue service successfully closed"
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://([^:/\s]+):(\d+)")


def connection_string(host: str, port: int, table_port: int | None = None) -> str:
    table = f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT_NAME};" if table_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{ACCOUNT_NAME};{table}"
    )


def expand_development_storage(value: str) -> str:
    """'UseDevelopmentStorage=true' -> the explicit connection string of Azurite's default ports."""
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return connection_string("127.0.0.1", 10001, 10002)
    return value


def _die_with_parent() -> None:
    """In the child before exec: kill it when the process that started it dies (Linux
    PR_SET_PDEATHSIG), so a killed test run leaves no Azurite behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class AzuriteError(RuntimeError):
    pass


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    table_port: int
    location: Path
    log_path: Path
    _owns_location: bool

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.port, self.table_port)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (Azurite saves its data and closes its server), then SIGKILL once it reports
        "successfully closed" or after `timeout`: the node process often lingers after closing,
        e.g. while clients keep idle keep-alive connections open."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                if _CLOSED in self.log_text():
                    break
                time.sleep(0.02)
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if self._owns_location:
            shutil.rmtree(self.location, ignore_errors=True)


def azurite_command(host: str, port: int, table_port: int, location: Path) -> list[str]:
    return [
        str(AZURITE), "--blobHost", host, "--blobPort", "0", "--queueHost", host, "--queuePort", str(port),
        "--tableHost", host, "--tablePort", str(table_port), "--location", str(location),
        "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip


def start_azurite(
    port: int = 0,
    host: str = "127.0.0.1",
    location: Path | None = None,
    timeout: float = 60.0,
    table_port: int = 0,
) -> Azurite:
    """Start Azurite and wait until its queue and table services listen. The caller must call `stop()`."""
    if not AZURITE.exists():
        raise AzuriteError(f"{AZURITE} not found: run 'npm ci' in {PROJECT_ROOT}")
    owns = location is None
    loc = Path(tempfile.mkdtemp(prefix="azurite-")) if location is None else location
    loc.mkdir(parents=True, exist_ok=True)
    log_path = loc / "azurite.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            azurite_command(host, port, table_port, loc),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(loc),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
    azurite = Azurite(process, host, port, table_port, loc, log_path, owns)
    deadline = time.monotonic() + timeout
    try:
        while True:
            listening = {m.group(1): int(m.group(3)) for m in _LISTENING.finditer(azurite.log_text())}
            if "Queue" in listening and "Table" in listening:
                azurite.port, azurite.table_port = listening["Queue"], listening["Table"]
                return azurite
            if process.poll() is not None:
                raise AzuriteError(f"azurite exited with {process.returncode}: {azurite.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AzuriteError(f"azurite did not start within {timeout} s")
            time.sleep(0.05)
    except BaseException:
        azurite.stop()
        raise


@contextlib.contextmanager
def azurite(port: int = 0, host: str = "127.0.0.1", location: Path | None = None) -> Iterator[Azurite]:
    instance = start_azurite(port=port, host=host, location=location, table_port=0)
    try:
        yield instance
    finally:
        instance.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.azurite")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10001, help="queue service port")
    parser.add_argument("--table-port", type=int, default=10002, help="table service port")
    parser.add_argument("--location", type=Path, default=None, help="data folder (default: a temp folder)")
    args = parser.parse_args(argv)
    instance = start_azurite(port=args.port, host=args.host, location=args.location, table_port=args.table_port)
    print(f"Azurite queue service on http://{instance.host}:{instance.port}, "
          f"table service on http://{instance.host}:{instance.table_port}", flush=True)
    print(f"AzureWebJobsStorage={redact_keys(instance.connection_string)}", flush=True)
    print("  (AccountKey: Azurite's published development key, ACCOUNT_KEY in localcloud/azurite.py)", flush=True)
    try:
        instance.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        instance.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
