"""Fault injection + inspection: plain-HTTP admin API, and `AdminClient`, its Python client.

POST /admin/drop-connections[?protocol=amqp|mqtt]  abort open connections (default both)
POST /admin/refuse?seconds=N        close new AMQP/MQTT connections at once for N seconds
POST /admin/throttle?per_min=N      C2D sends per minute before device-container-throttled (0 = off)
POST /admin/disposition-delay?ms=N  settle each C2D transfer N ms late
POST /admin/limits  {json}          override Limits fields (lock_s, queue_depth, ...) until reset
POST /admin/advance-clock?seconds=N move the hub clock forward (TTL, locks, feedback timers)
POST /admin/flush-feedback          flush pending feedback records now
POST /admin/reset                   configured devices, empty queues, no faults
GET  /admin/state                   queues, feedback, counters (no message bodies, no keys)
GET  /admin/health                  200 once every endpoint listens
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .app import Emulator

EMULATOR_KEY: web.AppKey[Any] = web.AppKey("emulator")


def _number(request: web.Request, name: str) -> float:
    try:
        value = float(request.query[name])
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"query parameter {name}=<number> required") from exc
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must be >= 0")
    return value


async def drop_connections(request: web.Request) -> web.Response:
    protocol = request.query.get("protocol", "all")
    if protocol not in ("all", "amqp", "mqtt"):
        raise web.HTTPBadRequest(text="protocol must be all, amqp or mqtt")
    return web.json_response({"dropped": request.app[EMULATOR_KEY].drop_connections(protocol)})


async def refuse(request: web.Request) -> web.Response:
    seconds = _number(request, "seconds")
    request.app[EMULATOR_KEY].hub.faults.refuse_until = time.monotonic() + seconds
    return web.json_response({"refusing_s": seconds})


async def throttle(request: web.Request) -> web.Response:
    per_min = int(_number(request, "per_min"))
    request.app[EMULATOR_KEY].hub.store.throttle_per_min = per_min
    return web.json_response({"throttle_per_min": per_min})


async def disposition_delay(request: web.Request) -> web.Response:
    ms = _number(request, "ms")
    request.app[EMULATOR_KEY].hub.faults.disposition_delay_s = ms / 1000.0
    return web.json_response({"disposition_delay_ms": ms})


async def limits(request: web.Request) -> web.Response:
    """Override Limits fields at run time (JSON body); /admin/reset restores the configured ones."""
    store = request.app[EMULATOR_KEY].hub.store
    try:
        store.limits = dataclasses.replace(store.limits, **await request.json())
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"bad limits: {exc}") from exc
    return web.json_response(dataclasses.asdict(store.limits))


async def advance_clock(request: web.Request) -> web.Response:
    store = request.app[EMULATOR_KEY].hub.store
    store.advance_clock(_number(request, "seconds"))
    return web.json_response({"clock_offset_s": store.clock_offset_s})


async def flush_feedback(request: web.Request) -> web.Response:
    request.app[EMULATOR_KEY].hub.store.flush_feedback()
    return web.json_response({"flushed": True})


async def reset(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    emulator.hub.store.reset()
    emulator.hub.faults.refuse_until = 0.0
    emulator.hub.faults.disposition_delay_s = 0.0
    return web.json_response({"reset": True})


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_KEY].hub.store.snapshot())


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_admin_app(emulator: Emulator) -> web.Application:
    app = web.Application()
    app[EMULATOR_KEY] = emulator
    for path, handler in (
        ("drop-connections", drop_connections),
        ("refuse", refuse),
        ("throttle", throttle),
        ("disposition-delay", disposition_delay),
        ("flush-feedback", flush_feedback),
        ("reset", reset),
        ("limits", limits),
        ("advance-clock", advance_clock),
    ):
        app.router.add_post(f"/admin/{path}", handler)
    app.router.add_get("/admin/state", state)
    app.router.add_get("/admin/health", health)
    return app


class AdminClient:
    """Synchronous client for the admin API (stdlib only, usable from any test or tool)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.base_url + path, method=method, data=data)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read() or b"null")

    def drop_connections(self, protocol: str = "all") -> int:
        return int(self._call("POST", f"/admin/drop-connections?protocol={protocol}")["dropped"])

    def refuse(self, seconds: float) -> None:
        self._call("POST", f"/admin/refuse?seconds={seconds}")

    def throttle(self, per_min: int) -> None:
        self._call("POST", f"/admin/throttle?per_min={per_min}")

    def disposition_delay(self, ms: float) -> None:
        self._call("POST", f"/admin/disposition-delay?ms={ms}")

    def set_limits(self, **overrides: Any) -> dict[str, Any]:
        return self._call("POST", "/admin/limits", overrides)

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", f"/admin/advance-clock?seconds={seconds}")["clock_offset_s"])

    def flush_feedback(self) -> None:
        self._call("POST", "/admin/flush-feedback")

    def reset(self) -> None:
        self._call("POST", "/admin/reset")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/admin/state")

    def health(self) -> bool:
        return bool(self._call("GET", "/admin/health")["ok"])
