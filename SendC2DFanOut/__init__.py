"""SendC2DFanOut: POST /api/messages sends one message to each of up to 1,000 devices (207)."""

import azure.functions as func

from c2d import clients
from c2d.bindings import http_response
from c2d.http_api import send_to_devices


def main(req: func.HttpRequest) -> func.HttpResponse:
    return http_response(send_to_devices(req.get_body(), clients.get_sender, clients.send_settings))
