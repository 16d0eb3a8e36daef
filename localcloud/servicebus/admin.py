"""Admin HTTP API (plain HTTP, loopback): health, entity state, fault injection.

GET  /health                               {"status": "ok", "amqpPort": n}
GET  /entities                             counts per queue / subscription (incl. dead-lettered)
GET  /entities/{path}/messages             messages held by a queue, subscription or DLQ
POST /faults/drop-connections              abort every open AMQP socket -> {"dropped": n}
POST /faults/refuse-connections            body {"seconds": s}: refuse new AMQP sockets for s seconds
POST /faults/send-delay                    body {"ms": n}: settle each incoming send n ms late (a round trip)
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .broker import EntityNotFound
from .message import _text

if TYPE_CHECKING:
    from .server import ServiceBusEmulator


def _message_summary(env: Any) -> dict[str, Any]:
    msg = env.message
    return {
        "sequenceNumber": env.sequence_number,
        "messageId": msg.message_id,
        "correlationId": msg.text_property("correlation_id"),
        "subject": msg.text_property("subject"),
        "state": env.state.value,
        "deliveryCount": env.delivery_count,
        "applicationProperties": {
            k: _text(v) if isinstance(v, bytes) else v for k, v in msg.application_properties.items()
        },
        "deadLetter": env.extra_app_props or None,
    }


class AdminApi:
    def __init__(self, emulator: ServiceBusEmulator) -> None:
        self.emulator = emulator
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/entities", self._entities)
        app.router.add_get("/entities/{path:.+}/messages", self._messages)
        app.router.add_post("/faults/drop-connections", self._drop)
        app.router.add_post("/faults/refuse-connections", self._refuse)
        app.router.add_post("/faults/send-delay", self._send_delay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # aiohttp keeps the bound asyncio server here
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "amqpPort": self.emulator.amqp_port})

    async def _entities(self, _request: web.Request) -> web.Response:
        return web.json_response(self.emulator.namespace.snapshot())

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            store = self.emulator.namespace.receivable(request.match_info["path"])
        except EntityNotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        envs = sorted(store.envelopes(), key=lambda e: e.sequence_number)
        return web.json_response({"messages": [_message_summary(e) for e in envs]})

    async def _drop(self, _request: web.Request) -> web.Response:
        return web.json_response({"dropped": self.emulator.drop_connections()})

    async def _refuse(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            seconds = float(body["seconds"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"seconds": <number>}'}, status=400)
        self.emulator.refuse_connections(seconds)
        return web.json_response({"refusingForSeconds": seconds})


    async def _send_delay(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            milliseconds = float(body["ms"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"ms": <number>}'}, status=400)
        self.emulator.broker.send_delay_s = max(0.0, milliseconds) / 1000
        return web.json_response({"sendDelayMs": milliseconds})


class AdminClient:
    """Blocking client for the admin API (tests, scripts)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def entities(self) -> dict[str, Any]:
        return self._call("GET", "/entities")

    def messages(self, entity_path: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/entities/{entity_path}/messages")["messages"]

    def drop_connections(self) -> int:
        return int(self._call("POST", "/faults/drop-connections")["dropped"])

    def refuse_connections(self, seconds: float) -> None:
        self._call("POST", "/faults/refuse-connections", {"seconds": seconds})

    def send_delay(self, milliseconds: float) -> None:
        """Settle every incoming send after this delay, like a network round trip (benchmarks)."""
        self._call("POST", "/faults/send-delay", {"ms": milliseconds})
