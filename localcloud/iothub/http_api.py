"""HTTPS endpoint (aiohttp): device C2D API and the registry subset azure-iot-hub uses.

Device API (source: Node azure-iot-device-http): GET .../devicebound -> 200 + ETag lock token | 204;
DELETE .../devicebound/{etag}[?reject] completes/rejects; POST .../{etag}/abandon abandons.
Registry: PUT/GET/DELETE /devices/{id}, purge DELETE /devices/{id}/commands, query POST /devices/query,
twins GET/PATCH /twins/{id} (tags and desired properties).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from localcloud import sas

from .channel import Channel, WebSocketChannel
from .config import DeviceSpec
from .hub import Hub
from .store import Device, LockError, iso_utc
from .twins import TwinPatchError, handle_query_request

ChannelServer = Callable[[WebSocketChannel], Awaitable[None]]
HUB_KEY = web.AppKey("hub", Hub)
AMQP_KEY: web.AppKey[ChannelServer] = web.AppKey("amqp")
MQTT_KEY: web.AppKey[ChannelServer] = web.AppKey("mqtt")
_EPOCH0 = "0001-01-01T00:00:00Z"


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"Message": f"ErrorCode:{code};{message}", "ExceptionMessage": message}
    return web.json_response(body, status=status, headers={"iothub-errorcode": code})


def _auth_header(request: web.Request) -> str:
    return request.headers.get("Authorization", "")


def _device_auth(request: web.Request, device_id: str) -> web.Response | None:
    hub = request.app[HUB_KEY]
    try:
        hub.auth.check_device_token(_auth_header(request), device_id)
    except sas.SasError as exc:
        return _error(401, "IotHubUnauthorizedAccess", str(exc))
    return None


def _service_auth(request: web.Request, right: str) -> web.Response | None:
    try:
        request.app[HUB_KEY].auth.check_service_token(_auth_header(request), right)
    except sas.SasError as exc:
        return _error(401, "IotHubUnauthorizedAccess", str(exc))
    return None


def _etag(request: web.Request) -> str:
    return request.match_info["etag"].strip('"')


async def receive(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    if (denied := _device_auth(request, device_id)) is not None:
        return denied
    hub = request.app[HUB_KEY]
    msg = hub.store.receive(device_id, lock_s=hub.store.limits.lock_s)
    if msg is None:
        return web.Response(status=204)
    headers = {
        "ETag": f'"{msg.lock_token}"',
        "iothub-messageid": msg.message_id or "",
        "iothub-expiry": iso_utc(msg.expires_at),
        "iothub-to": msg.to,
        "iothub-deliverycount": str(msg.delivery_count),
        "iothub-enqueuedtime": iso_utc(msg.enqueued_at),
        "iothub-ack": msg.ack,
    }
    for name, value in (
        ("iothub-correlationid", msg.correlation_id),
        ("iothub-userid", msg.user_id),
        ("Content-Type", msg.content_type),
        ("Content-Encoding", msg.content_encoding),
    ):
        if value:
            headers[name] = value
    for key, value in msg.app_properties.items():
        headers[f"iothub-app-{key}"] = value
    return web.Response(status=200, body=msg.body, headers=headers)


async def complete_or_reject(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    if (denied := _device_auth(request, device_id)) is not None:
        return denied
    store = request.app[HUB_KEY].store
    try:
        if "reject" in request.query:
            store.reject(device_id, _etag(request))
        else:
            store.complete(device_id, _etag(request))
    except LockError as exc:
        return _error(412, "PreconditionFailed", str(exc))
    return web.Response(status=204)


async def abandon(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    if (denied := _device_auth(request, device_id)) is not None:
        return denied
    try:
        request.app[HUB_KEY].store.abandon(device_id, _etag(request))
    except LockError as exc:
        return _error(412, "PreconditionFailed", str(exc))
    return web.Response(status=204)


def device_json(hub: Hub, device: Device) -> dict[str, Any]:
    return {
        "deviceId": device.device_id,
        "generationId": device.generation_id,
        "etag": device.etag,
        "connectionState": "Disconnected",
        "status": device.status,
        "statusReason": None,
        "connectionStateUpdatedTime": _EPOCH0,
        "statusUpdatedTime": _EPOCH0,
        "lastActivityTime": _EPOCH0,
        "cloudToDeviceMessageCount": len(hub.store.queues.get(device.device_id, [])),
        "authentication": {
            "symmetricKey": {"primaryKey": device.primary_key, "secondaryKey": device.secondary_key},
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "type": "sas",
        },
        "capabilities": {"iotEdge": False},
    }


async def put_device(request: web.Request) -> web.Response:
    if (denied := _service_auth(request, "RegistryWrite")) is not None:
        return denied
    hub = request.app[HUB_KEY]
    device_id = request.match_info["device_id"]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "ArgumentInvalid", "body is not JSON")
    existing = hub.store.devices.get(device_id)
    if existing is not None and "If-Match" not in request.headers:
        return _error(409, "DeviceAlreadyExists", f"device {device_id} already exists")
    keys = ((body.get("authentication") or {}).get("symmetricKey") or {}) if isinstance(body, dict) else {}
    device = (
        hub.store.add_device(DeviceSpec(device_id, keys.get("primaryKey") or "", keys.get("secondaryKey") or ""))
        if existing is None
        else existing
    )
    if existing is not None:
        device.primary_key = keys.get("primaryKey") or device.primary_key
        device.secondary_key = keys.get("secondaryKey") or device.secondary_key
    if isinstance(body, dict) and body.get("status") in ("enabled", "disabled"):
        device.status = body["status"]
    return web.json_response(device_json(hub, device))


async def get_device(request: web.Request) -> web.Response:
    if (denied := _service_auth(request, "RegistryRead")) is not None:
        return denied
    hub = request.app[HUB_KEY]
    device = hub.store.devices.get(request.match_info["device_id"])
    if device is None:
        return _error(404, "DeviceNotFound", "device not found")
    return web.json_response(device_json(hub, device))


async def delete_device(request: web.Request) -> web.Response:
    if (denied := _service_auth(request, "RegistryWrite")) is not None:
        return denied
    if not request.app[HUB_KEY].store.remove_device(request.match_info["device_id"]):
        return _error(404, "DeviceNotFound", "device not found")
    return web.Response(status=204)


async def purge(request: web.Request) -> web.Response:
    if (denied := _service_auth(request, "ServiceConnect")) is not None:
        return denied
    hub = request.app[HUB_KEY]
    device_id = request.match_info["device_id"]
    if device_id not in hub.store.devices:
        return _error(404, "DeviceNotFound", "device not found")
    count = hub.store.purge(device_id)
    return web.json_response({"totalMessagesPurged": count, "deviceId": device_id})


async def query_devices(request: web.Request) -> web.Response:
    """POST /devices/query: the registry query (subset: see QUERY.md), paged like the real hub."""
    if (denied := _service_auth(request, "RegistryRead")) is not None:
        return denied
    hub = request.app[HUB_KEY]
    reply = handle_query_request(
        await request.read(), request.headers, hub.store.all_twins(), api_version=request.query.get("api-version")
    )
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


async def get_twin(request: web.Request) -> web.Response:
    if (denied := _service_auth(request, "RegistryRead")) is not None:
        return denied
    twin = request.app[HUB_KEY].store.twin(request.match_info["device_id"])
    if twin is None:
        return _error(404, "DeviceNotFound", "device not found")
    return web.json_response(twin.to_json())


async def patch_twin(request: web.Request) -> web.Response:
    """PATCH /twins/{id}: tags and desired properties (a service cannot write reported properties)."""
    if (denied := _service_auth(request, "ServiceConnect")) is not None:
        return denied
    try:
        patch = await request.json()
    except json.JSONDecodeError:
        return _error(400, "ArgumentInvalid", "body is not JSON")
    if not isinstance(patch, dict) or "reported" in (patch.get("properties") or {}):
        return _error(400, "ArgumentInvalid", "a twin patch holds tags and desired properties only")
    try:
        twin = request.app[HUB_KEY].store.patch_twin(
            request.match_info["device_id"], patch, etag=request.headers.get("If-Match")
        )
    except TwinPatchError as exc:
        return _error(exc.status, exc.error_code, exc.message)
    if twin is None:
        return _error(404, "DeviceNotFound", "device not found")
    return web.json_response(twin.to_json())


async def _bridge(request: web.Request, subprotocol: str, serve: ChannelServer) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(subprotocol,))
    await ws.prepare(request)
    channel = WebSocketChannel(ws, request.transport)
    try:
        await serve(channel)
    finally:
        channel.close()
        await channel.wait_closed()
    return ws


async def amqp_websocket(request: web.Request) -> web.WebSocketResponse:
    """AMQP over WebSockets (`GET /$servicebus/websocket/`, subprotocol AMQPWSB10)."""
    return await _bridge(request, "AMQPWSB10", request.app[AMQP_KEY])


async def mqtt_websocket(request: web.Request) -> web.WebSocketResponse:
    """MQTT over WebSockets (`GET /$iothub/websocket`, subprotocol mqtt): azure-iot-device websockets=True."""
    return await _bridge(request, "mqtt", request.app[MQTT_KEY])


def build_device_app(
    hub: Hub, amqp: ChannelServer | None = None, mqtt: Callable[[Channel], Awaitable[None]] | None = None
) -> web.Application:
    """`amqp`/`mqtt`: serve one connection over a channel; when given, their WebSocket routes are added."""
    app = web.Application()
    app[HUB_KEY] = hub
    if amqp is not None:
        app[AMQP_KEY] = amqp
        app.router.add_get("/$servicebus/websocket/", amqp_websocket)
        app.router.add_get("/$servicebus/websocket", amqp_websocket)
    if mqtt is not None:
        app[MQTT_KEY] = mqtt
        app.router.add_get("/$iothub/websocket", mqtt_websocket)
        app.router.add_get("/$iothub/websocket/", mqtt_websocket)
    base = "/devices/{device_id}"
    app.router.add_get(base + "/messages/devicebound", receive)
    app.router.add_delete(base + "/messages/devicebound/{etag}", complete_or_reject)
    app.router.add_post(base + "/messages/devicebound/{etag}/abandon", abandon)
    app.router.add_delete(base + "/commands", purge)
    app.router.add_post("/devices/query", query_devices)
    app.router.add_get("/twins/{device_id}", get_twin)
    app.router.add_patch("/twins/{device_id}", patch_twin)
    app.router.add_put(base, put_device)
    app.router.add_get(base, get_device)
    app.router.add_delete(base, delete_device)
    return app
