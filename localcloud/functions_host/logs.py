"""Console output of the host: its own messages and the worker's RpcLog messages."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any, TextIO

_LEVELS = {0: "Trace", 1: "Debug", 2: "Information", 3: "Warning", 4: "Error", 5: "Critical", 6: "None"}


class HostLog:
    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        self._stream = stream or sys.stdout
        self.verbose = verbose

    def write(self, message: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        for line in message.splitlines() or [""]:
            print(f"[{stamp}] {line}", file=self._stream, flush=True)

    def worker_log(self, rpc_log: Any, function_name: str | None) -> None:
        """Print one RpcLog: user logs and warnings always, the worker's own chatter only when verbose."""
        level = _LEVELS.get(rpc_log.level, str(rpc_log.level))
        system = rpc_log.log_category == 1  # RpcLogCategory.System
        if system and rpc_log.level < 3 and not self.verbose:
            return
        where = function_name or ("worker" if system else rpc_log.category or "worker")
        if rpc_log.invocation_id:
            where = f"{where} ({rpc_log.invocation_id})"
        prefix = f"{where}: " if level == "Information" else f"{where} {level}: "
        self.write(prefix + rpc_log.message)
