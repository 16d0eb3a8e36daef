"""SendC2D: POST /api/devices/{deviceId}/messages sends one C2D message (202, or a JSON error)."""

import azure.functions as func

from c2d import clients
from c2d.bindings import http_response
from c2d.http_api import send_to_device


def main(req: func.HttpRequest) -> func.HttpResponse:
    device_id = req.route_params.get("deviceId", "")
    return http_response(send_to_device(device_id, req.get_body(), clients.get_sender, clients.send_settings))
