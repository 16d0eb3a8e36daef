"""What the trigger servers (HTTP routes, timers, queues) need from the host: one invocation and its result.

The host implements `FunctionInvoker`; the servers depend on this module only, so neither imports
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from localcloud.functions_host.app import FunctionApp, FunctionSpec
from localcloud.functions_host.logs import HostLog
from localcloud.functions_host.routes import Keys, Route


@dataclass
class InvocationResult:
    """What became of one invocation."""

    invocation_id: str
    ok: bool
    response: Any = None
    error: str = ""


class FunctionInvoker(Protocol):
    app: FunctionApp
    protos: Any  # the compiled FunctionRpc messages
    log: HostLog
    keys: Keys
    routes: list[Route]
    functions: dict[str, FunctionSpec]  # loaded in the worker
    errors: dict[str, str]  # refused by the host or the worker

    def status(self) -> dict[str, Any]: ...

    async def invoke(
        self, spec: FunctionSpec, input_data: dict[str, Any], trigger_metadata: dict[str, Any], reason: str
    ) -> InvocationResult:
        """Run one invocation in the worker; never raises for function failures."""
        ...

    def invoke_later(
        self, spec: FunctionSpec, input_data: dict[str, Any], metadata: dict[str, Any], reason: str
    ) -> None:
        """Run one invocation in the background."""
        ...
