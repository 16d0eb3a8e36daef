"""The Service Bus emulator's own admin routes, beside the shared ones (`localcloud.emulator.admin_api`):

GET /admin/entities                   counts per queue / subscription (dead-lettered included)
GET /admin/entities/{path}/messages   the messages a queue, subscription or dead-letter queue holds

`ServiceBusAdminClient` is the Python client of all of them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from localcloud.emulator.admin_client import AdminClient

from .message import _text
from .namespace import EntityNotFound, Namespace
from .store import Envelope


def _message_summary(env: Envelope) -> dict[str, Any]:
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


def servicebus_admin_routes(namespace: Namespace) -> list[web.RouteDef]:
    async def entities(_request: web.Request) -> web.Response:
        return web.json_response(namespace.snapshot())

    async def messages(request: web.Request) -> web.Response:
        try:
            store = namespace.receivable(request.match_info["path"])
        except EntityNotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        envelopes = sorted(store.envelopes(), key=lambda e: e.sequence_number)
        return web.json_response({"messages": [_message_summary(e) for e in envelopes]})

    return [web.get("/admin/entities", entities), web.get("/admin/entities/{path:.+}/messages", messages)]


class ServiceBusAdminClient(AdminClient):
    def entities(self) -> dict[str, Any]:
        return dict(self.call("GET", "/admin/entities"))

    def messages(self, entity_path: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/admin/entities/{entity_path}/messages")["messages"])
