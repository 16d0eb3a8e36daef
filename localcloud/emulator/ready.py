"""The READY line: printed once every listener is bound, the one thing a launcher waits for.

    READY {"service": "servicebus", "amqpPort": 5672, "amqpsPort": 5671, "adminPort": 5673,
           "connectionString": "Endpoint=sb://localhost:5672;...;SharedAccessKey=***;..."}

One `<name>Port` per listener (the bound port, also when 0 asked for a free one). The key in the
connection string is masked: the caller knows the key it configured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from localcloud.redact import redact_keys

PREFIX = "READY "


def _port_key(listener: str) -> str:
    head, *rest = listener.split("_")
    return head + "".join(word.capitalize() for word in rest) + "Port"


@dataclass(frozen=True)
class ReadyInfo:
    service: str
    ports: dict[str, int]  # listener name (snake_case) -> bound port
    connection_string: str = field(repr=False)  # masked

    def port(self, listener: str) -> int:
        return self.ports[listener]


def ready_line(service: str, ports: Mapping[str, int], connection_string: str) -> str:
    info: dict[str, object] = {"service": service}
    info.update({_port_key(name): port for name, port in ports.items()})
    info["connectionString"] = redact_keys(connection_string)
    return PREFIX + json.dumps(info)


def parse_ready_line(line: str) -> ReadyInfo | None:
    if not line.startswith(PREFIX):
        return None
    raw = json.loads(line[len(PREFIX) :])
    ports = {}
    for key, value in raw.items():
        if key.endswith("Port"):
            words = [c if c.islower() else "_" + c.lower() for c in key[: -len("Port")]]
            ports["".join(words)] = int(value)
    return ReadyInfo(str(raw.get("service", "")), ports, str(raw.get("connectionString", "")))


def find_ready(text: str) -> ReadyInfo | None:
    """The READY line among a process's output, if it printed one."""
    for line in text.splitlines():
        info = parse_ready_line(line)
        if info is not None:
            return info
    return None
