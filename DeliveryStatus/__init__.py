"""DeliveryStatus: GET /api/devices/{deviceId}/messages/{messageId}: 200 once the delivery is final,
202 with Retry-After while it is pending, 404 for a message this app did not send."""

import azure.functions as func

from c2d import clients
from c2d.bindings import http_response
from c2d.http_api import delivery_status


def main(req: func.HttpRequest) -> func.HttpResponse:
    device_id, message_id = req.route_params.get("deviceId", ""), req.route_params.get("messageId", "")
    return http_response(delivery_status(device_id, message_id, clients.get_status_store, clients.status_settings))
