"""The IoT Hub emulator's own admin routes, beside the shared ones (`localcloud.emulator.admin_api`):

POST /admin/throttle?per_min=N       C2D sends per minute before device-container-throttled (0 = off)
POST /admin/advance-clock?seconds=N  move the hub clock forward (TTL, locks, feedback timers)
POST /admin/flush-feedback           flush pending feedback records now
GET  /admin/feedback-deliveries      each feedback message handed to a reader: when it was flushed and
                                     delivered (epoch seconds), its delivery count and original message ids
POST /admin/twins/{deviceId}         apply a twin patch: tags, desired and reported properties (JSON merge
                                     patch, as a device would report them); answers the twin

`IoTHubAdminClient` is the Python client of all of them.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from localcloud.emulator.admin_api import number_param
from localcloud.emulator.admin_client import AdminClient

from .hub import Hub
from .twins import TwinPatchError


def hub_admin_routes(hub: Hub) -> list[web.RouteDef]:
    async def throttle(request: web.Request) -> web.Response:
        per_min = int(number_param(request, "per_min"))
        hub.store.throttle_per_min = per_min
        return web.json_response({"throttle_per_min": per_min})

    async def advance_clock(request: web.Request) -> web.Response:
        hub.store.advance_clock(number_param(request, "seconds"))
        return web.json_response({"clock_offset_s": hub.store.clock_offset_s})

    async def flush_feedback(_request: web.Request) -> web.Response:
        hub.store.flush_feedback()
        return web.json_response({"flushed": True})

    async def feedback_deliveries(_request: web.Request) -> web.Response:
        return web.json_response({"deliveries": list(hub.store.feedback_deliveries)})

    async def patch_twin(request: web.Request) -> web.Response:
        device_id = request.match_info["device_id"]
        try:
            twin = hub.store.patch_twin(device_id, await request.json())
        except (ValueError, TwinPatchError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if twin is None:
            return web.json_response({"error": f"no device {device_id}"}, status=404)
        return web.json_response(twin.to_json())

    return [
        web.post("/admin/twins/{device_id}", patch_twin),
        web.post("/admin/throttle", throttle),
        web.post("/admin/advance-clock", advance_clock),
        web.post("/admin/flush-feedback", flush_feedback),
        web.get("/admin/feedback-deliveries", feedback_deliveries),
    ]


class IoTHubAdminClient(AdminClient):
    def throttle(self, per_min: int) -> None:
        self.call("POST", "/admin/throttle", per_min=per_min)

    def advance_clock(self, seconds: float) -> float:
        return float(self.call("POST", "/admin/advance-clock", seconds=seconds)["clock_offset_s"])

    def flush_feedback(self) -> None:
        self.call("POST", "/admin/flush-feedback")

    def feedback_deliveries(self) -> list[dict[str, Any]]:
        """Feedback messages handed to readers, oldest first (the last 20,000): `messageId`, `enqueuedAt`
        (flushed), `deliveredAt` (epoch seconds, the hub's clock), `deliveryCount`, `originalMessageIds`."""
        return list(self.call("GET", "/admin/feedback-deliveries")["deliveries"])

    def update_twin(
        self, device_id: str, *, tags: dict[str, Any] | None = None, reported: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge tags and reported properties into a device's twin (what registry queries select on)."""
        patch: dict[str, Any] = {}
        if tags is not None:
            patch["tags"] = tags
        if reported is not None:
            patch["properties"] = {"reported": reported}
        result: dict[str, Any] = self.call("POST", f"/admin/twins/{urllib.parse.quote(device_id, safe='')}", patch)
        return result
