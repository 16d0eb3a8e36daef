"""Blocking client of the admin API (stdlib only: usable from any test, benchmark or tool)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


class AdminClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, body: Any = None, **query: object) -> Any:
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(url, method=method, data=data)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read() or b"null")

    def health(self) -> bool:
        return bool(self.call("GET", "/admin/health")["ok"])

    def state(self) -> dict[str, Any]:
        return dict(self.call("GET", "/admin/state"))

    def reset(self) -> None:
        self.call("POST", "/admin/reset")

    def drop_connections(self, protocol: str = "all") -> int:
        return int(self.call("POST", "/admin/drop-connections", protocol=protocol)["dropped"])

    def refuse_connections(self, seconds: float) -> None:
        """Drop new connections at once for `seconds` (open ones stay: `drop_connections` drops them)."""
        self.call("POST", "/admin/refuse-connections", seconds=seconds)

    def disposition_delay(self, ms: float) -> None:
        """Settle every incoming transfer `ms` late, like a network round trip."""
        self.call("POST", "/admin/disposition-delay", ms=ms)

    def limits(self) -> dict[str, Any]:
        return dict(self.call("GET", "/admin/limits"))

    def set_limits(self, **overrides: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/admin/limits", overrides))
