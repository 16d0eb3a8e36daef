"""Emulator configuration: one JSON file, every field optional (defaults below work with no file).

Example::

    {"hub_name": "localhub", "hostname": "localhost",
     "policies": [{"name": "iothubowner", "primary_key": "<base64>"}],
     "devices": [{"device_id": "device1", "primary_key": "<base64>"}],
     "limits": {"queue_depth": 50, "feedback_interval_s": 15},
     "ports": {"amqp": 5671, "mqtt": 8883, "https": 443, "admin": 15671, "connect_proxy": 18883}}

A port of 0 binds a free port; the actual ports are printed in the ready line.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def dev_key(label: str) -> str:
    """Fixed, well-known development key derived from a label. Never use outside localcloud."""
    return base64.b64encode(hashlib.sha256(f"localcloud-dev-key:{label}".encode()).digest()).decode()


@dataclass(frozen=True)
class Policy:
    name: str
    primary_key: str = field(repr=False)  # keys stay out of reprs, logs and test failure output
    secondary_key: str = field(default="", repr=False)
    rights: tuple[str, ...] = ("RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect")

    def keys(self) -> list[str]:
        return [k for k in (self.primary_key, self.secondary_key) if k]


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    primary_key: str = field(repr=False)
    secondary_key: str = field(default="", repr=False)
    #: The device twin's initial tags and reported properties (what registry queries select on).
    tags: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None


@dataclass(frozen=True)
class Limits:
    """C2D semantics (docs: iot-hub-devguide-messages-c2d); all configurable for fast tests."""

    queue_depth: int = 50
    max_message_bytes: int = 65536  # counted on the body
    default_ttl_s: float = 3600.0
    lock_s: float = 60.0
    max_delivery_count: int = 10
    feedback_batch_size: int = 64
    feedback_interval_s: float = 15.0
    feedback_ttl_s: float = 3600.0
    feedback_lock_s: float = 60.0
    feedback_max_delivery_count: int = 10
    throttle_per_min: int = 0  # 0 = no throttling; else C2D sends per minute (hub-wide)
    tick_s: float = 0.05  # how often expiry/lock/flush timers are checked
    mqtt_max_inflight: int = 50
    enforce_token_expiry: bool = True  # close an AMQP connection when the CBS token of its links expires
    max_token_lifetime_s: float | None = None  # treat every CBS token as expiring this long after put-token


@dataclass(frozen=True)
class Ports:
    amqp: int = 5671
    mqtt: int = 8883
    https: int = 443
    admin: int = 15671
    connect_proxy: int = 18883  # HTTP CONNECT proxy that maps :5671/:8883/:443 to the ports above


@dataclass(frozen=True)
class HubConfig:
    hub_name: str = "localhub"
    hostname: str = "localhost"
    bind_host: str = "127.0.0.1"
    policies: tuple[Policy, ...] = (Policy("iothubowner", dev_key("iothubowner"), dev_key("iothubowner/2")),)
    devices: tuple[DeviceSpec, ...] = (
        DeviceSpec("device1", dev_key("device1"), dev_key("device1/2")),
        DeviceSpec("device2", dev_key("device2"), dev_key("device2/2")),
    )
    limits: Limits = field(default_factory=Limits)
    ports: Ports = field(default_factory=Ports)

    def policy(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)

    def service_connection_string(self, policy: str = "iothubowner") -> str:
        p = self.policy(policy)
        if p is None:
            raise KeyError(policy)
        return f"HostName={self.hostname};SharedAccessKeyName={p.name};SharedAccessKey={p.primary_key}"

    def device_connection_string(self, device_id: str, key: str) -> str:
        return f"HostName={self.hostname};DeviceId={device_id};SharedAccessKey={key}"


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} setting(s): {', '.join(sorted(unknown))}")
    return cls(**data)


def from_dict(data: dict[str, Any]) -> HubConfig:
    cfg = HubConfig()
    data = dict(data)
    if "policies" in data:
        pols = []
        for p in data.pop("policies"):
            p = dict(p)
            p.setdefault("primary_key", dev_key(p["name"]))
            if "rights" in p:
                p["rights"] = tuple(p["rights"])
            pols.append(_build(Policy, p))
        cfg = replace(cfg, policies=tuple(pols))
    if "devices" in data:
        devs = []
        for d in data.pop("devices"):
            d = dict(d)
            d.setdefault("primary_key", dev_key(d["device_id"]))
            devs.append(_build(DeviceSpec, d))
        cfg = replace(cfg, devices=tuple(devs))
    if "limits" in data:
        cfg = replace(cfg, limits=_build(Limits, data.pop("limits")))
    if "ports" in data:
        cfg = replace(cfg, ports=_build(Ports, data.pop("ports")))
    unknown = set(data) - {f.name for f in fields(HubConfig)}
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return replace(cfg, **data)


def load(path: Path | str | None) -> HubConfig:
    if path is None:
        return HubConfig()
    return from_dict(json.loads(Path(path).read_text()))
