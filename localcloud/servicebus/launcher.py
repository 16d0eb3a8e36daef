"""Spawn the Service Bus emulator as a subprocess on free ports, for tests, benchmarks and scripts.

    with running_servicebus(config_path=...) as bus:
        client = ServiceBusClient.from_connection_string(bus.connection_string)
        bus.admin.entities()

The child picks its own free ports (port 0) and reports them on its READY line, so there is no
race between choosing a port and binding it. `amqps=True` adds the TLS listener (`bus.amqps_port`,
`bus.tls_client_kwargs()`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.certs import CertPaths, ensure_certs
from localcloud.emulator.launcher import EmulatorProcess, spawn
from localcloud.redact import with_key

from .admin import ServiceBusAdminClient
from .tokens import DEFAULT_KEY, DEFAULT_KEY_NAME


@dataclass
class ServiceBusProcess:
    """A running `python -m localcloud servicebus` and what a client needs to reach it."""

    emulator: EmulatorProcess
    connection_string: str = field(repr=False)  # plain AMQP, UseDevelopmentEmulator=true
    key: str = field(repr=False)
    admin: ServiceBusAdminClient = field(repr=False)
    certs: CertPaths | None = None  # with amqps=True
    _work_dir: Path | None = None  # removed on stop when the launcher made it

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.emulator.process

    @property
    def amqp_port(self) -> int:
        return self.emulator.port("amqp")

    @property
    def amqps_port(self) -> int:
        return self.emulator.port("amqps")

    @property
    def admin_port(self) -> int:
        return self.emulator.port("admin")

    def connection_string_with_key(self, key: str) -> str:
        return self.connection_string.replace(f"SharedAccessKey={self.key};", f"SharedAccessKey={key};")

    @property
    def tls_connection_string(self) -> str:
        """For the AMQPS listener: no port and no UseDevelopmentEmulator (the SDK then uses TLS)."""
        return f"Endpoint=sb://localhost/;SharedAccessKeyName={DEFAULT_KEY_NAME};SharedAccessKey={self.key}"

    def tls_client_kwargs(self, uamqp_transport: bool = False) -> dict[str, Any]:
        """`ServiceBusClient.from_connection_string(bus.tls_connection_string, **bus.tls_client_kwargs())`:
        the TLS port through `custom_endpoint_address` (with transport_type Amqp, or the SDK picks
        WebSockets), the local CA through `connection_verify` (pyamqp; uamqp reads SSL_CERT_FILE)."""
        from azure.servicebus import TransportType

        assert self.certs is not None, "spawn with amqps=True"
        return {
            "custom_endpoint_address": f"sb://localhost:{self.amqps_port}",
            "transport_type": TransportType.Amqp,
            "connection_verify": str(self.certs.ca_bundle),
            "uamqp_transport": uamqp_transport,
        }

    def log_tail(self, lines: int = 40) -> str:
        return self.emulator.log_tail(lines)

    def stop(self) -> None:
        self.emulator.stop()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)


def spawn_servicebus(
    config_path: str | os.PathLike[str] | None = None,
    key: str = DEFAULT_KEY,
    tick_interval: float = 0.02,
    data_file: str | os.PathLike[str] | None = None,
    *,
    amqps: bool = False,
    state_dir: Path | None = None,
    work_dir: Path | None = None,
    extra_args: tuple[str, ...] = (),
    timeout_s: float = 60.0,
) -> ServiceBusProcess:
    """Spawn the emulator on free ports and return once it printed READY; the caller must `stop()` it."""
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="localcloud-servicebus-")) if work_dir is None else work_dir
    args = ["--amqp-port", "0", "--admin-port", "0", "--tick-interval", str(tick_interval), "--log-level", "WARNING"]
    certs = None
    if amqps:
        certs = ensure_certs(state_dir or work / "state")  # created here so the child only reuses them
        args += ["--amqps-port", "0", "--state-dir", str(certs.ca_cert.parent.parent)]
    if config_path is not None:
        args += ["--config", str(config_path)]
    if data_file is not None:
        args += ["--data-file", str(data_file)]
    args += extra_args
    try:
        # The key goes through the environment: it stays off the command line.
        process = spawn(
            "servicebus", args, log_path=work / "servicebus.log", env={"SERVICEBUS_EMULATOR_KEY": key},
            timeout_s=timeout_s,
        )  # fmt: skip
    except BaseException:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return ServiceBusProcess(
        emulator=process,
        connection_string=with_key(process.ready.connection_string, key),
        key=key,
        admin=ServiceBusAdminClient(f"http://127.0.0.1:{process.port('admin')}"),
        certs=certs,
        _work_dir=work if own_dir else None,
    )


@contextlib.contextmanager
def running_servicebus(
    config_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Iterator[ServiceBusProcess]:
    """`spawn_servicebus` for one `with` block."""
    bus = spawn_servicebus(config_path, **kwargs)
    try:
        yield bus
    finally:
        bus.stop()
