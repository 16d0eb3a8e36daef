"""The admin API every emulator serves (plain HTTP on loopback): inspection and fault switches.

GET  /admin/health                          {"ok": true} once every listener is bound
GET  /admin/state                           the emulator's queues and counters (no bodies, no keys)
POST /admin/reset                           back to the configured state, faults off
POST /admin/drop-connections[?protocol=P]   abort open connections (all, or one protocol) -> {"dropped": n}
POST /admin/refuse-connections?seconds=N    drop new connections at once for N seconds (open ones stay:
                                            drop-connections drops them; together they make an outage)
POST /admin/disposition-delay?ms=N          settle each incoming transfer N ms late
GET  /admin/limits                          the run-time limits in force
POST /admin/limits {json}                   override limits until reset -> the limits in force

Each emulator adds its own routes (see its `admin.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from .control import EmulatorControl

CONTROL_KEY: web.AppKey[EmulatorControl] = web.AppKey("control", EmulatorControl)  # type: ignore[type-abstract]


def number_param(request: web.Request, name: str) -> float:
    """A non-negative number from the query string, or 400."""
    try:
        value = float(request.query[name])
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"query parameter {name}=<number> required") from exc
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must be >= 0")
    return value


def control_of(request: web.Request) -> EmulatorControl:
    return request.app[CONTROL_KEY]


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _state(request: web.Request) -> web.Response:
    return web.json_response(control_of(request).state())


async def _reset(request: web.Request) -> web.Response:
    control_of(request).reset()
    return web.json_response({"reset": True})


async def _drop_connections(request: web.Request) -> web.Response:
    control = control_of(request)
    protocol = request.query.get("protocol", "all")
    if protocol != "all" and protocol not in control.protocols:
        raise web.HTTPBadRequest(text=f"protocol must be all or one of {', '.join(control.protocols)}")
    return web.json_response({"dropped": control.drop_connections(protocol)})


async def _refuse_connections(request: web.Request) -> web.Response:
    seconds = number_param(request, "seconds")
    control_of(request).faults.refuse_for(seconds)
    return web.json_response({"refusing_s": seconds})


async def _disposition_delay(request: web.Request) -> web.Response:
    ms = number_param(request, "ms")
    control_of(request).faults.disposition_delay_s = ms / 1000.0
    return web.json_response({"disposition_delay_ms": ms})


async def _get_limits(request: web.Request) -> web.Response:
    return web.json_response(control_of(request).limits())


async def _set_limits(request: web.Request) -> web.Response:
    try:
        overrides = await request.json()
        if not isinstance(overrides, dict):
            raise TypeError("the body must be a JSON object")
        return web.json_response(control_of(request).set_limits(overrides))
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"bad limits: {exc}") from exc


def build_admin_app(control: EmulatorControl, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
    app = web.Application()
    app[CONTROL_KEY] = control
    app.add_routes(
        [
            web.get("/admin/health", _health),
            web.get("/admin/state", _state),
            web.post("/admin/reset", _reset),
            web.post("/admin/drop-connections", _drop_connections),
            web.post("/admin/refuse-connections", _refuse_connections),
            web.post("/admin/disposition-delay", _disposition_delay),
            web.get("/admin/limits", _get_limits),
            web.post("/admin/limits", _set_limits),
            *extra_routes,
        ]
    )
    return app
