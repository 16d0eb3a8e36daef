"""SendC2D: POST /api/devices/{deviceId}/messages sends one C2D message (202 with its status URL, or a JSON error)."""

import azure.functions as func

from c2d.bindings import http_response, send_dependencies, status_links
from c2d.http_api import send_to_device


def main(req: func.HttpRequest) -> func.HttpResponse:
    device_id = req.route_params.get("deviceId", "")
    return http_response(send_to_device(device_id, req.get_body(), send_dependencies(), status_links(req)))
