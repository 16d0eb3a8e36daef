"""The IoT Hub emulator's own admin routes, beside the shared ones (`localcloud.emulator.admin_api`):

POST /admin/throttle?per_min=N       C2D sends per minute before device-container-throttled (0 = off)
POST /admin/advance-clock?seconds=N  move the hub clock forward (TTL, locks, feedback timers)
POST /admin/flush-feedback           flush pending feedback records now
GET  /admin/feedback-deliveries      each feedback message handed to a reader: when it was flushed and
                                     delivered (epoch seconds), its delivery count and original message ids
POST /admin/feedback {"records": [...]}  queue synthetic feedback records at once, for messages never sent
                                     (backlogs for benchmarks): each {deviceId, originalMessageId[, statusCode,
                                     description]}, batched into feedback messages as the hub batches them
GET  /admin/feedback                 the feedback queue in numbers (messages, records, locked, completed, ...)
POST /admin/twins/{deviceId}         apply a twin patch: tags, desired and reported properties (JSON merge
                                     patch, as a device would report them); answers the twin

`IoTHubAdminClient` is the Python client of all of them.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from localcloud.emulator.admin_api import number_param
from localcloud.emulator.admin_client import AdminClient

from .hub import Hub
from .twins import TwinPatchError

#: Records per POST /admin/feedback from the client: a multiple of IoT Hub's 64-record feedback batches.
_RECORDS_PER_CALL = 64 * 64


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

    async def enqueue_feedback(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            records = body.get("records") if isinstance(body, dict) else None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise ValueError("the body must be {\"records\": [{...}, ...]}")
            messages = hub.store.enqueue_feedback(records)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"records": len(records), "messages": messages})

    async def feedback_counts(_request: web.Request) -> web.Response:
        return web.json_response(hub.store.feedback_counts())

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
        web.post("/admin/feedback", enqueue_feedback),
        web.get("/admin/feedback", feedback_counts),
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

    def enqueue_feedback(
        self, records: Sequence[tuple[str, str]] | Sequence[dict[str, str]], status: str = "Success"
    ) -> int:
        """Queue feedback records at once: (deviceId, originalMessageId) pairs with `status`, or record dicts
        ({deviceId, originalMessageId[, statusCode, description]}). Returns the feedback messages added."""
        body = [
            r if isinstance(r, dict) else {"deviceId": r[0], "originalMessageId": r[1], "statusCode": status}
            for r in records
        ]
        messages = 0
        for start in range(0, len(body), _RECORDS_PER_CALL):  # the admin API takes bodies up to 1 MB
            chunk = body[start:start + _RECORDS_PER_CALL]
            messages += int(self.call("POST", "/admin/feedback", {"records": chunk})["messages"])
        return messages

    def feedback_counts(self) -> dict[str, int]:
        """The feedback queue: messages, records, locked, pending_records, completed, completed_records,
        dead_lettered, expired."""
        return {k: int(v) for k, v in self.call("GET", "/admin/feedback").items()}

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
